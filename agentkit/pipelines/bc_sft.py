"""Behavior-conditioned SFT data ("Metacognitive Reuse" arXiv 2509.13237, section 4.3).

A Teacher (``agentkit.roles.teacher``, whose model step ``teach`` is re-exported here) answers each training
problem twice at the same budget and seed: with behaviors in context (the
BCI prompt) and without. ``generate_bc_sft`` writes two chat datasets in the JSON Lines shape TRL and axolotl
read, ``{"messages": [system, user, assistant]}``:

- ``bc_sft.jsonl``: the behavior-conditioned answers as targets, under the *plain* prompt: the student never
  sees behaviors, in training or at test time (the point of BC-SFT);
- ``sft.jsonl``: the plain answers under the same prompt (the paper's "SFT" baseline twin).

Behaviors for a problem come from a handbook (top-``k`` retrieval) or, as in the paper, are curated for that
problem by a Strategist (``strategist=`` backend; the reference is revealed, these are training problems).
``only_correct`` keeps only answers that match the reference, in each file separately; the report says how
many rows each file got and how many were correct, since the paper's control is similar teacher
correctness in the two corpora. The files are rewritten by every run.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from agentkit._behavior import Behavior, as_behaviors
from agentkit.backends.base import Backend
from agentkit.bus import Bus
from agentkit.errors import BackendError, ConfigError, HandlerFailed
from agentkit.evaluation.answers import answers_match
from agentkit.log import get_logger
from agentkit.memory.retrieval import Retrieval, retrieve_behaviors
from agentkit.memory.store import BehaviorStore
from agentkit.messages import BehaviorProposal, CurateRequest, Problem, TeachRequest, TeachResult
from agentkit.prompts import load_prompt
from agentkit.roles import Strategist, Teacher
from agentkit.roles.teacher import teach

__all__ = ["BCSFTReport", "generate_bc_sft", "sft_example", "teach"]

_log = get_logger(__name__)


def sft_example(problem: Problem, answer: str) -> dict[str, list[dict[str, str]]]:
    """One chat training row: the plain solve prompt (no behaviors) and ``answer`` as the assistant turn."""
    return {"messages": [*load_prompt("long_cot").render(problem=problem.text),
                         {"role": "assistant", "content": answer}]}


class BCSFTReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conditioned_path: str
    plain_path: str
    problems: int = 0
    conditioned_rows: int = 0
    plain_rows: int = 0
    conditioned_correct: int = 0
    """Behavior-conditioned answers that matched the reference (before any filtering)."""
    plain_correct: int = 0
    failed: dict[str, str] = Field(default_factory=dict)
    behaviors_per_problem: float = 0.0
    wall_s: float = 0.0


async def generate_bc_sft(
    problems: Iterable[Problem],
    teacher: Backend,
    out_dir: str | Path,
    *,
    handbook: BehaviorStore | None = None,
    k: int = 8,
    retrieval: Retrieval = "embedding",
    strategist: Backend | None = None,
    bus: Bus | None = None,
    concurrency: int = 4,
    only_correct: bool = False,
    max_tokens: int = 8192,
    curation_tokens: int = 2048,
    temperature: float = 0.0,
    seed: int | None = 0,
) -> BCSFTReport:
    """Write ``bc_sft.jsonl`` and ``sft.jsonl`` under ``out_dir`` from the Teacher's answers (see module doc).

    ``max_tokens`` caps each Teacher answer (generous by default: a cut reasoning trace is a bad target);
    ``curation_tokens`` caps each of the Strategist's calls when behaviors are curated per problem."""
    if max_tokens < 1 or curation_tokens < 1:
        raise ConfigError(f"max_tokens and curation_tokens must be >= 1, got {max_tokens} and {curation_tokens}")
    if (handbook is None) == (strategist is None):
        raise ConfigError("give exactly one source of behaviors: handbook= (retrieval) or strategist= (curation)")
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    out = Path(out_dir)
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    bc_path, plain_path = out / "bc_sft.jsonl", out / "sft.jsonl"
    report = BCSFTReport(conditioned_path=str(bc_path), plain_path=str(plain_path))
    started = time.perf_counter()
    active = bus if bus is not None else Bus(name="bc-sft")
    attached = [Teacher(teacher).attach(active, concurrency=concurrency)]
    if strategist is not None:
        attached.append(Strategist(strategist).attach(active, concurrency=concurrency))
    source = iter(problems)
    behavior_count = 0

    async def behaviors_for(problem: Problem) -> tuple[Behavior, ...]:
        if handbook is not None:
            # Training data: a problem's own behaviors are what the paper conditions on (no evaluation here).
            return tuple(await retrieve_behaviors(handbook, problem, k=k, retrieval=retrieval, exclude_own=False))
        request = problem.derive(CurateRequest, sender="bc_sft", problem=problem, max_tokens=curation_tokens,
                                 temperature=temperature, seed=seed)
        return as_behaviors((await active.request(request, BehaviorProposal, timeout=3600)).behaviors)

    with bc_path.open("w", encoding="utf-8") as bc_file, plain_path.open("w", encoding="utf-8") as plain_file:

        async def worker() -> None:
            nonlocal behavior_count
            for problem in source:
                try:
                    behaviors = await behaviors_for(problem)
                    if not behaviors:
                        raise BackendError("no behaviors for this problem", cause="no behaviors")
                    result = await active.request(problem.derive(
                        TeachRequest, sender="bc_sft", problem=problem, behaviors=behaviors, max_tokens=max_tokens,
                        temperature=temperature, seed=seed), TeachResult, timeout=3600)
                except (BackendError, HandlerFailed) as exc:
                    report.failed[problem.problem_id] = str(exc)
                    _log.warning("BC-SFT example failed", problem=problem.problem_id, error=str(exc))
                    continue
                report.problems += 1
                behavior_count += len(behaviors)
                for solution, fh, kind in ((result.conditioned, bc_file, "conditioned"),
                                           (result.plain, plain_file, "plain")):
                    if solution is None:
                        continue
                    correct = answers_match(solution.answer, problem.reference)
                    setattr(report, f"{kind}_correct", getattr(report, f"{kind}_correct") + correct)
                    if only_correct and not correct:
                        continue
                    fh.write(json.dumps(sft_example(problem, solution.text), ensure_ascii=False) + "\n")
                    setattr(report, f"{kind}_rows", getattr(report, f"{kind}_rows") + 1)

        try:
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        finally:
            if bus is None:
                await active.close()
            else:
                for subscription in attached:
                    await active.unsubscribe(subscription)
    report.behaviors_per_problem = behavior_count / report.problems if report.problems else 0.0
    report.wall_s = time.perf_counter() - started
    return report
