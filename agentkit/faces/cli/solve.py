"""``agentkit solve``: problems of a dataset through any registered method, graded as sweeps grade."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from agentkit.errors import AgentkitError, BackendError

from ._common import open_handbook


def _method_params(args: argparse.Namespace, method: Any) -> Any:
    """The chosen method's parameters from the flags given and ``--param NAME=VALUE``: a flag sets the parameter
    of the same name when the method has one (one command line serves several methods; a flag the chosen method
    has no parameter for is ignored), ``--param`` names are checked by the method's model."""
    from agentkit.errors import ConfigError
    from agentkit.methods import behavior_count_field

    values: dict[str, Any] = {}
    fields = method.params_model.model_fields
    for name in fields:
        value = getattr(args, name, None)
        if value is not None and name != "behaviors":  # --behaviors is a count; a method's `behaviors` a list
            values[name] = value
    target = behavior_count_field(method)  # --behaviors N: how many behaviors to retrieve, where the method has it
    if args.behaviors is not None and target is not None:
        values[target] = args.behaviors
    for item in args.param:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--param takes NAME=VALUE, got {item!r}")
        try:
            values[name] = json.loads(raw)
        except json.JSONDecodeError:
            values[name] = raw
    return method.params(**values)


async def run(args: argparse.Namespace) -> int:
    from agentkit.backends import backend_from_spec
    from agentkit.bus import Bus, Recorder
    from agentkit.errors import ConfigError
    from agentkit.evaluation.datasets import load_dataset, numeric_answers
    from agentkit.evaluation.grader import MathVerifyGrader
    from agentkit.methods import get_method, result_summary, run_method

    if args.concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    method = get_method(args.method)
    params = _method_params(args, method)
    problems = load_dataset(args.dataset, limit=args.limit, seed=args.sample_seed)
    store = getattr(params, "store", None)
    if not store and method.needs_handbook(params):
        raise ConfigError(f"--method {method.name} needs --store (a handbook built with `agentkit handbook build`)")
    handbook = await open_handbook(store, args.token, args.embedder, create=False) if store else None
    backend = backend_from_spec(args.backend)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    recorder = Recorder(args.record) if args.record else None
    grader = MathVerifyGrader(workers=1)  # the sweeps' grader: a problem scores the same here and there
    try:
        async with Bus(name="solve") as bus:
            if recorder is not None:
                recorder.attach(bus)

            async def one(problem: Any) -> dict[str, Any]:
                try:
                    result = await run_method(method, problem.with_(run_id=problem.problem_id), backend,
                                              params=params, budget=args.budget, seed=args.seed, handbook=handbook,
                                              bus=bus)
                except AgentkitError as exc:  # one failed problem is reported (a wrong answer), the others go on
                    return {"id": problem.problem_id, "method": method.name, "answer": None,
                            "reference": problem.reference,
                            "correct": False if problem.reference is not None else None, "B_seq": 0, "B_total": 0,
                            "output_tokens": 0, "calls": 0, "error": str(exc),
                            "backend_failed": isinstance(exc, BackendError)}
                summary = result_summary(method.name, result)
                _, _, grade = await grader.grade_output(
                    result.text, problem.reference, finish_reason=result.solution.finish_reason,
                    final_number=numeric_answers(problem.dataset or args.dataset))
                row = {"id": problem.problem_id, "reference": problem.reference,
                       "correct": None if grade is None else grade.correct, **summary}
                if result.record is not None:
                    row["record"] = result.record.model_dump(mode="json")
                return row

            # Bounded fan-out: at most `concurrency` problems in flight, results printed as they finish, and on
            # stderr what is going on (a line at the start, then one every HEARTBEAT_S while nothing finishes).
            print(f"solving {len(problems)} problem(s) of {args.dataset} with {method.name} on {backend.name}, "
                  f"{min(args.concurrency, len(problems))} at a time", file=sys.stderr, flush=True)
            pending: set[asyncio.Task[dict[str, Any]]] = set()
            queue = iter(problems)
            while True:
                while len(pending) < args.concurrency and (problem := next(queue, None)) is not None:
                    pending.add(asyncio.create_task(one(problem)))
                if not pending:
                    break
                done, pending = await asyncio.wait(pending, timeout=HEARTBEAT_S,
                                                   return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    print(f"  ... {len(rows)}/{len(problems)} done, {len(pending)} running, "
                          f"{time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
                for task in done:
                    row = task.result()
                    rows.append(row)
                    _print_row(row, args.json, f"[{len(rows)}/{len(problems)}] ")
            failed = sum(1 for r in rows if r.get("error"))
    finally:
        await backend.aclose()
        await grader.aclose()
        if recorder is not None:
            await recorder.close()
        if handbook is not None:
            await handbook.close()
    if not args.json:
        graded = [r for r in rows if r["correct"] is not None]  # a failed problem counts as wrong
        right = sum(1 for r in graded if r["correct"])
        print(f"\n{right}/{len(graded)} correct; {sum(r['B_total'] for r in rows)} tokens in total; "
              f"{time.perf_counter() - started:.1f} s on {backend.name}"
              + (f"; {failed} failed (counted wrong)" if failed else ""))
    if rows and failed == len(rows) and all(r.get("backend_failed") for r in rows):
        print(f"agentkit: backend error: every problem failed; the first: {rows[0]['error']}", file=sys.stderr)
        return 3
    return 1 if failed else 0


HEARTBEAT_S = 15.0
"""Seconds without a finished problem after which ``solve`` says it is still at work."""




def _print_row(row: dict[str, Any], as_json: bool, counter: str = "") -> None:
    if as_json:
        print(json.dumps({k: v for k, v in row.items() if k != "backend_failed"}), flush=True)
        return
    if row.get("error"):
        print(f"{counter}{row['id']}: FAILED: {row['error']}", flush=True)
        return
    mark = {True: "correct", False: "wrong", None: "ungraded"}[row["correct"]]
    print(f"{counter}{row['id']}: answer={row['answer']!s:>10}  reference={row['reference']!s:>10}  {mark:<8}  "
          f"tokens: {row['B_total']} ({row['output_tokens']} output)", flush=True)


