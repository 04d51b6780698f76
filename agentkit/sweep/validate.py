"""``agentkit sweep validate SPEC``: plan every cell of a spec before anything runs.

For every dataset x method (with its parameters) x budget, each problem's cell is planned with the method's
own ``Method.plan`` and the real prompts: the output cap each answering call gets at that sequential budget.
A cell whose cap is below the spec's ``min_draft_tokens`` is infeasible (it would fail, or answer from a few
dozen tokens); the report names it, says how many problems it hits and what budget it needs. ``sweep run``
validates first and refuses an infeasible spec (``--no-validate`` runs it anyway).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from agentkit.evaluation.datasets import load_dataset
from agentkit.registry import get_method

from .spec import SweepSpec

__all__ = ["CellPlan", "infeasible", "validate_spec"]


class CellPlan(BaseModel):
    """One (dataset, method, budget) of a spec, planned over every problem of the dataset."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    method: str
    """The method's key in the spec (label, or name and parameters)."""
    budget: int
    problems: int
    infeasible: int
    """Problems whose output cap per answering call is below ``min_draft_tokens``."""
    min_tokens: int
    """The smallest output cap over the problems (the longest prompt's)."""
    max_tokens: int
    needs: int
    """The budget that gives every problem at least ``min_draft_tokens`` per answering call."""

    @property
    def feasible(self) -> bool:
        return self.infeasible == 0


def validate_spec(spec: SweepSpec) -> list[CellPlan]:
    """Plan every (dataset, method, budget) of ``spec``; nothing is called."""
    out: list[CellPlan] = []
    for d in spec.datasets:
        problems = load_dataset(d.name, limit=d.limit, seed=d.sample_seed, problem_field=d.problem_field,
                                answer_field=d.answer_field, id_field=d.id_field, subject_field=d.subject_field)
        for entry in spec.methods:
            method = get_method(entry.name)
            params = method.params(**{"temperature": spec.temperature, **entry.params})
            for budget in entry.budgets or spec.budgets:
                plans = [method.plan(p, params, budget) for p in problems]
                caps = [plan.max_tokens for plan in plans]
                out.append(CellPlan(
                    dataset=d.name, method=entry.key, budget=budget, problems=len(plans),
                    infeasible=sum(c < spec.min_draft_tokens for c in caps), min_tokens=min(caps, default=0),
                    max_tokens=max(caps, default=0),
                    needs=max((plan.needs(spec.min_draft_tokens) for plan in plans), default=0)))
    return out


def infeasible(plans: list[CellPlan], min_draft_tokens: int) -> list[str]:
    """One line per infeasible (dataset, method, budget): what it leaves and what it needs."""
    return [f"{p.method} at B_seq {p.budget} on {p.dataset}: {p.infeasible}/{p.problems} problems leave "
            f"{max(p.min_tokens, 0)} tokens per answering call (< {min_draft_tokens}); needs B_seq >= {p.needs}"
            for p in plans if not p.feasible]
