"""Streaming test-time learning: a handbook that learns as a stream of problems goes by, measured as it learns.

``learn_from_stream`` walks problems in a fixed order (``stream_order``: seeded) and, for each item, first
**answers** it with the handbook as it is at that moment (BCI: retrieved behaviors in context; with no handbook,
BCI's twin prompt without them), then, in ``online`` mode, **curates** from that very attempt (the Strategist
reflects on it and extracts behaviors into the handbook, through ``store.add``: its deduplication and its
``max_active`` capacity policy apply, so the handbook stays bounded) before the next item. Three modes on one
stream make the comparison:

- ``online``: answer, then learn from the attempt (test-time learning);
- ``frozen``: answer with the handbook as given; nothing is written to it (usage is logged apart);
- ``none``: answer with no behaviors.

``reveal_reference`` says whether curation may see the item's reference answer (the ReasoningBank-style
"with labels" setting) or not (the label-free setting: then no grade reaches the handbook at all, neither in the
reflection nor in citation statistics). Every row records the handbook version it was answered with (how many
curations had been applied) and its size, the answering tokens and the curation tokens, so a run is replayable
and "tokens spent building the handbook" sits next to "tokens spent answering".

Resumable: each mode appends one JSON line per finished item to its log, after the item's behaviors are stored;
the log's first line names the stream (a hash of its order), and a log of another stream is refused.
``learning_curve`` turns rows into accuracy over items seen, with Wilson intervals.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from agentkit.backends.base import Backend
from agentkit.errors import ConfigError
from agentkit.evaluation.answers import answers_match
from agentkit.evaluation.stats import wilson_interval
from agentkit.memory.retrieval import Retrieval, UsageLog
from agentkit.memory.store import BehaviorStore
from agentkit.messages import Problem
from agentkit.methods.bci import bci

from .curation import curate, store_proposal

__all__ = ["StreamMode", "StreamRow", "learn_from_stream", "learning_curve", "stream_id", "stream_order"]

StreamMode = Literal["online", "frozen", "none"]


class StreamRow(BaseModel):
    """One item of a stream: how it was answered, with which handbook, and what learning from it cost."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int
    problem_id: str
    mode: StreamMode
    answer: str | None
    correct: bool
    handbook_version: int
    """Curations applied to the handbook before this item was answered (0: as given)."""
    handbook_size: int
    """Active behaviors when this item was answered."""
    behaviors_in_context: int
    answer_input_tokens: int
    answer_output_tokens: int
    curation_input_tokens: int = 0
    curation_output_tokens: int = 0
    stored: tuple[str, ...] = ()
    """Behaviors this item's curation stored or merged into."""


def stream_order(problems: Sequence[Problem], seed: int) -> list[Problem]:
    """The problems in a seeded order (the same seed gives the same stream)."""
    ordered = list(problems)
    random.Random(seed).shuffle(ordered)
    return ordered


def stream_id(problems: Sequence[Problem]) -> str:
    """A stream's identity: a hash of its items' ids in order."""
    return hashlib.sha256("\n".join(p.problem_id for p in problems).encode()).hexdigest()[:16]


