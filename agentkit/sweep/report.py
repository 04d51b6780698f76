"""Sweep reports: Markdown, a self-contained HTML page, and PNG plots of accuracy against tokens with the
Pareto front marked (one point per method, backend and budget, per dataset), as the papers plot them.

Per group (dataset, method, backend, budget and its kind: ``B_seq`` or a per-call output cap): problems, samples per problem (seeds), accuracy = mean over
**every cell of the grid** that has a reference, a failed cell (a timeout, an infeasible budget, a backend
that gave up) counting as a wrong answer and also counted in its own ``failed`` column, so a method whose
hard problems fail never looks better than one that answers them; a 95% Wilson interval (over all cells),
pass@1 and pass@n by the unbiased estimator (averaged over problems, failed samples wrong; pass@1 equals the
mean accuracy whatever n is), mean output / input tokens, ``B_seq``, ``B_total`` and latency over the cells
that finished, and cost when a price table is given (USD per million input / output tokens, per backend
spec; failed cells' tokens included). With several seeds, a bootstrap interval over problems (a problem's
samples resampled together), the mean accuracy over seeds with its standard error, and majority@n.

``compare`` (and the report's "Paired comparisons" section, ``sweep report --compare A B``): two methods on
the same items, budget and backend, the accuracy difference with a paired bootstrap interval and the items
each one won; by default every method against long CoT.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from agentkit.errors import ConfigError
from agentkit.evaluation.answers import answers_match
from agentkit.evaluation.datasets import split_guarded
from agentkit.evaluation.stats import bootstrap_mean_ci, paired_difference, pass_at_k, seed_mean_se, wilson_interval
from agentkit.methods import METHODS
from agentkit.registry import MethodRecord, record_of

from .db import COLUMNS, ResultsDB

__all__ = ["cell_score", "compare", "comparison_place", "paired_items", "pareto_front", "report_data", "report_row", "row_record", "summarise", "with_missing",
           "write_report"]

GroupKey = tuple[str, str, str, str, int]


def _kind(row: Mapping[str, Any]) -> str:
    """A row's budget kind (rows written before budget kinds existed are sequential)."""
    return str(row.get("budget_kind") or "sequential")


def budget_label(kind: str, budget: int) -> str:
    """How a report names a budget: ``B_seq 2000`` or ``out 512`` (a per-call output cap)."""
    return f"{'B_seq' if kind == 'sequential' else 'out'} {budget}"


def with_missing(rows: Iterable[Mapping[str, Any]], grid: Iterable[Mapping[str, Any]] | None
                 ) -> list[Mapping[str, Any]]:
    """``rows`` plus one row with ``status = "missing"`` for every cell of ``grid`` that has none (a cell that
    never finished, or a row deleted): the report counts it as a wrong answer, lists it and warns. ``grid`` None
    (a database written before agentkit recorded its grid, and no spec given): the rows alone."""
    out = list(rows)
    if grid is None:
        return out
    have = {r["key"] for r in out}
    out += [{**dict.fromkeys(COLUMNS), **cell, "status": "missing", "error": "no row: the cell never finished"}
            for cell in grid if cell["key"] not in have]
    return out


