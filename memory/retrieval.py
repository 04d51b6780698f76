"""Retrieval and usage accounting for behavior-conditioned inference, over any ``BehaviorStore``.

Behaviors are retrieved once per problem, before generation: by embedding top-K (the paper's AIME setting),
by topic (its MATH setting), or both (embedding search restricted to the problem's topics). Usage goes back
to the handbook as events: ``retrieved`` for every behavior put in context, ``cited`` for every one an answer
names, and ``cited_correct`` / ``cited_wrong`` when the answer was graded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

from agentkit._behavior import Behavior
from agentkit.errors import ConfigError
from agentkit.messages import Problem

from .store import BehaviorStore

__all__ = ["RETRIEVALS", "Retrieval", "record_citations", "retrieve_behaviors", "topics_of"]

Retrieval = Literal["embedding", "topic", "both"]
RETRIEVALS: tuple[str, ...] = get_args(Retrieval)


def topics_of(problem: Problem) -> tuple[str, ...]:
    """The topics a problem's behaviors are stored and retrieved under: its subjects, else its dataset."""
    return problem.topics or ((problem.dataset,) if problem.dataset else ())


async def retrieve_behaviors(handbook: BehaviorStore, problem: Problem, *, k: int = 8,
                             retrieval: Retrieval | str = "embedding", record: bool = True) -> list[Behavior]:
    """Up to ``k`` behaviors for ``problem`` from ``handbook``; counts ``retrieved`` (unless ``record`` is off)."""
    if retrieval not in RETRIEVALS:
        raise ConfigError(f"retrieval must be one of {', '.join(RETRIEVALS)}, got {retrieval!r}")
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    topics = topics_of(problem)
    if retrieval == "topic":
        found: dict[str, Behavior] = {}
        for topic in topics:
            for behavior in await handbook.by_topic(topic, k=k):
                found.setdefault(behavior.name, behavior)
        chosen = list(found.values())[:k]
    else:
        only = list(topics) if retrieval == "both" and topics else None
        chosen = [hit.behavior for hit in await handbook.search(problem.text, k, topics=only)]
    if record:
        for behavior in chosen:
            await handbook.record_usage(behavior.name, "retrieved")
    return chosen


async def record_citations(handbook: BehaviorStore, cited: Sequence[str], *, correct: bool | None) -> None:
    """Count ``cited`` for each name, plus ``cited_correct`` / ``cited_wrong`` when ``correct`` is known."""
    for name in cited:
        await handbook.record_usage(name, "cited")
        if correct is not None:
            await handbook.record_usage(name, "cited_correct" if correct else "cited_wrong")
