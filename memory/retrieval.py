"""Retrieval and usage accounting for behavior-conditioned inference, over any ``BehaviorStore``.

Behaviors are retrieved once per problem, before generation: by embedding top-K (the paper's AIME setting),
by topic (its MATH setting), or both (embedding search restricted to the problem's topics). A behavior
curated from the problem itself (its provenance names the problem's id) is never retrieved for it
(``exclude_own``). Usage goes to a ``UsageTarget`` as events: ``retrieved`` for every behavior put in context,
``cited`` for every one an answer names, and ``cited_correct`` / ``cited_wrong`` when the answer was graded.
The target is the handbook itself (online: later retrievals rank by what earlier answers did), or a
``UsageLog`` that keeps the events apart (frozen: what evaluation does by default, so a test set never tunes
the handbook it is answered with).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, Protocol, get_args

from agentkit import tracing
from agentkit._behavior import Behavior, BehaviorStats
from agentkit.errors import ConfigError
from agentkit.messages import Problem

from .store import BehaviorStore

__all__ = [
    "RETRIEVALS",
    "HandbookMode",
    "Retrieval",
    "UsageLog",
    "UsageTarget",
    "record_citations",
    "retrieve_behaviors",
    "topic_counts",
    "topics_of",
    "utility_score",
]

Retrieval = Literal["embedding", "topic", "both", "utility"]
RETRIEVALS: tuple[str, ...] = get_args(Retrieval)
UTILITY_POOL = 4
"""``utility`` retrieval reranks the ``UTILITY_POOL * k`` most similar behaviors."""
UTILITY_WEIGHT = 0.2
"""Weight of a behavior's graded record (posterior minus 1/2) against cosine similarity."""
EXPLORATION = 0.05
"""Weight of the exploration bonus of a behavior graded less often than its pool (UCB-style)."""
HandbookMode = Literal["frozen", "online"]
"""``frozen``: usage from answering goes to a ``UsageLog`` (the handbook does not change while it is evaluated);
``online``: it goes to the handbook (test-time learning; every row and report says so)."""


class UsageTarget(Protocol):
    """Where usage events go: a ``BehaviorStore``, or a ``UsageLog``."""

    async def record_usage(self, name: str, event: str, count: int = 1) -> None: ...


class UsageLog:
    """Usage events kept apart from the handbook, in order (``events``: (name, event, count))."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, int]] = []

    async def record_usage(self, name: str, event: str, count: int = 1) -> None:
        self.events.append((name, event, count))


def topics_of(problem: Problem) -> tuple[str, ...]:
    """The topics a problem's behaviors are stored and retrieved under: its subjects, else its dataset."""
    return problem.topics or ((problem.dataset,) if problem.dataset else ())


async def topic_counts(handbook: BehaviorStore) -> dict[str, int]:
    """Active behaviors per topic, most first (a behavior with several topics counts under each; one with none
    under ``""``): how evenly topic retrieval covers a benchmark's subjects, at a glance."""
    counts: dict[str, int] = {}
    for behavior in await handbook.list_behaviors(status="active"):
        for topic in behavior.topics or ("",):
            counts[topic] = counts.get(topic, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def utility_score(similarity: float, stats: BehaviorStats, pool_graded: int) -> float:
    """Similarity, then the behavior's graded record: ``similarity + UTILITY_WEIGHT * (posterior - 1/2) +
    EXPLORATION * sqrt(ln(1 + pool_graded) / (1 + graded))``, where the posterior is the Beta(1, 1) posterior
    mean of its citations being in correct answers and ``graded`` counts its graded citations. A behavior never
    graded is neutral (posterior 1/2) and gets the largest exploration bonus."""
    graded = stats.cited_correct + stats.cited_wrong
    posterior = (1 + stats.cited_correct) / (2 + graded)
    return (similarity + UTILITY_WEIGHT * (posterior - 0.5)
            + EXPLORATION * math.sqrt(math.log(1 + pool_graded) / (1 + graded)))


@tracing.traced("agentkit.retrieve", lambda found: {"agentkit.behaviors": [b.name for b in found],
                                                    "openinference.span.kind": "RETRIEVER"})
async def retrieve_behaviors(handbook: BehaviorStore, problem: Problem, *, k: int = 8,
                             retrieval: Retrieval | str = "embedding", record: bool = True,
                             usage: UsageTarget | None = None, exclude_own: bool = True,
                             exclude_split: bool = False) -> list[Behavior]:
    """Up to ``k`` behaviors for ``problem`` from ``handbook``; counts ``retrieved`` in ``usage`` (default: the
    handbook; none when ``record`` is off). ``exclude_own``: never a behavior curated from this very problem;
    ``exclude_split``: nor one with any source from the problem's dataset split (``Problem.dataset``: a
    handbook curated, even in part, from the split being evaluated contributes nothing curated from it).

    ``retrieval``: ``embedding`` (top-k by similarity), ``topic`` (the problem's subjects), ``both`` (similarity
    within the subjects), or ``utility``: the ``UTILITY_POOL * k`` most similar, reranked by ``utility_score``
    from the handbook's graded citation counts. Those counts change only when usage goes to the handbook (an
    online run, or curation and training data); a frozen evaluation logs its usage apart, so it never learns
    from the labels it is scored on."""
    if retrieval not in RETRIEVALS:
        raise ConfigError(f"retrieval must be one of {', '.join(RETRIEVALS)}, got {retrieval!r}")
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    topics = topics_of(problem)
    split = problem.dataset if exclude_split and problem.dataset else None
    fetch = k if not (exclude_own or split) else 2 * k + 8 if not split else max(8 * k, 64)  # room for drops

    def allowed(behavior: Behavior) -> bool:
        if exclude_own and any(p.problem_id == problem.problem_id for p in behavior.provenance):
            return False
        return split is None or all(p.dataset != split for p in behavior.provenance)

    if retrieval == "topic":
        found: dict[str, Behavior] = {}
        for topic in topics:
            for behavior in await handbook.by_topic(topic, k=fetch):
                if allowed(behavior):
                    found.setdefault(behavior.name, behavior)
        chosen = list(found.values())[:k]
    elif retrieval == "utility":
        pool = [hit for hit in await handbook.search(problem.text, max(fetch, UTILITY_POOL * k))
                if allowed(hit.behavior)][:UTILITY_POOL * k]
        pool_graded = sum(h.behavior.stats.cited_correct + h.behavior.stats.cited_wrong for h in pool)
        ranked = sorted(pool, key=lambda h: -utility_score(h.score, h.behavior.stats, pool_graded))
        chosen = [hit.behavior for hit in ranked[:k]]
    else:
        only = list(topics) if retrieval == "both" and topics else None
        chosen = [hit.behavior for hit in await handbook.search(problem.text, fetch, topics=only)
                  if allowed(hit.behavior)][:k]
    if record:
        target = usage if usage is not None else handbook
        for behavior in chosen:
            await target.record_usage(behavior.name, "retrieved")
    return chosen


async def record_citations(handbook: UsageTarget, cited: Sequence[str], *, correct: bool | None) -> None:
    """Count ``cited`` for each name, plus ``cited_correct`` / ``cited_wrong`` when ``correct`` is known."""
    for name in cited:
        await handbook.record_usage(name, "cited")
        if correct is not None:
            await handbook.record_usage(name, "cited_correct" if correct else "cited_wrong")