def summarise(rows: Iterable[Mapping[str, Any]], prices: Mapping[str, Mapping[str, float]] | None = None
              ) -> list[dict[str, Any]]:
    """One summary dict per (dataset, method, backend, budget kind, budget), sorted."""
    groups: dict[GroupKey, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["dataset"], row["method"], row["backend"], _kind(row), int(row["budget"]))].append(row)
    out = []
    for (dataset, method, backend, kind, budget), members in sorted(groups.items()):
        ok = [r for r in members if r["status"] == "ok"]
        # Every cell counts: a failed cell is a wrong answer (ungraded cells, without a reference, do not count).
        graded = [r for r in members if r["status"] != "ok" or r["correct"] is not None]
        per_item: dict[str, list[bool]] = defaultdict(list)
        for r in graded:
            per_item[r["item_id"]].append(r["status"] == "ok" and bool(r["correct"]))
        samples = min((len(v) for v in per_item.values()), default=0)
        correct = sum(sum(v) for v in per_item.values())
        low, high = wilson_interval(correct, len(graded))

        def mean(field: str, rows: list[Mapping[str, Any]] = ok) -> float:
            values = [r[field] for r in rows if r[field] is not None]
            return sum(values) / len(values) if values else 0.0

        summary: dict[str, Any] = {
            "dataset": dataset, "method": method, "backend": backend, "budget": budget, "budget_kind": kind,
            "problems": len(per_item), "samples": samples, "graded": len(graded),
            "failed": sum(1 for r in members if r["status"] not in ("ok", "missing")),
            "missing": sum(1 for r in members if r["status"] == "missing"),
            "accuracy": correct / len(graded) if graded else 0.0, "ci_low": low, "ci_high": high,
            "pass@1": _mean_pass(per_item, 1), f"pass@{samples}": _mean_pass(per_item, samples) if samples else 0.0,
            "output_tokens": mean("output_tokens"), "input_tokens": mean("input_tokens"), "B_seq": mean("b_seq"),
            "B_total": mean("b_total"), "latency_s": mean("latency_s"),
            "grader": sorted({str(r["grader"]) for r in members if r["grader"] is not None}),
            "over_budget": sum(1 for r in members if _over_budget(r)),
        }
        per_seed: dict[int, list[bool]] = defaultdict(list)
        for r in graded:
            per_seed[int(r.get("seed") or 0)].append(r["status"] == "ok" and bool(r["correct"]))
        seed_mean, seed_se = seed_mean_se([sum(v) / len(v) for v in per_seed.values() if v])
        boot_low, boot_high = bootstrap_mean_ci([[float(x) for x in v] for v in per_item.values()])
        summary.update({"seeds": len(per_seed), "seed_mean": seed_mean, "seed_se": seed_se, "boot_low": boot_low,
                        "boot_high": boot_high, f"maj@{samples}": _majority(graded) if samples else 0.0})
        summary.update(_aggregate(ok))
        price = (prices or {}).get(backend)
        if price:
            summary["cost_usd"] = sum((r["input_tokens"] or 0) * price.get("input", 0.0)
                                      + (r["output_tokens"] or 0) * price.get("output", 0.0) for r in members) / 1e6
        out.append(summary)
    return out


def _over_budget(row: Mapping[str, Any]) -> bool:
    """Whether a row's measured B_seq exceeds its sequential budget (only a backend whose tokenizer agentkit cannot
    reach can cause it: see ``agentkit.ledger.Ledger``)."""
    return _kind(row) == "sequential" and row.get("b_seq") is not None and int(row["b_seq"]) > int(row["budget"])


def _majority(rows: list[Mapping[str, Any]]) -> float:
    """majority@n: per problem, whether the answer most of its samples gave (failed samples give none) is right;
    the mean over problems."""
    by_item: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        by_item[r["item_id"]].append(r)
    scores = []
    for members in by_item.values():
        groups: list[list[Mapping[str, Any]]] = []
        for r in members:
            if r["status"] != "ok" or r.get("answer") is None:
                continue
            for group in groups:
                if answers_match(r["answer"], group[0]["answer"]):
                    group.append(r)
                    break
            else:
                groups.append([r])
        best = max(groups, key=len, default=None)
        scores.append(float(bool(best and best[0]["correct"])))
    return sum(scores) / len(scores) if scores else 0.0


def cell_score(row: Mapping[str, Any]) -> float | None:
    """A cell's score in a paired comparison: 1 right, 0 wrong or failed (a failed cell is a wrong answer), None
    ungraded (no reference)."""
    if row["status"] == "ok" and row["correct"] is None:
        return None
    return float(row["status"] == "ok" and bool(row["correct"]))


def comparison_place(row: Mapping[str, Any]) -> tuple[str, str, str, int]:
    """What two methods' cells must share to be paired: dataset, backend, budget kind and budget."""
    return (row["dataset"], row["backend"], _kind(row), int(row["budget"]))


