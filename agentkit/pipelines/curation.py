"""Behavior curation ("Metacognitive Reuse" arXiv 2509.13237, section 3): solve, reflect, extract.

The model steps (``curate``: the Strategist's three calls on one problem) belong to the Strategist role
(``agentkit.roles.strategist``; re-exported here). ``build_handbook`` runs them over a
problem set through the bus (one ``CurateRequest`` per problem, answered by a ``Strategist`` role), stores the
behaviors with topics and provenance (deduplicated on insert by the store), and keeps a progress log so that
a second run skips finished problems:

- ``traces``: how many traces are curated per problem (the paper curates from several per question): trace
  ``t`` samples with seed ``seed + t`` at ``temperature``, which must then be above 0 (identical greedy traces
  would teach nothing new).
- ``progress`` (JSON Lines, default ``<store path>/curation.jsonl`` for an embedded store): one line per
  finished (problem, trace), written after its behaviors are stored; a line without a ``trace`` (a log written
  before traces existed) is trace 0. A problem interrupted between storing and logging
  is redone on resume; its behaviors then merge into themselves by name (a new version with the same text),
  so nothing is duplicated.
- Problems are taken from an iterator by ``concurrency`` workers, so the problem set is never materialised as
  one ``gather``; a failed problem is reported and retried on the next run, and never stops the others.

Whether the Strategist sees the reference answer is ``reveal_reference`` (default True for curation sets,
whose answers are known and are not test problems; self-improvement never reveals it).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from agentkit.backends.base import Backend
from agentkit.bus import Bus
from agentkit.errors import BackendError, ConfigError, HandlerFailed
from agentkit.log import get_logger
from agentkit.memory.behavior import Behavior, Provenance
from agentkit.memory.store import BehaviorStore
from agentkit.messages import (
    BehaviorProposal,
    ContrastRequest,
    CurateRequest,
    GradedAttempt,
    Problem,
    Solution,
    TokenUsage,
)
from agentkit.roles.strategist import Curation, Strategist, curate

__all__ = ["BuildReport", "Curation", "build_handbook", "curate", "store_proposal"]

_log = get_logger(__name__)


class BuildReport(BaseModel):
    """What one ``build_handbook`` run did."""

    model_config = ConfigDict(extra="forbid")

    problems: int = 0
    """Curations finished in this run: (problem, trace) pairs."""
    traces: int = 1
    """Traces curated per problem."""
    skipped: int = 0
    """(problem, trace) pairs already finished in an earlier run (found in the progress log)."""
    failed: dict[str, str] = Field(default_factory=dict)
    """problem id -> error, for problems whose curation failed (retried by the next run)."""
    stored: int = 0
    """Behaviors that became new handbook entries."""
    merged: int = 0
    """Behaviors that merged into an existing entry (same name or near-duplicate)."""
    dropped: int = 0
    """Extracted entries rejected by the parser."""
    traces_correct: int = 0
    usage: TokenUsage = TokenUsage()
    """Tokens spent on curation in this run (its cost)."""
    wall_s: float = 0.0
    progress: str | None = None


def _default_progress(store: BehaviorStore) -> Path | None:
    path = getattr(store, "path", None)
    return Path(path) / "curation.jsonl" if path is not None else None


def _finished(progress: Path | None) -> set[tuple[str, int]]:
    """The (problem id, trace) pairs the log says are done (a line without ``trace`` is trace 0)."""
    if progress is None or not progress.exists():
        return set()
    done: set[tuple[str, int]] = set()
    with progress.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                entry = json.loads(line)
                done.add((str(entry["problem_id"]), int(entry.get("trace", 0))))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                continue  # a line cut by a crash: that problem is redone
    return done


def _provenance(proposal: BehaviorProposal, trace_id: str | None, correct: bool | None) -> Provenance:
    return Provenance(problem_id=proposal.problem_id, dataset=proposal.dataset, trace_id=trace_id,
                      model=proposal.model or None, trace_correct=correct)


async def store_proposal(store: BehaviorStore, proposal: BehaviorProposal) -> tuple[list[str], int]:
    """Add a proposal's behaviors with its topics and provenance; returns (stored names, how many merged).

    A contrastive proposal's strategies name the correct attempts as their provenance and its pitfalls
    (``category="pitfall"``) the wrong ones, each with the grader's verdict."""
    if proposal.attempts:
        right = tuple(_provenance(proposal, a.trace_id or None, True) for a in proposal.attempts if a.correct)
        wrong = tuple(_provenance(proposal, a.trace_id or None, False) for a in proposal.attempts if not a.correct)
    else:
        right = wrong = (_provenance(proposal, proposal.source_trace_id, proposal.trace_correct),)
    names, merged = [], 0
    entries = [(n, i, "strategy", right) for n, i in proposal.behaviors.items()] + \
        [(n, i, "pitfall", wrong) for n, i in proposal.pitfalls.items()]
    for name, instruction, category, provenance in entries:
        stored = await store.add(Behavior(name=name, instruction=instruction, topics=proposal.topics,
                                          provenance=provenance, category=category))
        names.append(stored.name)
        merged += stored.version > 1 or stored.name != name
    return names, merged


