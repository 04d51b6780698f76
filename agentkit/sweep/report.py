"""Sweep reports: Markdown, a self-contained HTML page, and PNG plots of accuracy against tokens with the
Pareto front marked (one point per method, backend and budget, per dataset), as the papers plot them.

Per group (dataset, method, backend, budget): problems, samples per problem (seeds), accuracy = mean over
**every cell of the grid** that has a reference, a failed cell (a timeout, an infeasible budget, a backend
that gave up) counting as a wrong answer and also counted in its own ``failed`` column, so a method whose
hard problems fail never looks better than one that answers them; a 95% Wilson interval (over all cells),
pass@1 and pass@n by the unbiased estimator (averaged over problems, failed samples wrong; pass@1 equals the
mean accuracy whatever n is), mean output / input tokens, ``B_seq``, ``B_total`` and latency over the cells
that finished, and cost when a price table is given (USD per million input / output tokens, per backend
spec; failed cells' tokens included).
"""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from agentkit.evaluation.stats import pass_at_k, wilson_interval

from .db import ResultsDB

__all__ = ["pareto_front", "summarise", "write_report"]

GroupKey = tuple[str, str, str, int]


def summarise(rows: Iterable[Mapping[str, Any]], prices: Mapping[str, Mapping[str, float]] | None = None
              ) -> list[dict[str, Any]]:
    """One summary dict per (dataset, method, backend, budget), sorted."""
    groups: dict[GroupKey, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["dataset"], row["method"], row["backend"], int(row["budget"]))].append(row)
    out = []
    for (dataset, method, backend, budget), members in sorted(groups.items()):
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
            "dataset": dataset, "method": method, "backend": backend, "budget": budget,
            "problems": len(per_item), "samples": samples, "graded": len(graded), "failed": len(members) - len(ok),
            "accuracy": correct / len(graded) if graded else 0.0, "ci_low": low, "ci_high": high,
            "pass@1": _mean_pass(per_item, 1), f"pass@{samples}": _mean_pass(per_item, samples) if samples else 0.0,
            "output_tokens": mean("output_tokens"), "input_tokens": mean("input_tokens"), "B_seq": mean("b_seq"),
            "B_total": mean("b_total"), "latency_s": mean("latency_s"),
            "grader": sorted({str(r["grader"]) for r in members}),
        }
        rounds = _round_accuracy(ok)
        if rounds:
            summary["round_accuracy"] = rounds
        price = (prices or {}).get(backend)
        if price:
            summary["cost_usd"] = sum((r["input_tokens"] or 0) * price.get("input", 0.0)
                                      + (r["output_tokens"] or 0) * price.get("output", 0.0) for r in members) / 1e6
        out.append(summary)
    return out


def _round_accuracy(rows: list[Mapping[str, Any]]) -> list[float]:
    """PDR/SR: per round, the share of that round's drafts whose answer was right (mean over cells)."""
    per_round: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        details = r.get("details")
        if isinstance(details, str):
            import json

            details = json.loads(details)
        for i, diag in enumerate((details or {}).get("rounds") or []):
            if diag.get("drafts") and "correct_drafts" in diag:
                per_round[i].append(diag["correct_drafts"] / diag["drafts"])
    return [round(sum(v) / len(v), 4) for _, v in sorted(per_round.items())]


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
    groups = [g for g in groups if g["graded"] > g["failed"]]  # every cell failed: no tokens to place it at
    points = [(g[x_field], g["accuracy"]) for g in groups]
    for g in groups:
        label = f"{g['method']} @{g['budget']}" + (f" ({g['backend']})" if len({x['backend'] for x in groups}) > 1
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
    ax.legend(fontsize=7, loc="best")
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


_COLUMNS = ["method", "backend", "budget", "problems", "samples", "accuracy", "ci", "pass@1", "output_tokens",
            "input_tokens", "B_seq", "B_total", "latency_s", "failed"]


def _cells(g: dict[str, Any]) -> list[str]:
    cells = []
    for c in _COLUMNS:
        if c == "ci":
            cells.append(f"{g['ci_low']:.2f}-{g['ci_high']:.2f}")
        elif isinstance(g[c], float):
            cells.append(f"{g[c]:.3f}" if c in ("accuracy", "pass@1") else f"{g[c]:.0f}" if c != "latency_s"
                         else f"{g[c]:.1f}")
        else:
            cells.append(str(g[c]))
    if "cost_usd" in g:
        cells.append(f"{g['cost_usd']:.4f}")
    return cells


def write_report(db_path: str | Path, out_dir: str | Path, *, x_field: str = "B_seq",
                 prices: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, Any]:
    """Write ``report.md``, ``report.html`` and one ``<dataset>.png`` per dataset; returns their paths and the
    summaries."""
    db = ResultsDB(db_path, create=False)
    try:
        groups = summarise(db.rows(), prices)
    finally:
        db.close()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    by_dataset: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for g in groups:
        by_dataset[g["dataset"]].append(g)
    header = _COLUMNS + (["cost_usd"] if any("cost_usd" in g for g in groups) else [])
    md = [f"# Sweep report: {db_path}", "",
          "Accuracy: mean over every cell of the grid (a failed cell counts as wrong and is also in the `failed` "
          "column) with a 95% Wilson interval; tokens are means over the cells that finished; "
          f"plots show accuracy against mean {x_field} with the Pareto front.", ""]
    page = [f"<h1>Sweep report</h1><p>{html.escape(str(db_path))}</p>"]
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
                f"{g['method']} @{g['budget']}: " + " -> ".join(f"{a:.2f}" for a in g["round_accuracy"])
                for g in refined)]
        md += ["", f"grader: {', '.join(sorted({v for g in members for v in g['grader']}))}", ""]
        rows_html = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(g)) + "</tr>"
                            for g in members)
        page.append(f"<h2>{html.escape(dataset)}</h2><img alt='{html.escape(dataset)}' "
                    f"src='data:image/png;base64,{base64.b64encode(png).decode()}'/>"
                    "<table border='1' cellspacing='0' cellpadding='3'><tr>"
                    + "".join(f"<th>{html.escape(h)}</th>" for h in header) + f"</tr>{rows_html}</table>")
    (out / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    (out / "report.html").write_text("<!doctype html><html><head><meta charset='utf-8'><title>Sweep report</title>"
                                     "</head><body>" + "".join(page) + "</body></html>\n", encoding="utf-8")
    return {"markdown": str(out / "report.md"), "html": str(out / "report.html"), "plots": plots, "groups": groups}
