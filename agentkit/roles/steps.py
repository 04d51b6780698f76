"""The answering step every answering role shares (the Student's and the Teacher's model step), and how any
role turns one model call into a ``Solution``.

``answer`` renders one prompt template (``agentkit/prompts/<prompt>.txt``) with the problem, the caller's
fields and, when behaviors are given, the behavior block (``behavior_name: instruction`` lines, the BCI paper's
prompt), makes one budgeted call and returns the ``Solution`` (answer extracted, behaviors given and cited).
Which prompt and what goes in it is the caller's choice: a method with a prompt of its own adds its template
file and nothing here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agentkit._behavior import Behavior, find_citations, render_behaviors
from agentkit.backends.base import Backend, Completion
from agentkit.calls import budgeted_chat
from agentkit.evaluation.answers import extract_answer
from agentkit.ledger import CallRecord, Ledger, estimate_tokens
from agentkit.messages import Message, Problem, Solution, TokenUsage
from agentkit.prompts import PromptTemplate, load_prompt

__all__ = ["answer", "answer_messages", "solution_from_call"]


def solution_from_call(parent: Message, problem: Problem, record: CallRecord, completion: Completion, *,
                       sender: str, prompt_hash: str, **fields: Any) -> Solution:
    """The ``Solution`` one answering call produced (answer extracted, the call's own usage), derived from
    ``parent``; ``fields`` add budgets, method, behaviors and the like. Every answer is built here."""
    fields.setdefault("answer", extract_answer(completion.text))
    return parent.derive(
        Solution, sender=sender, problem_id=problem.problem_id, text=completion.text,
        finish_reason=completion.finish_reason, model=completion.model,
        usage=TokenUsage(input_tokens=record.input_tokens, output_tokens=record.output_tokens, calls=1,
                         cached=completion.cached),
        prompt_hash=prompt_hash, **fields)


def answer_messages(problem: Problem, prompt: str = "long_cot", fields: Mapping[str, str] | None = None,
                    behaviors: Sequence[Behavior] = ()) -> tuple[PromptTemplate, list[dict[str, str]]]:
    """The template and chat messages of one answering call: ``prompt`` rendered with ``fields``, the problem
    and, with ``behaviors``, the behavior block as its ``behaviors`` field."""
    template = load_prompt(prompt)
    values = {**(fields or {}), "problem": problem.text}
    if behaviors:
        values["behaviors"] = render_behaviors(behaviors, header=None, bullet="")
    return template, template.render(**values)


async def answer(problem: Problem, backend: Backend, *, ledger: Ledger, prompt: str = "long_cot",
                 prompt_fields: Mapping[str, str] | None = None, behaviors: Sequence[Behavior] = (),
                 max_tokens: int | None = 1024, temperature: float = 0.0, seed: int | None = 0, round: int = 1,
                 branch: int = 0, final: bool = True, role: str = "student", sender: str = "student",
                 method: str = "", parent: Message | None = None) -> Solution:
    """One answering call on ``ledger`` (see the module doc); the Student's and the Teacher's model step."""
    template, messages = answer_messages(problem, prompt, prompt_fields, behaviors)
    [(record, completion)] = await budgeted_chat(
        ledger, backend, messages, role=role, round=round, branch=branch, final=final, step=template.name,
        max_tokens=max_tokens, temperature=temperature, seed=seed)
    names = tuple(b.name for b in behaviors)
    return solution_from_call(
        parent or problem, problem, record, completion, sender=sender, prompt_hash=template.hash,
        b_seq=ledger.b_seq, b_total=ledger.b_total, method=method, behaviors=names,
        cited=find_citations(completion.text, names),
        behavior_tokens=estimate_tokens(render_behaviors(behaviors, header=None, bullet="")) if behaviors else 0)