def paired_items(rows: Iterable[Mapping[str, Any]], place: tuple[str, str, str, int], a: str, b: str
                 ) -> dict[str, list[dict[str, Any]]]:
    """The items behind one paired comparison (``compare``'s A vs B at ``place``), split into ``wins`` (A's mean
    score over seeds above B's), ``losses`` and ``ties``; each item with both methods' scores and their cells
    (key, seed, score) by seed, so a viewer can open the two runs side by side."""
    cells: dict[str, dict[str, list[tuple[int, str, float]]]] = defaultdict(lambda: {a: [], b: []})
    for r in rows:
        if r["method"] not in (a, b) or comparison_place(r) != place:
            continue
        score = cell_score(r)
        if score is not None:
            cells[r["item_id"]][r["method"]].append((int(r.get("seed") or 0), str(r["key"]), score))
    out: dict[str, list[dict[str, Any]]] = {"wins": [], "losses": [], "ties": []}
    for item, by in sorted(cells.items()):
        if not by[a] or not by[b]:
            continue  # one method has no graded cell on it: not a pair
        mean_a = sum(c[2] for c in by[a]) / len(by[a])
        mean_b = sum(c[2] for c in by[b]) / len(by[b])
        entry = {"item_id": item, "a_score": mean_a, "b_score": mean_b,
                 "a": [{"seed": s, "key": k, "score": v} for s, k, v in sorted(by[a])],
                 "b": [{"seed": s, "key": k, "score": v} for s, k, v in sorted(by[b])]}
        out["wins" if mean_a > mean_b else "losses" if mean_a < mean_b else "ties"].append(entry)
    return out


def compare(rows: Iterable[Mapping[str, Any]], pairs: Iterable[tuple[str, str]] | None = None
            ) -> list[dict[str, Any]]:
    """Paired comparisons of methods on the same items, budget (and budget kind) and backend: each method
    against the baselines by default (the registered methods with ``Method.baseline``), or the given (A, B) pairs
    of method keys. Per item the score is its mean correctness over seeds
    (a failed cell counts as wrong); the difference A - B has a paired bootstrap interval over items."""
    scores: dict[tuple[str, str, str, int], dict[str, dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list)))
    cells: dict[tuple[str, str, str, int], dict[str, set[tuple[str, int]]]] = defaultdict(lambda: defaultdict(set))
    baselines: set[str] = set()
    known: set[str] = set()
    for r in rows:
        score = cell_score(r)
        if score is None:
            continue  # no reference: not graded
        if _is_baseline(r):
            baselines.add(r["method"])
        where = comparison_place(r)
        scores[where][r["method"]][r["item_id"]].append(score)
        cells[where][r["method"]].add((r["item_id"], int(r.get("seed") or 0)))
        known.add(r["method"])
    wanted = list(pairs) if pairs is not None else None
    for a, b in wanted or []:
        unknown = [m for m in (a, b) if m not in known]
        if unknown:
            raise ConfigError(f"no method {' or '.join(map(repr, unknown))} in these results; their methods: "
                              f"{', '.join(sorted(known))}")
    out = []
    for where, methods in sorted(scores.items()):
        dataset, backend, kind, budget = where
        todo = wanted if wanted is not None else [(m, b) for b in sorted(baselines & set(methods))
                                                  for m in sorted(methods) if m not in baselines]
        for a, b in todo:
            if a not in methods or b not in methods:
                continue
            entry: dict[str, Any] = {"dataset": dataset, "backend": backend, "budget": budget, "budget_kind": kind,
                                     "a": a, "b": b}
            only_a, only_b = cells[where][a] - cells[where][b], cells[where][b] - cells[where][a]
            if only_a or only_b:  # different problems or seeds: a paired comparison would compare other things
                entry["refused"] = (f"their grids differ: {len(only_a)} cells only {a} has, {len(only_b)} only {b} "
                                    "has (problems or seeds)")
                out.append(entry)
                continue
            per_a = {i: sum(v) / len(v) for i, v in methods[a].items()}
            per_b = {i: sum(v) / len(v) for i, v in methods[b].items()}
            out.append({**entry, **paired_difference(per_a, per_b)})
    if wanted is not None:
        paired = {(c["a"], c["b"]) for c in out if "refused" not in c}
        for a, b in wanted:
            if (a, b) in paired:
                continue
            refused = next((c["refused"] for c in out if (c["a"], c["b"]) == (a, b)), None)
            raise ConfigError(f"{a} vs {b} not compared: {refused}" if refused else
                              f"nothing to compare for {a} vs {b}: the two never ran on the same dataset, backend "
                              "and budget")
    return out


