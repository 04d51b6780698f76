"""``agentkit sweep validate SPEC``: plan every cell of a spec before anything runs.

For every dataset x method (with its parameters) x budget, each problem's cell is planned with the method's
own ``Method.plan`` and the real prompts: the output cap each answering call gets at that sequential budget
(a method whose ``budget_kind`` is ``output`` gets the budget itself as the cap).
A cell whose cap is below the spec's ``min_draft_tokens`` is infeasible (it would fail, or answer from a few
dozen tokens); the report names it, says how many problems it hits and what budget it needs. ``sweep run``
validates first and refuses an infeasible spec (``--no-validate`` runs it anyway).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from pydantic import BaseModel, ConfigDict

from agentkit.errors import ConfigError
from agentkit.evaluation.stats import mcnemar_mde
from agentkit.methods import get_method
from agentkit.registry import single_call_plan

from .spec import BudgetKind, SweepSpec, require_handbooks

__all__ = ["CellPlan", "duration", "handbook_split_warnings", "implied_comparisons", "infeasible", "starved", "validate_spec"]


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
    share: float = 1.0
    """The smallest ratio, over the problems, of this method's output cap per answering call to what one long
    chain of thought gets at the same budget on the same problem (1 for an output-cap budget)."""
    max_generated: int = 0
    """Tokens the group's cells generate at most (``Method.max_output``: every call at its cap; prefill left
    out): what ``--throughput`` turns into hours."""

    @property
    def feasible(self) -> bool:
        return self.infeasible == 0


def validate_spec(spec: SweepSpec, *, stores: bool = True) -> list[CellPlan]:
    """Plan every (dataset, method, budget) of ``spec``; nothing is called. Every check ``sweep run`` makes when it
    loads a spec is made here too (the spec's fields, plugins and embedder when it loaded; its datasets; with
    ``stores``, first, its handbook stores: ``require_handbooks``), so a spec that validates does not fail to
    start."""
    if stores:
        require_handbooks(spec)
    out: list[CellPlan] = []
    for d in spec.datasets:
        problems = d.load()
        cot_caps: dict[int, list[int]] = {}
        for entry in spec.methods:
            method = get_method(entry.name)
            params = method.params(**{"temperature": spec.temperature, **entry.params})
            repeats = len(spec.seeds) * len(spec.backends)
            for budget in entry.budgets or spec.budgets:
                output_cap = entry.budget_kind == "output"
                share = 1.0
                if output_cap:  # the budget is the cap: nothing to plan
                    caps, needs = [budget] * len(problems), spec.min_draft_tokens
                else:
                    plans = [method.plan(p, params, budget) for p in problems]
                    caps = [plan.max_tokens for plan in plans]
                    needs = max((plan.needs(spec.min_draft_tokens) for plan in plans), default=0)
                    if budget not in cot_caps:
                        cot_caps[budget] = [single_call_plan(p, budget).max_tokens for p in problems]
                    share = min((max(c, 0) / m for c, m in zip(caps, cot_caps[budget], strict=True) if m > 0),
                                default=1.0)
                generated = sum(method.max_output(p, params, budget, output_cap=output_cap) for p in problems)
                out.append(CellPlan(
                    dataset=d.name, method=entry.key, budget=budget, budget_kind=entry.budget_kind,
                    problems=len(problems), infeasible=sum(c < spec.min_draft_tokens for c in caps),
                    min_tokens=min(caps, default=0), max_tokens=max(caps, default=0), needs=needs,
                    cells=len(problems) * repeats, max_generated=generated * repeats, share=round(share, 4)))
    return out


def starved(plans: list[CellPlan], fraction: float) -> list[str]:
    """One line per feasible (dataset, method, budget) whose calls get less than ``fraction`` of what one long
    chain of thought gets at the same budget (``SweepSpec.starved_fraction``): a comparison at that budget pits
    a starved arm against a full one. A warning, not an error: some methods are meant to split their budget."""
    return [f"{p.method} at {_label(p)} on {p.dataset}: {p.min_tokens}-{p.max_tokens} tokens per answering call, "
            f"{p.share:.1%} of what long CoT gets there (below {fraction:.0%}); a larger budget or fewer "
            "drafts/rounds gives it a fair share" for p in plans if p.feasible and p.share < fraction]


def implied_comparisons(spec: SweepSpec, plans: list[CellPlan], *, pilot: str | None = None,
                        discordance: float = 0.25, alpha: float = 0.05, power: float = 0.8) -> list[dict[str, Any]]:
    """The paired comparisons a report of this spec makes (each method against each baseline at the same dataset
    and budget, as ``sweep report`` pairs them) and, for each, the minimum detectable difference at ``power``
    and ``alpha`` (``mcnemar_mde``) for its number of problems: with an assumed ``discordance`` (the share of
    problems exactly one of the two methods solves), or the one measured for that pair in a ``pilot`` results
    database (the mean over its measured pairs where this pair did not run there). Seeds are averaged per problem,
    so the problems, not the cells, are the sample (a conservative MDE for several seeds)."""
    measured = _pilot_discordance(pilot) if pilot else {}
    fallback = sum(measured.values()) / len(measured) if measured else None
    base = {m.key for m in spec.methods if get_method(m.name).baseline}
    arms: dict[tuple[str, int, str], dict[str, CellPlan]] = {}
    for p in plans:
        arms.setdefault((p.dataset, p.budget, p.budget_kind), {})[p.method] = p
    out = []
    for (dataset, budget, kind), group in sorted(arms.items()):
        for b in sorted(base & set(group)):
            for a in sorted(set(group) - base):
                items = group[a].problems
                d, source = measured.get((a, b)), "pilot"
                if d is None:
                    d, source = (fallback, "pilot (mean)") if fallback is not None else (discordance, "assumed")
                mde = mcnemar_mde(items, d, alpha=alpha, power=power) if d > 0 else None
                out.append({"dataset": dataset, "budget": budget, "budget_kind": kind, "a": a, "b": b,
                            "items": items, "discordance": round(d, 4), "source": source,
                            "mde": None if mde is None else round(mde, 4)})
    return out


def _pilot_discordance(path: str) -> dict[tuple[str, str], float]:
    """Per (A, B) pair a pilot database compares, the share of its items exactly one of them got right."""
    from .report import report_data

    comparisons = report_data(path)["comparisons"]
    out: dict[tuple[str, str], list[float]] = {}
    for c in comparisons:
        if "refused" not in c and c["items"]:
            out.setdefault((c["a"], c["b"]), []).append((c["wins"] + c["losses"]) / c["items"])
    return {pair: sum(v) / len(v) for pair, v in out.items()}


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
    (an upper bound on decoding: every call at its cap; prefill is left out), over the feasible groups; the
    infeasible groups' cells are counted apart (``infeasible_cells``)."""
    if not (throughput > 0 and math.isfinite(throughput)):
        raise ConfigError(f"throughput must be a positive number of tokens per second, got {throughput}")
    runnable = [p for p in plans if p.feasible]  # an infeasible arm is not run (and would generate nothing useful)
    cells = sum(p.cells for p in runnable)
    tokens = sum(p.max_generated for p in runnable)
    return {"cells": cells, "max_generated_tokens": tokens, "throughput": throughput,
            "hours": round(tokens / throughput / 3600, 2),
            "infeasible_cells": sum(p.cells for p in plans if not p.feasible)}


async def handbook_split_warnings(spec: SweepSpec, paths: list[str]) -> list[str]:
    """What ``sweep run`` warns about a spec's handbooks (``split_warnings``: behaviors curated from a split the spec
    evaluates, and whether the split guard keeps them out), read without writing to any store: opening an embedded
    store writes to its directory, so each is copied to a temporary directory and the copy is read. ``paths``:
    the spec's stores, as ``require_handbooks`` found them."""
    import shutil
    import tempfile
    from pathlib import Path

    from agentkit.memory import QdrantBehaviorStore, embedder_from_spec

    from .runner import provenance_splits, split_warnings

    if not paths:
        return []
    embedder = embedder_from_spec(spec.embedder)
    splits: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="agentkit-validate-") as scratch:
        for i, path in enumerate(paths):
            copy = Path(scratch) / f"store-{i}"
            await asyncio.to_thread(shutil.copytree, path, copy)
            async with QdrantBehaviorStore(path=copy, embedder=embedder) as store:
                splits[path] = await provenance_splits(store)
    evaluated = await asyncio.to_thread(
        lambda: {d.name: {p.dataset for p in d.load() if p.dataset} for d in spec.datasets})
    return split_warnings(spec, evaluated, splits)