async def build_handbook(
    problems: Iterable[Problem],
    backend: Backend,
    store: BehaviorStore,
    *,
    bus: Bus | None = None,
    concurrency: int = 4,
    progress: str | Path | None = None,
    max_tokens: int = 1024,
    max_behaviors: int = 5,
    temperature: float = 0.0,
    seed: int | None = 0,
    traces: int = 1,
    reveal_reference: bool = True,
    on_problem: Callable[[str, BehaviorProposal | None], None] | None = None,
    contrast: Mapping[str, Sequence[GradedAttempt]] | None = None,
    single_trace: bool = False,
) -> BuildReport:
    """Curate behaviors from ``problems`` into ``store`` through a Strategist on the bus; resumable.

    ``traces`` traces per problem (seeds ``seed`` .. ``seed + traces - 1``, at ``temperature`` > 0 when more
    than one). ``on_problem(problem_id, proposal or None on failure)`` is called as each trace finishes
    (progress bars).

    ``contrast`` (problem id -> graded attempts, e.g. ``agentkit.sweep.graded_drafts`` of a sweep's PDR drafts):
    curate each of those problems contrastively instead, from its group of attempts (one ``ContrastRequest``,
    strategies and pitfalls; ``traces`` does not apply). Problems without attempts are skipped.
    ``single_trace`` with ``contrast``: reflect on each problem's first attempt alone instead, as when curating
    a trace of one's own (``CurateRequest`` with that solution: reflect, extract; strategies only), the
    single-trace baseline contrastive curation is compared with (``graded_drafts(..., single=True)``).
    """
    if single_trace and contrast is None:
        raise ConfigError("single_trace curates the given attempts one at a time; pass them as contrast=")
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    if traces < 1:
        raise ConfigError(f"traces must be >= 1, got {traces}")
    if traces > 1 and temperature <= 0:
        raise ConfigError(f"{traces} traces per problem at temperature {temperature} would be one greedy trace "
                          "repeated; sample them (temperature > 0, for example 0.7)")
    if traces > 1 and seed is None:
        raise ConfigError("several traces per problem need a seed (trace t samples with seed + t)")
    log_path = Path(progress) if progress is not None else _default_progress(store)
    done = _finished(log_path)
    report = BuildReport(progress=str(log_path) if log_path else None, traces=traces)
    started = time.perf_counter()
    own_bus = bus is None
    active_bus = bus if bus is not None else Bus(name="build-handbook")
    # A Strategist already on the caller's bus answers; otherwise one is attached for this build.
    subscription = None
    if not any(s.name == Strategist.name for s in active_bus.subscriptions):
        subscription = Strategist(backend).attach(active_bus, concurrency=concurrency)
    if contrast is not None:
        traces = 1
        problems = [p for p in problems if contrast.get(p.problem_id)]
    source = ((problem, trace) for problem in problems for trace in range(traces))
    tokens = [0, 0, 0]

    async def worker() -> None:
        for problem, trace in source:  # each worker pulls the next (problem, trace): bounded work in flight
            if (problem.problem_id, trace) in done:
                report.skipped += 1
                continue
            request: CurateRequest
            if contrast is not None and single_trace:
                attempt = contrast[problem.problem_id][0]
                solution = problem.derive(Solution, sender="build_handbook", problem_id=problem.problem_id,
                                          text=attempt.text, answer=attempt.answer,
                                          **({"id": attempt.trace_id} if attempt.trace_id else {}))
                request = problem.derive(CurateRequest, sender="build_handbook", problem=problem, solution=solution,
                                         max_tokens=max_tokens, max_behaviors=max_behaviors, temperature=temperature,
                                         seed=seed, reveal_reference=reveal_reference)
            elif contrast is not None:
                request = problem.derive(ContrastRequest, sender="build_handbook", problem=problem,
                                         attempts=tuple(contrast[problem.problem_id]), max_tokens=max_tokens,
                                         max_behaviors=max_behaviors, temperature=temperature, seed=seed)
            else:
                request = problem.derive(CurateRequest, sender="build_handbook", problem=problem,
                                         max_tokens=max_tokens, max_behaviors=max_behaviors, temperature=temperature,
                                         seed=None if seed is None else seed + trace,
                                         reveal_reference=reveal_reference)
            try:
                proposal = await active_bus.request(request, BehaviorProposal, timeout=3600)
                names, merged = await store_proposal(store, proposal)
            except (BackendError, HandlerFailed) as exc:
                report.failed[problem.problem_id] = str(exc)
                _log.warning("curation failed", problem=problem.problem_id, error=str(exc))
                if on_problem:
                    on_problem(problem.problem_id, None)
                continue
            report.problems += 1
            report.stored += len(names) - merged
            report.merged += merged
            report.dropped += len(proposal.dropped)
            report.traces_correct += bool(proposal.trace_correct) if not proposal.attempts else \
                sum(a.correct for a in proposal.attempts)
            tokens[0] += proposal.usage.input_tokens
            tokens[1] += proposal.usage.output_tokens
            tokens[2] += proposal.usage.calls
            if log_path is not None:
                line = {"problem_id": problem.problem_id, "trace": trace, "behaviors": names, "merged": merged,
                        **({"contrast": len(proposal.attempts)} if proposal.attempts else {}),
                        "dropped": len(proposal.dropped), "trace_correct": proposal.trace_correct,
                        **proposal.usage.model_dump(exclude={"cached"}), "finished_at": time.time()}
                with log_path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(line) + "\n")
            if on_problem:
                on_problem(problem.problem_id, proposal)

    try:
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        if own_bus:
            await active_bus.close()
        elif subscription is not None:
            await active_bus.unsubscribe(subscription)
        await store.flush_usage()
    report.usage = TokenUsage(input_tokens=tokens[0], output_tokens=tokens[1], calls=tokens[2])
    report.wall_s = time.perf_counter() - started
    _log.info("handbook built", **report.model_dump(exclude={"failed"}), failed=len(report.failed))
    return report
