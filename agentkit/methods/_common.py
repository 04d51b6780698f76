"""What the methods share: planning calls from a sequential budget, and showing earlier answers in a prompt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from agentkit.backends.base import Backend
from agentkit.calls import counted_prompt_tokens
from agentkit.errors import BudgetExceeded
from agentkit.ledger import estimate_prompt_tokens
from agentkit.messages import Solution
from agentkit.prompts import load_prompt
from agentkit.registry import Plan
from agentkit.roles.pdr_roles import JUDGE_OUTPUT_TOKENS

if TYPE_CHECKING:
    from .pdr import PDRConfig

__all__ = ["counted_planning_prompt_tokens", "numbered_solutions", "plan_budget", "plan_draft_tokens",
           "planning_prompt_tokens"]


def numbered_solutions(solutions: Sequence[Solution]) -> str:
    """Earlier answers as a prompt shows several at once (critique-and-revise of many, RSA's aggregation):
    ``Solution i:`` and its text, blank lines between."""
    return "\n\n".join(f"Solution {i}:\n{s.text}" for i, s in enumerate(solutions, 1))


def planning_prompt_tokens(problem_text: str, config: PDRConfig | None = None) -> int:
    """The prompt size to plan a method's drafts with: its longest draft prompt (the refine template with an
    empty workspace for PDR/SR, the solve template for one long chain of thought), counted as the budgeted call
    counts prompts when it caps a call (``estimate_prompt_tokens``: the estimator + 4 per message)."""
    return estimate_prompt_tokens(_planning_prompt(problem_text, config))


def _planning_prompt(problem_text: str, config: PDRConfig | None) -> list[dict[str, str]]:
    template = "long_cot" if config is None or config.rounds == 1 else "pdr_refine"
    return load_prompt(template).render(problem=problem_text, workspace="")


async def counted_planning_prompt_tokens(backend: Backend, problem_text: str, config: PDRConfig | None = None) -> int:
    """``planning_prompt_tokens``, counted exactly by ``backend`` where it can (its tokenizer endpoint): a method
    that plans its calls at run time plans them from the prompt the server will really see."""
    return await counted_prompt_tokens(backend, _planning_prompt(problem_text, config))


def plan_budget(target_bseq: int, *, prompt_tokens: int, config: PDRConfig | None = None) -> Plan:
    """How a sequential budget ``target_bseq`` splits: the per-draft ``max_tokens`` m and what else lies on the
    critical path (``config`` None: one long chain of thought). Model of the critical path, with P = prompt
    tokens and m = draft output:

    - long CoT: ``P + m``;
    - PDR/SR: every round's draft stage ``P + W_r + m`` (W_1 = 0, W_r = kappa), plus for r < R the distill
      stage: ``summary``/``error-analysis`` ``P + M_r * m + kappa``; ``judge`` selection
      ``P + M_r * m + 16``; agreement-based and random selection make no call.
    """
    if config is None:
        return Plan(max_tokens=target_bseq - prompt_tokens, fixed=prompt_tokens)
    schedule = config.schedule
    fixed, per_m = 0, 0
    for r, drafts in enumerate(schedule, 1):
        fixed += prompt_tokens + (config.kappa if r > 1 else 0)
        per_m += 1
        if r < len(schedule):
            if config.variant in {"summary", "error-analysis"}:
                fixed += prompt_tokens + config.kappa
                per_m += drafts
            elif config.select == "judge" and config.variant in {"topk", "topk-per-sample"}:
                fixed += prompt_tokens + JUDGE_OUTPUT_TOKENS
                per_m += drafts
    return Plan(max_tokens=(target_bseq - fixed) // per_m, fixed=fixed, per_token=per_m)


def plan_draft_tokens(target_bseq: int, *, prompt_tokens: int, config: PDRConfig | None = None) -> int:
    """Per-draft ``max_tokens`` so that a run's ``B_seq`` is at most ``target_bseq`` (``plan_budget``'s m).
    Raises ``BudgetExceeded`` when not even one output token per draft fits."""
    m = plan_budget(target_bseq, prompt_tokens=prompt_tokens, config=config).max_tokens
    if m < 1:
        raise BudgetExceeded(f"a sequential budget of {target_bseq} tokens leaves no room for a draft "
                             f"(prompt {prompt_tokens} tokens); raise the budget or lower kappa/rounds")
    return int(m)
