"""Behavior-conditioned inference (BCI, "Metacognitive Reuse" arXiv 2509.13237, section 4.1).

Behaviors are retrieved once, before generation (``retrieve_behaviors``: by embedding top-K, the paper's AIME
setting; by topic, its MATH setting; or both, embedding search restricted to the problem's topics), written
into the paper's BCI prompt (``agentkit/prompts/bci.txt``: ``behavior_name: instruction`` lines, and the
instruction to refer to a behavior by name when using it), and the answer's citations are found by name.

Usage statistics go to the handbook: ``retrieved`` for every behavior put in context, ``cited`` for every
one the answer names, and, when the problem's reference is known, ``cited_correct`` or ``cited_wrong``
(graded with ``answers_match``). ``Solution.behavior_tokens`` estimates the input tokens the behavior block
took (the cost the paper leaves out of its plots).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from agentkit.backends.base import BaseBackend
from agentkit.errors import ConfigError
from agentkit.grading import answers_match, extract_answer
from agentkit.ledger import Ledger, estimate_tokens
from agentkit.memory.behavior import Behavior, find_citations
from agentkit.messages import Problem, Solution
from agentkit.methods.long_cot import solution_from_call
from agentkit.prompts import load_prompt

__all__ = ["Retrieval", "bci", "bci_messages", "record_citations", "retrieve_behaviors", "topics_of"]

Retrieval = Literal["embedding", "topic", "both"]
RETRIEVALS: tuple[str, ...] = ("embedding", "topic", "both")


def topics_of(problem: Problem) -> tuple[str, ...]:
    """The topics a problem's behaviors are stored and retrieved under: its subjects, else its dataset."""
    return problem.topics or ((problem.dataset,) if problem.dataset else ())


async def retrieve_behaviors(handbook: Any, problem: Problem, *, k: int = 8, retrieval: str = "embedding",
                             record: bool = True) -> list[Behavior]:
    """Up to ``k`` behaviors for ``problem`` from ``handbook`` (a ``BehaviorStore``); counts ``retrieved``."""
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


async def record_citations(handbook: Any, cited: Sequence[str], *, correct: bool | None) -> None:
    """Count ``cited`` for each name, plus ``cited_correct`` / ``cited_wrong`` when ``correct`` is known."""
    for name in cited:
        await handbook.record_usage(name, "cited")
        if correct is not None:
            await handbook.record_usage(name, "cited_correct" if correct else "cited_wrong")


def _as_mapping(behaviors: Sequence[Behavior] | Mapping[str, str]) -> dict[str, str]:
    if isinstance(behaviors, Mapping):
        return dict(behaviors)
    return {b.name: b.instruction for b in behaviors}


def behavior_lines(behaviors: Mapping[str, str]) -> str:
    """``behavior_name: instruction`` lines, the paper's BCI layout."""
    return "\n".join(f"{name}: {instruction}" for name, instruction in behaviors.items())


def bci_messages(problem: Problem, behaviors: Sequence[Behavior] | Mapping[str, str]) -> list[dict[str, str]]:
    """The behavior-conditioned prompt for ``problem``; with no behaviors, the plain chain-of-thought prompt."""
    pairs = _as_mapping(behaviors)
    if not pairs:
        return load_prompt("long_cot").render(problem=problem.text)
    return load_prompt("bci").render(problem=problem.text, behaviors=behavior_lines(pairs))


async def bci(
    problem: Problem,
    backend: BaseBackend,
    *,
    behaviors: Sequence[Behavior] | Mapping[str, str] | None = None,
    handbook: Any = None,
    k: int = 8,
    retrieval: str = "embedding",
    ledger: Ledger | None = None,
    max_tokens: int | None = 1024,
    temperature: float = 0.0,
    seed: int | None = 0,
    round: int = 1,
    branch: int = 0,
    final: bool = True,
    role: str = "student",
    sender: str = "student",
    method: str = "bci",
) -> Solution:
    """Solve ``problem`` with behaviors in context: ``behaviors`` as given, else the top ``k`` from ``handbook``.

    With ``handbook``, usage is recorded (retrieved, cited, and cited_correct / cited_wrong when the reference
    is known). With no behaviors at all this is the plain chain-of-thought solve (``long_cot``'s prompt)."""
    if behaviors is None:
        if handbook is None:
            raise ConfigError("bci() needs behaviors= or a handbook= to retrieve them from")
        behaviors = await retrieve_behaviors(handbook, problem, k=k, retrieval=retrieval)
    pairs = _as_mapping(behaviors)
    ledger = ledger if ledger is not None else Ledger(run_id=problem.run_id)
    template = load_prompt("bci" if pairs else "long_cot")
    [(record, completion)] = await ledger.chat(
        backend, bci_messages(problem, pairs), role=role, round=round, branch=branch, final=final,
        max_tokens=max_tokens,
        temperature=temperature, seed=seed,
    )
    answer = extract_answer(completion.text)
    cited = find_citations(completion.text, pairs)
    if handbook is not None and cited:
        correct = answers_match(answer, problem.reference) if problem.reference is not None else None
        await record_citations(handbook, cited, correct=correct)
    return solution_from_call(
        problem, problem, record, completion, sender=sender, prompt_hash=template.hash, answer=answer,
        b_seq=ledger.b_seq, b_total=ledger.b_total, method=method, behaviors=tuple(pairs), cited=cited,
        behavior_tokens=estimate_tokens(behavior_lines(pairs)) if pairs else 0)
