"""Behavior-guided self-improvement and its critique-and-revise baseline ("Metacognitive Reuse" arXiv
2509.13237, section 4.2).

- ``self_improve``: the model answers (``attempts`` traces, concurrently), then acts as its own Strategist on
  those traces (reflect and extract, the reference never shown), and answers again with the behaviors it
  extracted in the BCI prompt: question and behaviors only, as the paper writes ``(B, Q) -> R2``. The
  behaviors form a per-question handbook; they are not stored unless the caller stores them.
- ``critique_revise``: the model answers, then is shown its answer and asked to critique and revise it.

Both give the answering calls the same ``max_tokens`` and seed, so they compare at the same budget; the ledger
holds every call (attempts and curation included, which the paper's token axis leaves out) and the result's
``solution`` carries ``B_seq`` / ``B_total`` of the whole method.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict

from agentkit.backends.base import BaseBackend
from agentkit.errors import ConfigError
from agentkit.ledger import Ledger
from agentkit.messages import Problem, Solution, TokenUsage
from agentkit.methods.bci import bci
from agentkit.methods.curation import curate
from agentkit.methods.long_cot import solution_from_call
from agentkit.prompts import load_prompt

__all__ = ["Improvement", "critique_revise", "self_improve"]


class Improvement(BaseModel):
    """The second answer and what led to it."""

    model_config = ConfigDict(frozen=True)

    solution: Solution
    """The final (second) answer; its ``usage``, ``b_seq`` and ``b_total`` cover the whole method (the final
    call alone is in the ledger as the ``final`` call: ``ledger.answer_output_tokens``)."""
    attempts: tuple[Solution, ...]
    """The first answers."""
    behaviors: dict[str, str] = {}
    """The per-question behaviors (self-improvement only)."""
    dropped: tuple[tuple[str, str], ...] = ()
    """Extracted entries that were rejected, with reasons."""


async def _attempts(problem: Problem, backend: BaseBackend, ledger: Ledger, n: int, max_tokens: int | None,
                    temperature: float, seed: int | None) -> tuple[Solution, ...]:
    if n < 1:
        raise ConfigError(f"attempts must be >= 1, got {n}")
    return tuple(await asyncio.gather(*(
        bci(problem, backend, behaviors={}, ledger=ledger, max_tokens=max_tokens, temperature=temperature,
            seed=None if seed is None else seed + i, round=1, branch=i, final=False, method="attempt")
        for i in range(n))))


def _finish(solution: Solution, ledger: Ledger, method: str) -> Solution:
    """The final answer, with usage and budgets of the whole method (attempts and curation included)."""
    usage = TokenUsage(input_tokens=ledger.input_tokens, output_tokens=ledger.output_tokens, calls=ledger.calls,
                       cached=solution.usage.cached)
    return solution.with_(method=method, b_seq=ledger.b_seq, b_total=ledger.b_total, usage=usage)


async def self_improve(
    problem: Problem,
    backend: BaseBackend,
    *,
    attempts: int = 1,
    ledger: Ledger | None = None,
    max_tokens: int | None = 1024,
    curation_tokens: int = 1024,
    max_behaviors: int = 5,
    temperature: float = 0.0,
    seed: int | None = 0,
) -> Improvement:
    """Answer, curate behaviors from the model's own attempts, answer again with them."""
    ledger = ledger if ledger is not None else Ledger(run_id=problem.run_id)
    first = await _attempts(problem, backend, ledger, attempts, max_tokens, temperature, seed)
    curations = await asyncio.gather(*(
        curate(problem, backend, solution=s, ledger=ledger, max_tokens=curation_tokens, max_behaviors=max_behaviors,
               temperature=temperature, seed=seed, reveal_reference=False, first_round=2, branch=i)
        for i, s in enumerate(first)))
    behaviors: dict[str, str] = {}
    dropped: list[tuple[str, str]] = []
    for c in curations:
        for name, instruction in c.proposal.behaviors.items():
            behaviors.setdefault(name, instruction)
        dropped.extend(c.proposal.dropped)
    final = await bci(problem, backend, behaviors=behaviors, ledger=ledger, max_tokens=max_tokens,
                      temperature=temperature, seed=seed, round=4, method="self-improve")
    return Improvement(solution=_finish(final, ledger, "self-improve"), attempts=first, behaviors=behaviors,
                       dropped=tuple(dropped))


async def critique_revise(
    problem: Problem,
    backend: BaseBackend,
    *,
    ledger: Ledger | None = None,
    max_tokens: int | None = 1024,
    temperature: float = 0.0,
    seed: int | None = 0,
) -> Improvement:
    """Answer, then critique and revise that answer (the paper's baseline for self-improvement)."""
    ledger = ledger if ledger is not None else Ledger(run_id=problem.run_id)
    [first] = await _attempts(problem, backend, ledger, 1, max_tokens, temperature, seed)
    template = load_prompt("critique_revise")
    [(record, completion)] = await ledger.chat(
        backend, template.render(problem=problem.text, solution=first.text), role="student", round=2, final=True,
        max_tokens=max_tokens, temperature=temperature, seed=seed)
    revised = solution_from_call(first, problem, record, completion, sender="student", prompt_hash=template.hash)
    return Improvement(solution=_finish(revised, ledger, "critique-revise"), attempts=(first,))