def _build_cost(info: Mapping[str, Any]) -> str:
    if "curation" not in info:
        return "build cost not recorded (rows written before agentkit recorded it)"
    c = info["curation"]
    if not c:
        return "no curation log"
    return (f"{c['curations']} curations, {c['calls']} calls, {c['input_tokens']:,} input + "
            f"{c['output_tokens']:,} output tokens")


def _handbooks(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The handbooks the rows used (``handbook`` column), one entry per store: a row that recorded the store's build
    cost (``curation``) when any did (rows written before a build log existed lack it), else the first."""
    found: dict[str, dict[str, Any]] = {}
    for r in rows:
        info = _json_column(r, "handbook")
        if info.get("store"):
            store = str(info["store"])
            if store not in found or (info.get("curation") and not found[store].get("curation")):
                found[store] = info
    return list(found.values())


def split_notes(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per (method, handbook) whose handbook's provenance includes the dataset its rows evaluate (recorded
    at run time in each row's ``handbook`` info as ``splits``), saying whether the split guard was on."""
    seen: dict[tuple[str, str, str], bool] = {}
    for r in rows:
        info = _json_column(r, "handbook")
        if r["dataset"] not in (info.get("splits") or []):
            continue
        params = _json_column(r, "method_params")
        on = split_guarded(params.get("exclude_split"), params.get("handbook_mode"), r["dataset"])
        seen[(str(r["method"]), str(info.get("store")), str(r["dataset"]))] = on
    return [f"{method}: handbook {store} holds behaviors curated from {dataset!r}, the dataset it is evaluated on; "
            + ("the split guard kept them out of the prompts" if on else
               "exclude_split was off, so they could reach the prompts (not held out from the handbook's sources)")
            for (method, store, dataset), on in sorted(seen.items())]


def _json_column(row: Mapping[str, Any], column: str) -> dict[str, Any]:
    """A row's JSON object column (``details``, ``handbook``, ``method_params``) as a dict; {} when absent or
    unreadable."""
    value = row.get(column)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def _method_name(row: Mapping[str, Any]) -> str:
    """The registered method a row ran (its key names an arm: ``pdr-2x2-topk``)."""
    return str(_json_column(row, "method_params").get("name", row["method"]))


def _is_baseline(row: Mapping[str, Any]) -> bool:
    method = METHODS.get(_method_name(row))
    return method is not None and method.baseline


def _aggregate(rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    """What the group's method adds to its summary from its finished rows' records (``MethodRecord.aggregate``:
    PDR/SR's per-round draft accuracy, BCI's behavior tokens); nothing for a method not registered here."""
    if not rows:
        return {}
    method = METHODS.get(_method_name(rows[0]))
    model = method.record_model if method is not None else None
    return model.aggregate([_json_column(r, "details") for r in rows]) if model is not None else {}


def row_record(row: Mapping[str, Any], trace: Mapping[str, Any] | None = None
               ) -> MethodRecord | dict[str, Any] | None:
    """A row's method record, read back into its method's ``record_model`` (``agentkit.registry.record_of``):
    its diagnostics, and with the row's stored ``trace`` (``ResultsDB.trace``) the record's trace fields too."""
    return record_of(_method_name(row), _json_column(row, "details"), trace)


def report_row(row: Mapping[str, Any], trace: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One row as ``sweep report --json --rows`` shows it: its cell, outcome and method record (JSON)."""
    record = row_record(row, trace)
    out = {c: row.get(c) for c in ("key", "dataset", "item_id", "method", "backend", "budget", "budget_kind", "seed",
                                   "status", "answer", "correct", "error")}
    out["record"] = record.model_dump(mode="json") if isinstance(record, MethodRecord) else record
    return out


def _mean_pass(per_item: Mapping[str, list[bool]], k: int) -> float:
    values = [pass_at_k(len(v), sum(v), k) for v in per_item.values() if len(v) >= k >= 1]
    return sum(values) / len(values) if values else 0.0


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (fewer or equal tokens and higher or equal accuracy, one of
    them strictly), sorted by tokens."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for j, (x2, y2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def _plot(dataset: str, groups: list[dict[str, Any]], x_field: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    groups = [g for g in groups if g["graded"] > g["failed"] + g["missing"]]  # none finished: no tokens to place it at
    points = [(g[x_field], g["accuracy"]) for g in groups]
    for g in groups:
        label = f"{g['method']} @{budget_label(g['budget_kind'], g['budget'])}" + (f" ({g['backend']})" if len({x['backend'] for x in groups}) > 1
                                                   else "")
        ax.errorbar(g[x_field], g["accuracy"], yerr=[[g["accuracy"] - g["ci_low"]], [g["ci_high"] - g["accuracy"]]],
                    fmt="o", capsize=3, label=label)
    front = pareto_front(points)
    if front:
        ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "k--", lw=1, marker="*", ms=13,
                mfc="none", label="Pareto front")
    ax.set_xlabel(f"mean {x_field} tokens per problem")
    ax.set_ylabel("accuracy (95% Wilson interval)")
    ax.set_ylim(0, 1)
    ax.set_title(dataset)
    ax.grid(alpha=0.3)
    if groups:  # a dataset with no finished group has nothing to label
        ax.legend(fontsize=7, loc="best")
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


_COLUMNS = ["method", "backend", "budget", "problems", "samples", "accuracy", "ci", "boot_ci", "seeds_mean_se",
            "pass@1", "output_tokens", "input_tokens", "behavior_tokens", "B_seq", "B_total", "latency_s", "failed",
            "missing", "over_budget"]


def _cells(g: dict[str, Any]) -> list[str]:
    cells = []
    for c in _COLUMNS:
        if c == "ci":
            cells.append(f"{g['ci_low']:.3f}-{g['ci_high']:.3f}")  # three places, as the accuracy (0.475, not 0.47)
        elif c == "budget":
            cells.append(budget_label(g["budget_kind"], g["budget"]))
        elif c == "boot_ci":
            cells.append(f"{g['boot_low']:.3f}-{g['boot_high']:.3f}")
        elif c == "seeds_mean_se":
            cells.append(f"{g['seed_mean']:.3f} ± {g['seed_se']:.3f} ({g['seeds']})")
        elif c == "behavior_tokens":  # BCI's behavior block, counted apart; "-" for methods without behaviors
            cells.append(f"{g[c]:.0f}" if c in g else "-")
        elif isinstance(g[c], float):
            cells.append(f"{g[c]:.3f}" if c in ("accuracy", "pass@1") else f"{g[c]:.0f}" if c != "latency_s"
                         else f"{g[c]:.1f}")
        else:
            cells.append(str(g[c]))
    if "cost_usd" in g:
        cells.append(f"{g['cost_usd']:.4f}")
    return cells


def report_data(db_path: str | Path, *, prices: Mapping[str, Mapping[str, float]] | None = None,
                pairs: Iterable[tuple[str, str]] | None = None, grid: list[dict[str, Any]] | None = None
                ) -> dict[str, Any]:
    """What a report shows, without writing it: ``rows`` (with a ``missing`` row for each cell of the grid that
    has none: see ``write_report``), the ``groups`` (``summarise``), the ``comparisons`` (``compare``) and the
    ``missing`` cells' identities."""
    db = ResultsDB(db_path, create=False, readonly=True)
    try:
        stored = list(db.rows())
        recorded = db.grid()
    finally:
        db.close()
    rows = with_missing(stored, recorded if recorded is not None else grid)
    return {"rows": rows, "groups": summarise(rows, prices), "comparisons": compare(rows, pairs),
            "warnings": split_notes(stored),
            "missing": [{c: r[c] for c in ("key", "dataset", "item_id", "method", "backend", "budget",
                                           "budget_kind", "seed")} for r in rows if r["status"] == "missing"]}


def write_report(db_path: str | Path, out_dir: str | Path, *, x_field: str = "B_seq",
                 prices: Mapping[str, Mapping[str, float]] | None = None,
                 pairs: Iterable[tuple[str, str]] | None = None,
                 grid: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Write ``report.md``, ``report.html`` and one ``<dataset>.png`` per dataset; returns their paths, the
    summaries, the paired comparisons (``pairs`` of method keys, default each method against the baselines;
    comparisons of arms whose grids differ carry ``refused`` and no numbers) and the ``missing`` cells: those
    of the grid with no row (the grid the database recorded at run time, else ``grid``: one computed from the
    spec), counted as wrong answers."""
    data = report_data(db_path, prices=prices, pairs=pairs, grid=grid)
    rows, groups, comparisons = data["rows"], data["groups"], data["comparisons"]
    missing = [r for r in rows if r["status"] == "missing"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    by_dataset: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for g in groups:
        by_dataset[g["dataset"]].append(g)
    header = _COLUMNS + (["cost_usd"] if any("cost_usd" in g for g in groups) else [])
    md = [f"# Sweep report: {db_path}", "",
          "Accuracy: mean over every cell of the grid (a failed cell counts as wrong and is also in the `failed` "
          "column). `ci`: a 95% Wilson interval over cells (treats seeds of one problem as independent); "
          "`boot_ci`: a 95% bootstrap over problems (a problem's seeds resampled together: the honest one when "
          "there are several seeds); `seeds_mean_se`: the mean of per-seed accuracies, its standard error across "
          "seeds and the number of seeds. `budget`: `B_seq N` (the run's sequential tokens, prompts included, "
          "enforced at N) or `out N` (each answering call's output capped at N, prompts not counted); only cells "
          "of one budget and kind are compared. `over_budget`: cells whose measured B_seq exceeds N (possible only "
          "on a server whose tokenizer agentkit cannot reach, so prompts were estimated). Tokens are means over "
          "the cells that finished; "
          f"plots show accuracy against mean {x_field} with the Pareto front.", ""]
    md += [f"**Warning:** {line}" for line in data["warnings"]] + ([""] if data["warnings"] else [])
    if missing:
        md += [f"**Warning: {len(missing)} cells of the grid have no row** (never finished, or removed): each counts "
               "as a wrong answer and is listed under its dataset (`missing`). Resume the sweep to run them.", ""]
    page: list[str] = []
    plots = {}
    for dataset, members in by_dataset.items():
        png = _plot(dataset, members, x_field)
        path = out / f"{dataset.replace('/', '_')}.png"
        path.write_bytes(png)
        plots[dataset] = str(path)
        md += [f"## {dataset}", "", f"![{dataset}]({path.name})", "", "| " + " | ".join(header) + " |",
               "|" + "---|" * len(header)]
        md += ["| " + " | ".join(_cells(g)) + " |" for g in members]
        refined = [g for g in members if g.get("round_accuracy")]
        if refined:
            md += ["", "Drafts right per round (PDR/SR, mean over cells): " + "; ".join(
                f"{g['method']} @{budget_label(g['budget_kind'], g['budget'])}: " + " -> ".join(f"{a:.2f}" for a in g["round_accuracy"])
                for g in refined)]
        paired = [c for c in comparisons if c["dataset"] == dataset]
        if paired:
            refused = [c for c in paired if "refused" in c]
            paired = [c for c in paired if "refused" not in c]
            md += ["", "Paired comparisons (same items, budget and backend; per item the mean over seeds, a failed "
                   "or missing cell wrong; 95% paired bootstrap over items; `p`: the exact McNemar test of the wins "
                   "and losses):", "",
                   "| A | B | budget | items | A - B | 95% CI | wins / losses / ties | p |",
                   "|---|---|---|---|---|---|---|---|"]
            md += [f"| {c['a']} | {c['b']} | {budget_label(c['budget_kind'], c['budget'])} | {c['items']} | {c['difference']:+.3f} | "
                   f"{c['ci_low']:+.3f} to {c['ci_high']:+.3f} | {c['wins']} / {c['losses']} / {c['ties']} | "
                   f"{c['p_value']:.3g} |" for c in paired]
            md += [f"- not compared: {c['a']} vs {c['b']} @{budget_label(c['budget_kind'], c['budget'])}: {c['refused']}"
                   for c in refused]
            paired_html = ("<h3>Paired comparisons</h3><table><tr><th scope='col'>A</th>"
                        "<th scope='col'>B</th><th scope='col'>budget</th><th scope='col'>items</th>"
                        "<th scope='col'>A - B</th><th scope='col'>95% CI</th><th scope='col'>wins / losses / "
                        "ties</th><th scope='col'>p (McNemar)</th></tr>" + "".join(
                            f"<tr><td>{html.escape(c['a'])}</td><td>{html.escape(c['b'])}</td>"
                            f"<td>{budget_label(c['budget_kind'], c['budget'])}</td>"
                            f"<td>{c['items']}</td><td>{c['difference']:+.3f}</td><td>{c['ci_low']:+.3f} to "
                            f"{c['ci_high']:+.3f}</td><td>{c['wins']} / {c['losses']} / {c['ties']}</td>"
                            f"<td>{c['p_value']:.3g}</td></tr>"
                            for c in paired) + "</table>" + "".join(
                            f"<p>not compared: {html.escape(c['a'])} vs {html.escape(c['b'])}: "
                            f"{html.escape(c['refused'])}</p>" for c in refused))
        else:
            paired_html = ""
        built = _handbooks([r for r in rows if r["dataset"] == dataset])
        if built:
            md += ["", "Handbooks (what building each cost, from its curation log; behavior input tokens are in the "
                   "`behavior_tokens` column):", ""]
            md += [f"- `{h['store']}` ({h.get('embedder')}): " + _build_cost(h) for h in built]
        lost = [r for r in missing if r["dataset"] == dataset]
        if lost:
            md += ["", f"Missing cells ({len(lost)}, counted as wrong):", ""]
            md += [f"- {r['method']} @{budget_label(_kind(r), int(r['budget']))} item {r['item_id']} seed {r['seed']} "
                   f"({r['backend']})" for r in lost]
        md += ["", f"grader: {', '.join(sorted({v for g in members for v in g['grader']}))}", ""]
        rows_html = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(g)) + "</tr>"
                            for g in members)
        page.append(f"<section><h2>{html.escape(dataset)}</h2><img alt='accuracy against mean {x_field} on "
                    f"{html.escape(dataset)}, with the Pareto front' "
                    f"src='data:image/png;base64,{base64.b64encode(png).decode()}'/>"
                    "<table><tr>" + "".join(f"<th scope='col'>{html.escape(h)}</th>" for h in header)
                    + f"</tr>{rows_html}</table>" + paired_html + "</section>")
    (out / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    (out / "report.html").write_text(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Sweep report</title><style>"
        "body{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#222}table{border-collapse:collapse;margin:6px 0}"
        "td,th{border:1px solid #999;padding:3px 6px}th{background:#eee}img{max-width:100%}</style></head><body>"
        f"<header><h1>Sweep report</h1><p>{html.escape(str(db_path))}</p></header><main>" + "".join(page)
        + "</main></body></html>\n", encoding="utf-8")
    return {"markdown": str(out / "report.md"), "html": str(out / "report.html"), "plots": plots, "groups": groups,
            "comparisons": comparisons, "missing": data["missing"], "warnings": data["warnings"]}
