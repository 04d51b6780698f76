"""The long chain-of-thought baseline: one call, the whole budget to a single trace.

It is the reference point of both papers (the single-pass baseline PDR is compared with at matched
``B_seq``, and the non-behavior-conditioned baseline of BCI).
"""

from __future__ import annotations

from typing import Any

from agentkit.backends.base import BaseBackend, Completion
from agentkit.grading import extract_answer
from agentkit.ledger import CallRecord, Ledger
from agentkit.messages import Message, Problem, Solution, TokenUsage
from agentkit.prompts import load_prompt

__all__ = ["long_cot", "solution_from_call"]


def solution_from_call(parent: Message, problem: Problem, record: CallRecord, completion: Completion, *,
                       sender: str, prompt_hash: str, **fields: Any) -> Solution:
    """The ``Solution`` one answering call produced (answer extracted, the call's own usage), derived from
    ``parent``; ``fields`` add budgets, method, behaviors and the like. Every method builds its answers here."""
    fields.setdefault("answer", extract_answer(completion.text))
    return parent.derive(
        Solution, sender=sender, problem_id=problem.problem_id, text=completion.text,
        finish_reason=completion.finish_reason, model=completion.model,
        usage=TokenUsage(input_tokens=record.input_tokens, output_tokens=record.output_tokens, calls=1,
                         cached=completion.cached),
        prompt_hash=prompt_hash, **fields)


async def long_cot(
    problem: Problem,
    backend: BaseBackend,
    *,
    ledger: Ledger | None = None,
    max_tokens: int | None = 1024,
    temperature: float = 0.0,
    seed: int | None = 0,
    role: str = "student",
    sender: str = "student",
) -> Solution:
    """Solve ``problem`` with one chain-of-thought call; the ledger records it as the final answer."""
    ledger = ledger if ledger is not None else Ledger(run_id=problem.run_id)
    template = load_prompt("long_cot")
    [(record, completion)] = await ledger.chat(
        backend, template.render(problem=problem.text), role=role, final=True, max_tokens=max_tokens,
        temperature=temperature, seed=seed,
    )
    return solution_from_call(problem, problem, record, completion, sender=sender, prompt_hash=template.hash,
                              b_seq=ledger.b_seq, b_total=ledger.b_total, method="long-cot")
