"""Two results databases of the same arms, side by side: what changed when a sweep was re-run.

    python benchmarks/compare_databases.py OLD.sqlite NEW.sqlite [--out FILE.md]

For each method (key) present in both, on the items both have finished (ok or failed) at the same dataset,
backend, budget and seed: rows, rows whose measured B_seq exceeds a sequential budget, accuracy in each, the
paired difference NEW - OLD with a 95% paired bootstrap interval over items and the exact McNemar p-value, and
the mean B_seq and output tokens, and how many of the cells the old run finished within budget by itself (no
cap hit: the budget cannot have changed them) came out with the same final text, the run-to-run variation of
the engine (llama.cpp at temperature 0 is reproducible within one slot layout, not across runs with other
concurrent cells). A failed cell counts as wrong, as in the report. Issue 25 re-ran the committed
MATH-500 arms with the budget held: `math500_local15b.sqlite` against `math500_local15b_heldbudget.sqlite`.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from agentkit.evaluation.stats import paired_difference
from agentkit.sweep import ResultsDB


def _rows(path: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    db = ResultsDB(path, create=False, readonly=True)
    try:
        out = {}
        for r in db.rows():
            trace = db.trace(r["key"]) or {}
            out[(r["dataset"], r["method"], r["backend"], r["budget"], r["seed"], r["item_id"])] = {
                **r, "text": trace.get("text")}
        return out
    finally:
        db.close()


def compare_databases(old: str, new: str) -> list[dict[str, Any]]:
    before, after = _rows(old), _rows(new)
    shared = sorted(set(before) & set(after))
    groups: dict[tuple[Any, ...], list[tuple[Any, ...]]] = defaultdict(list)
    for key in shared:
        groups[key[:4]].append(key)
    out = []
    for (dataset, method, backend, budget), keys in sorted(groups.items()):
        def score(r: dict[str, Any]) -> float:
            return float(r["status"] == "ok" and bool(r["correct"]))

        def over(r: dict[str, Any]) -> bool:
            return (r.get("budget_kind") or "sequential") == "sequential" and (r["b_seq"] or 0) > r["budget"]

        def mean(rows: list[dict[str, Any]], field: str) -> float:
            values = [r[field] for r in rows if r[field] is not None]
            return sum(values) / len(values) if values else 0.0

        old_rows, new_rows = [before[k] for k in keys], [after[k] for k in keys]
        paired = paired_difference({k[5]: score(after[k]) for k in keys}, {k[5]: score(before[k]) for k in keys})
        # cells the old run finished within its budget and without hitting a cap: the budget fix cannot have
        # changed them, so a different final text there is the engine's own run-to-run variation
        untouched = [k for k in keys if not over(before[k]) and before[k]["finish_reason"] == "stop"
                     and before[k]["text"] is not None]
        out.append({"dataset": dataset, "method": method, "backend": backend, "budget": budget, "items": len(keys),
                    "untouched": len(untouched),
                    "untouched_same_text": sum(before[k]["text"] == after[k]["text"] for k in untouched),
                    "over_old": sum(map(over, old_rows)), "over_new": sum(map(over, new_rows)),
                    "max_b_seq_old": max((r["b_seq"] or 0) for r in old_rows),
                    "max_b_seq_new": max((r["b_seq"] or 0) for r in new_rows),
                    "accuracy_old": sum(map(score, old_rows)) / len(keys),
                    "accuracy_new": sum(map(score, new_rows)) / len(keys),
                    "b_seq_old": mean(old_rows, "b_seq"), "b_seq_new": mean(new_rows, "b_seq"),
                    "output_old": mean(old_rows, "output_tokens"), "output_new": mean(new_rows, "output_tokens"),
                    **paired})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--out", default=None, help="also write the table here (Markdown)")
    args = parser.parse_args(argv)
    for path in (args.old, args.new):
        if not Path(path).is_file():
            print(f"compare_databases: no results database at {path}", file=sys.stderr)
            return 2
    rows = compare_databases(args.old, args.new)
    lines = [f"Old: `{args.old}`; new: `{args.new}`. Items both finished; a failed cell is wrong; NEW - OLD with a "
             "95% paired bootstrap over items and the exact McNemar p-value.", "",
             "| dataset | method | budget | items | over budget old -> new | max B_seq old -> new | accuracy old -> new "
             "| new - old | 95% CI | wins / losses / ties | p | mean B_seq old -> new | mean output old -> new "
             "| same text where the old run stopped within budget |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['dataset']} | {r['method']} | {r['budget']} | {r['items']} | {r['over_old']} -> {r['over_new']} | "
              f"{r['max_b_seq_old']} -> {r['max_b_seq_new']} | {r['accuracy_old']:.3f} -> {r['accuracy_new']:.3f} | "
              f"{r['difference']:+.3f} | {r['ci_low']:+.3f} to {r['ci_high']:+.3f} | {r['wins']} / {r['losses']} / "
              f"{r['ties']} | {r['p_value']:.3g} | {r['b_seq_old']:.0f} -> {r['b_seq_new']:.0f} | "
              f"{r['output_old']:.0f} -> {r['output_new']:.0f} | {r['untouched_same_text']} of {r['untouched']} |"
              for r in rows]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