def _read_log(log: Path, stream: str, mode: str) -> list[StreamRow]:
    if not log.exists():
        return []
    rows: list[StreamRow] = []
    with log.open(encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    if not lines:
        return []
    try:
        header = json.loads(lines[0])
    except json.JSONDecodeError:
        raise ConfigError(f"{log} is not a stream log (its first line is not JSON)") from None
    if header.get("stream") != stream or header.get("mode") != mode:
        raise ConfigError(f"{log} belongs to another stream or mode (stream {header.get('stream')!r}, mode "
                          f"{header.get('mode')!r}; this run: {stream!r}, {mode!r}): use a new log")
    for line in lines[1:]:
        try:
            rows.append(StreamRow.model_validate_json(line))
        except ValueError:
            break  # a line cut by a crash: that item is redone
    return rows


async def learn_from_stream(
    problems: Sequence[Problem],
    backend: Backend,
    *,
    mode: StreamMode,
    handbook: BehaviorStore | None = None,
    log: str | Path | None = None,
    k: int = 4,
    retrieval: Retrieval = "embedding",
    max_tokens: int = 512,
    curation_tokens: int = 512,
    max_behaviors: int = 3,
    reveal_reference: bool = True,
    temperature: float = 0.0,
    seed: int = 0,
    on_item: Callable[[StreamRow], None] | None = None,
) -> list[StreamRow]:
    """Answer ``problems`` in order, learning from each attempt in ``online`` mode (see the module doc); returns
    every row of the stream, those of an earlier run of the same log included."""
    if mode not in ("online", "frozen", "none"):
        raise ConfigError(f"mode must be online, frozen or none, got {mode!r}")
    if mode != "none" and handbook is None:
        raise ConfigError(f"mode {mode!r} needs a handbook (it may start empty)")
    stream = stream_id(problems)
    path = Path(log) if log is not None else None
    rows = _read_log(path, stream, mode) if path is not None else []
    if path is not None and not rows:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"stream": stream, "mode": mode, "items": len(problems),
                                    "reveal_reference": reveal_reference, "started_at": time.time()}) + "\n")
    for index in range(len(rows), len(problems)):
        problem = problems[index]
        size = await handbook.count() if handbook is not None else 0
        frozen_log = UsageLog()
        # Usage from answering reaches the handbook only online and only when labels may (citation grades).
        usage = handbook if (mode == "online" and reveal_reference) else frozen_log
        solution = await bci(
            problem, backend, behaviors=() if mode == "none" else None, handbook=None if mode == "none" else handbook,
            k=k, retrieval=retrieval, max_tokens=max_tokens, temperature=temperature, seed=seed, usage=usage,
            method="bci" if mode != "none" else "bci-plain")
        correct = problem.reference is not None and answers_match(solution.answer, problem.reference)
        stored: tuple[str, ...] = ()
        cur_in = cur_out = 0
        if mode == "online":
            assert handbook is not None
            curation = await curate(problem, backend, solution=solution, max_tokens=curation_tokens,
                                    max_behaviors=max_behaviors, temperature=temperature, seed=seed,
                                    reveal_reference=reveal_reference)
            proposal = curation.proposal
            if not reveal_reference:  # no grade reaches the handbook: provenance without the verdict
                proposal = proposal.model_copy(update={"trace_correct": None})
            names, _ = await store_proposal(handbook, proposal)
            stored = tuple(names)
            cur_in, cur_out = proposal.usage.input_tokens, proposal.usage.output_tokens
        row = StreamRow(
            index=index, problem_id=problem.problem_id, mode=mode, answer=solution.answer, correct=correct,
            # online, every earlier item was curated into the handbook: its version is the item's index
            handbook_version=index if mode == "online" else 0, handbook_size=size,
            behaviors_in_context=len(solution.behaviors),
            answer_input_tokens=solution.usage.input_tokens, answer_output_tokens=solution.usage.output_tokens,
            curation_input_tokens=cur_in, curation_output_tokens=cur_out, stored=stored)
        if path is not None:
            with path.open("a", encoding="utf-8") as fh:
                fh.write(row.model_dump_json() + "\n")
        rows.append(row)
        if on_item is not None:
            on_item(row)
    if handbook is not None:
        await handbook.flush_usage()
    return rows


def learning_curve(rows: Sequence[StreamRow], *, every: int = 10) -> list[dict[str, Any]]:
    """Accuracy over the first n items for n = every, 2 * every, ... and the last, with 95% Wilson intervals."""
    if every < 1:
        raise ConfigError(f"every must be >= 1, got {every}")
    points: list[dict[str, Any]] = []
    marks = sorted({*range(every, len(rows) + 1, every), len(rows)} - {0})
    for n in marks:
        right = sum(r.correct for r in rows[:n])
        low, high = wilson_interval(right, n)
        points.append({"seen": n, "accuracy": right / n, "ci_low": low, "ci_high": high})
    return points
