"""``agentkit sweep validate|run|resume|merge|report``: concurrent, resumable benchmark sweeps."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from ._common import stderr_console


def _report_rows(db_path: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``sweep report --json --rows``: each row with its method record, trace fields included (read per row)."""
    from agentkit.sweep import ResultsDB, report_row

    db = ResultsDB(db_path, create=False, readonly=True)
    try:
        return [report_row(r, db.trace(r["key"]) if r["status"] != "missing" else None) for r in rows]
    finally:
        db.close()




def _group_line(g: dict[str, Any], budget_label: Any) -> str:
    """One (dataset, method, budget) group of a report as a line: accuracy with its interval, cells, tokens."""
    failed = (f", {g['failed']} failed" if g["failed"] else "") + (
        f", {g['missing']} missing" if g["missing"] else "") + (
        f", {g['over_budget']} over budget" if g["over_budget"] else "")
    return (f"{g['dataset']:<10} {g['method']:<28} @{budget_label(g['budget_kind'], g['budget']):<11} accuracy "
            f"{g['accuracy']:.3f} [{g['ci_low']:.3f}-{g['ci_high']:.3f}] of {g['graded']} cells{failed}   "
            f"B_seq {g['B_seq']:.0f}   B_total {g['B_total']:.0f}")


async def run(args: argparse.Namespace) -> int:
    from agentkit.errors import ConfigError
    from agentkit.sweep import (
        ResultsDB,
        implied_comparisons,
        infeasible,
        load_spec,
        report_data,
        require_handbooks,
        run_sweep,
        spec_grid,
        starved,
        validate_spec,
        write_report,
    )
    from agentkit.sweep.report import budget_label
    from agentkit.sweep.validate import duration, handbook_split_warnings

    if args.action == "merge":
        for source in args.inputs:  # every input must be a results database before anything is written
            ResultsDB(source, create=False).close()
        db = ResultsDB(args.out)
        try:
            added = await asyncio.to_thread(db.merge, args.inputs)
            total = db.count()
        finally:
            db.close()
        print(json.dumps({"added": added, "rows": total, "db": args.out}))
        return 0
    if args.action == "report":
        if args.out is None and not args.json:
            raise ConfigError("sweep report needs --out DIR (where the report is written), or --json")
        report_spec = load_spec(args.spec) if args.spec else None
        prices = {b.key: b.price_per_million for b in report_spec.backends} if report_spec else None
        pairs = [tuple(p) for p in args.compare] if args.compare else None
        grid = None
        if report_spec is not None:
            checked = ResultsDB(args.db, create=False, readonly=True)
            try:
                recorded = checked.grid() is not None
            finally:
                checked.close()
            if not recorded:  # an older database: the spec says which cells it should have
                grid = await asyncio.to_thread(spec_grid, report_spec)
        if args.out is None:
            out = await asyncio.to_thread(report_data, args.db, prices=prices, pairs=pairs, grid=grid)
        else:
            out = await asyncio.to_thread(write_report, args.db, args.out, x_field=args.x, prices=prices, pairs=pairs,
                                          grid=grid)
        for line in out["warnings"]:
            print(f"agentkit: warning: {line}", file=sys.stderr)
        if out["missing"]:
            print(f"agentkit: warning: {len(out['missing'])} cells of the grid have no row (never finished, or "
                  "removed); each counts as a wrong answer" + (f" and is listed in {out['markdown']}"
                                                               if "markdown" in out else ""), file=sys.stderr)
        for c in out["comparisons"]:
            if "refused" in c:
                print(f"agentkit: warning: {c['a']} vs {c['b']} @{budget_label(c['budget_kind'], c['budget'])} not "
                      f"compared: {c['refused']}", file=sys.stderr)
        if args.json:
            shown: dict[str, Any] = {key: out[key] for key in ("groups", "comparisons", "missing", "warnings", "markdown", "html",
                                               "plots") if key in out}
            if args.rows:
                shown["rows"] = await asyncio.to_thread(_report_rows, args.db, out["rows"])
            print(json.dumps(shown, default=str))
            return 0
        for g in out["groups"]:
            print(_group_line(g, budget_label))
        for c in out["comparisons"]:
            if "refused" in c:
                continue
            print(f"{c['dataset']:<10} {c['a']} - {c['b']} @{budget_label(c['budget_kind'], c['budget'])}: {c['difference']:+.3f} "
                  f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] over {c['items']} items, "
                  f"wins/losses/ties {c['wins']}/{c['losses']}/{c['ties']}, McNemar p = {c['p_value']:.3g}")
        print(f"report: {out['markdown']}\nhtml:   {out['html']}")
        for dataset, path in out["plots"].items():
            print(f"plot:   {path} ({dataset})")
        return 0
    spec = load_spec(args.spec)
    if args.action == "validate" or not args.no_validate:
        # `validate` plans every cell before it checks the handbook stores, so a missing store is reported with the
        # whole plan (and exit 2, as `run` refuses it); `run` checks the stores first
        plans = await asyncio.to_thread(validate_spec, spec, stores=args.action != "validate")
        problems = infeasible(plans, spec.min_draft_tokens)
        for line in starved(plans, spec.starved_fraction):
            print(f"agentkit: warning: starved: {line}", file=sys.stderr)
        if args.action == "validate":
            if not 0 < args.discordance <= 1:
                raise ConfigError(f"--discordance must lie in (0, 1], got {args.discordance}")
            if args.pilot is not None:
                ResultsDB(args.pilot, create=False, readonly=True).close()  # a missing or bad --pilot: one line
            took = duration(plans, args.throughput) if args.throughput is not None else None
            sized = await asyncio.to_thread(implied_comparisons, spec, plans, pilot=args.pilot,
                                            discordance=args.discordance)
            if args.json:
                print(json.dumps([p.model_dump() for p in plans] if took is None and args.pilot is None else
                                 {"plans": [p.model_dump() for p in plans], "duration": took, "comparisons": sized}))
            else:
                for p in plans:
                    verdict = "ok" if p.feasible else f"INFEASIBLE on {p.infeasible}/{p.problems}"
                    caps = (f"{p.min_tokens}" if p.min_tokens == p.max_tokens else f"{p.min_tokens} to {p.max_tokens}")
                    print(f"{p.dataset:<10} {p.method[:44]:<44} {budget_label(p.budget_kind, p.budget):>11}: "
                          f"{caps:>14} tokens per answering call  {verdict}")
                if took is not None:
                    skipped = (f"; {took['infeasible_cells']:,} cells of infeasible groups left out"
                               if took["infeasible_cells"] else "")
                    print(f"{took['cells']:,} cells, at most {took['max_generated_tokens']:,} generated tokens: "
                          f"at most {took['hours']:,} h at {took['throughput']:,.0f} tokens/s (every call at its "
                          f"cap; prefill left out{skipped})")
                if sized:
                    print("\nPaired comparisons the report will make: the smallest accuracy difference each detects "
                          "with 80% power at alpha 0.05 (McNemar; problems are the sample, seeds averaged)")
                for c in sized:
                    mde = "none detectable" if c["mde"] is None else f"+/-{c['mde']:.3f}"
                    print(f"{c['dataset']:<10} {c['a'][:36]:<36} vs {c['b']:<10} {budget_label(c['budget_kind'], c['budget']):>11}: "
                          f"{c['items']:>4} problems, discordance {c['discordance']:.2f} ({c['source']}): MDE {mde}")
            for line in problems:
                print(f"agentkit: infeasible: {line}", file=sys.stderr)
            stores = require_handbooks(spec)  # what `run` would refuse: one line, exit 2
            for line in await handbook_split_warnings(spec, stores):  # what `run` and `report` warn about, read-only
                print(f"agentkit: warning: {line}", file=sys.stderr)
            return 1 if problems else 0
        if problems:
            raise ConfigError(f"{args.spec}: {len(problems)} infeasible cell group(s) (`agentkit sweep validate` "
                              "lists them; --no-validate runs anyway): " + "; ".join(problems))
    try:
        index, count = (int(x) for x in args.shard.split("/"))
    except ValueError:
        raise ConfigError(f"--shard must look like i/n, got {args.shard!r}") from None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from agentkit.sweep import BackendUnreachable

    executor = None
    if args.executor == "ray":
        from agentkit.sweep.ray_executor import RayExecutor, check_ray_spec

        check_ray_spec(spec)
        executor = RayExecutor(args.ray_address, workers=args.workers)
        executor.check()
    elif args.ray_address or args.workers:
        raise ConfigError("--ray-address and --workers go with --executor ray")
    stats = {"failed": 0, "tokens": 0, "graded": 0, "correct": 0}
    with Progress(TextColumn(spec.name), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[accuracy]}"),
                  TextColumn("{task.fields[status]}"), TextColumn("elapsed"), TimeElapsedColumn(),
                  TextColumn("left"), TimeRemainingColumn(), console=stderr_console()) as bar:
        task = bar.add_task("sweep", total=None, status="", accuracy="")

        def start(cells: int, finished: int) -> None:
            # cells already in the database start the bar; the ETA's rate comes from the cells run now
            bar.reset(task, total=cells, completed=finished, status=f"{finished} already in {args.db}",
                      accuracy="")

        def advance(row: dict[str, Any]) -> None:
            stats["failed"] += row["status"] != "ok"
            stats["tokens"] += row["b_total"] or 0
            if row.get("reference") is not None:  # a failed cell is a wrong answer
                stats["graded"] += 1
                stats["correct"] += bool(row.get("correct"))
            accuracy = f"accuracy {stats['correct'] / stats['graded']:.3f} (this run)" if stats["graded"] else ""
            bar.update(task, advance=1, accuracy=accuracy,
                       status=f"{stats['failed']} failed, {stats['tokens']:,} tokens")

        try:
            summary = await run_sweep(spec, args.db, shard=(index, count), on_cell=advance, on_start=start,
                                      executor=executor,
                                      retry=args.retry_failed, stop_after_unreachable=args.stop_after_unreachable or None,
                                      on_warning=lambda line: print(f"agentkit: warning: {line}", file=sys.stderr))
        except BackendUnreachable:
            bar.stop()
            raise
    if args.json:
        print(json.dumps(summary.model_dump()))
    else:
        data = await asyncio.to_thread(report_data, args.db)
        print(f"{summary.ran} cells run ({summary.failed} failed), {summary.skipped} already in {args.db}, "
              f"{summary.tokens:,} tokens, {summary.wall_s:.0f} s")
        for g in data["groups"]:
            print(_group_line(g, budget_label))
        print(f"next: agentkit sweep report {args.db} --out REPORT_DIR   (intervals, paired comparisons, plots)\n"
              f"      agentkit view {args.db}   (every cell and its run, in a browser)")
    if summary.failed:
        print(f"agentkit: {summary.failed} of {summary.ran} cells run failed (their rows hold the errors; "
              f"`agentkit sweep resume` reruns the transient ones)", file=sys.stderr)
        return 1
    return 0


