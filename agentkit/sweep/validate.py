"""``agentkit sweep validate SPEC``: plan every cell of a spec before anything runs.

For every dataset x method (with its parameters) x budget, each problem's cell is planned with the method's
own ``Method.plan`` and the real prompts: the output cap each answering call gets at that sequential budget
(a method whose ``budget_kind`` is ``output`` gets the budget itself as the cap).
A cell whose cap is below the spec's ``min_draft_tokens`` is infeasible (it would fail, or answer from a few
dozen tokens); the report names it, says how many problems it hits and what budget it needs. ``sweep run``
validates first and refuses an infeasible spec (``--no-validate`` runs it anyway).
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict

from agentkit.errors import ConfigError
from agentkit.registry import get_method

from .spec import BudgetKind, SweepSpec

__all__ = ["CellPlan", "duration", "infeasible", "validate_spec"]


class CellPlan(BaseModel):
    """One (dataset, method, budget) of a spec, planned over every problem of the dataset."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    method: str
    """The method's key in the spec (label, or name and parameters)."""
    budget: int
    budget_kind: BudgetKind = "sequential"
    problems: int
    infeasible: int
    """Problems whose output cap per answering call is below ``min_draft_tokens``."""
    min_tokens: int
    """The smallest output cap over the problems (the longest prompt's)."""
    max_tokens: int
    needs: int
    """The budget that gives every problem at least ``min_draft_tokens`` per answering call."""
    cells: int = 0
    """Cells of this group: problems x seeds x backends."""
    max_generated: int = 0
    """Tokens the group's cells generate at most (``Method.max_output``: every call at its cap; prefill left
    out): what ``--throughput`` turns into hours."""

    @property
    def feasible(self) -> bool:
        return self.infeasible == 0


def validate_spec(spec: SweepSpec) -> list[CellPlan]:
    """Plan every (dataset, method, budget) of ``spec``; nothing is called."""
    out: list[CellPlan] = []
    for d in spec.datasets:
        problems = d.load()
        for entry in spec.methods:
            method = get_method(entry.name)
            params = method.params(**{"temperature": spec.temperature, **entry.params})
            repeats = len(spec.seeds) * len(spec.backends)
            for budget in entry.budgets or spec.budgets:
                output_cap = entry.budget_kind == "output"
                if output_cap:  # the budget is the cap: nothing to plan
                    caps, needs = [budget] * len(problems), spec.min_draft_tokens
                else:
                    plans = [method.plan(p, params, budget) for p in problems]
                    caps = [plan.max_tokens for plan in plans]
                    needs = max((plan.needs(spec.min_draft_tokens) for plan in plans), default=0)
                generated = sum(method.max_output(p, params, budget, output_cap=output_cap) for p in problems)
                out.append(CellPlan(
                    dataset=d.name, method=entry.key, budget=budget, budget_kind=entry.budget_kind,
                    problems=len(problems), infeasible=sum(c < spec.min_draft_tokens for c in caps),
                    min_tokens=min(caps, default=0), max_tokens=max(caps, default=0), needs=needs,
                    cells=len(problems) * repeats, max_generated=generated * repeats))
    return out


def _label(p: CellPlan) -> str:
    return f"B_seq {p.budget}" if p.budget_kind == "sequential" else f"an output cap of {p.budget}"


def infeasible(plans: list[CellPlan], min_draft_tokens: int) -> list[str]:
    """One line per infeasible (dataset, method, budget): what it leaves and what it needs."""
    return [f"{p.method} at {_label(p)} on {p.dataset}: {p.infeasible}/{p.problems} problems leave "
            f"{max(p.min_tokens, 0)} tokens per answering call (< {min_draft_tokens}); needs "
            f"{'B_seq' if p.budget_kind == 'sequential' else 'an output cap'} >= {p.needs}"
            for p in plans if not p.feasible]


def duration(plans: list[CellPlan], throughput: float) -> dict[str, float]:
    """Cells, generated tokens at most, and the hours they take at ``throughput`` generated tokens per second
    (an upper bound on decoding: every call at its cap; prefill is left out)."""
    if not (throughput > 0 and math.isfinite(throughput)):
        raise ConfigError(f"throughput must be a positive number of tokens per second, got {throughput}")
    cells = sum(p.cells for p in plans)
    tokens = sum(p.max_generated for p in plans)
    return {"cells": cells, "max_generated_tokens": tokens, "throughput": throughput,
            "hours": round(tokens / throughput / 3600, 2)}
