"""Behavior-conditioned inference against plain solving, same budget and seeds (the paper's BCI experiment).

    python recipes/bci_math.py [--backend local] [--store DIR] [--build-limit 20] [--limit 20] [--k 4]

1. Builds (or resumes) a handbook from ``--build-dataset`` training problems with a Strategist.
2. Solves ``--limit`` test problems twice through a Student on the bus: plain chain of thought, and BCI with
   the top-``k`` behaviors retrieved for each problem. Same ``--max-tokens``, temperature and seed.
3. Prints accuracy with 95% Wilson intervals, mean output tokens (the paper's metric), mean input tokens,
   the behavior block's tokens, the citation rate, the paired outcome counts, and the curation cost (every
   token the handbook took to build, from its progress log). ``--json`` prints every row too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from agentkit import Bus, Problem, Solution, SolveRequest, answers_match, load_dataset
from agentkit.backends import backend_from_spec
from agentkit.evaluation.stats import accuracy_summary
from agentkit.log import configure_logging
from agentkit.memory import QdrantBehaviorStore
from agentkit.methods import MethodServer
from agentkit.pipelines import build_handbook


def curation_cost(store: Path) -> dict[str, int]:
    """Tokens of every curated problem in the store's progress log (this run's and earlier runs')."""
    totals = {"problems": 0, "input_tokens": 0, "output_tokens": 0, "calls": 0, "behaviors": 0}
    log = store / "curation.jsonl"
    if log.exists():
        for line in log.read_text().splitlines():
            row = json.loads(line)
            totals["problems"] += 1
            totals["behaviors"] += len(row["behaviors"])
            for key in ("input_tokens", "output_tokens", "calls"):
                totals[key] += row[key]
    return totals


async def main(args: argparse.Namespace) -> None:
    backend = backend_from_spec(args.backend)
    try:
        async with QdrantBehaviorStore(path=args.store) as store:
            build = await build_handbook(load_dataset(args.build_dataset, limit=args.build_limit), backend, store,
                                         concurrency=args.concurrency, max_tokens=args.max_tokens)
            problems = load_dataset(args.dataset, limit=args.limit, seed=args.sample_seed)
            gate = asyncio.Semaphore(args.concurrency)
            table: dict[str, Any] = {}
            async with Bus(name="bci-math") as bus:
                MethodServer(backend, max_tokens=args.max_tokens, handbook=store, k=args.k,
                             retrieval=args.retrieval).attach(bus, concurrency=args.concurrency)

                async def solve(problem: Problem, method: str) -> dict[str, Any]:
                    async with gate:
                        s = await bus.request(SolveRequest(problem=problem, method=method, seed=args.seed,
                                                           run_id=f"{method}:{problem.problem_id}"),
                                              Solution, timeout=3600)
                    return {"id": problem.problem_id, "answer": s.answer, "reference": problem.reference,
                            "correct": answers_match(s.answer, problem.reference),
                            "output_tokens": s.usage.output_tokens, "input_tokens": s.usage.input_tokens,
                            "finish_reason": s.finish_reason, "behaviors": list(s.behaviors), "cited": list(s.cited),
                            "behavior_tokens": s.behavior_tokens}

                for method in ("long-cot", "bci"):
                    started = time.perf_counter()
                    rows = list(await asyncio.gather(*(solve(p, method) for p in problems)))
                    n = len(rows)
                    table[method] = {
                        **accuracy_summary(r["correct"] for r in rows),
                        "mean_output_tokens": sum(r["output_tokens"] for r in rows) / n,
                        "mean_input_tokens": sum(r["input_tokens"] for r in rows) / n,
                        "mean_behavior_tokens": sum(r["behavior_tokens"] for r in rows) / n,
                        "truncated": sum(r["finish_reason"] == "length" for r in rows),
                        "answers_citing": sum(bool(r["cited"]) for r in rows),
                        "wall_s": time.perf_counter() - started, "rows": rows}
    finally:
        await backend.aclose()
    plain, bci = table["long-cot"]["rows"], table["bci"]["rows"]
    paired = {"both": sum(a["correct"] and b["correct"] for a, b in zip(plain, bci, strict=True)),
              "only_plain": sum(a["correct"] and not b["correct"] for a, b in zip(plain, bci, strict=True)),
              "only_bci": sum(b["correct"] and not a["correct"] for a, b in zip(plain, bci, strict=True))}
    summary = {"build": build.model_dump(), "curation_cost": curation_cost(Path(args.store)), "paired": paired,
               "settings": vars(args)}
    if args.json:
        print(json.dumps({**table, **summary}, indent=2))
        return
    print(f"{len(problems)} {args.dataset} problems, max_tokens {args.max_tokens}, seed {args.seed}, "
          f"k={args.k} behaviors by {args.retrieval}, backend {args.backend}")
    print(f"{'method':<10}{'accuracy':>10}{'95% CI':>13}{'out tok':>9}{'in tok':>8}{'beh tok':>9}{'cited':>7}"
          f"{'wall s':>8}")
    for name, t in table.items():
        ci = f"{t['ci_low']:.2f}-{t['ci_high']:.2f}"
        print(f"{name:<10}{t['accuracy']:>10.2f}{ci:>13}{t['mean_output_tokens']:>9.0f}{t['mean_input_tokens']:>8.0f}"
              f"{t['mean_behavior_tokens']:>9.0f}{t['answers_citing']:>7}{t['wall_s']:>8.0f}")
    print(f"paired: both right {paired['both']}, only plain {paired['only_plain']}, only BCI {paired['only_bci']}")
    c = summary["curation_cost"]
    print(f"handbook: {c['problems']} problems curated -> {c['behaviors']} behaviors stored "
          f"({c['input_tokens']} input + {c['output_tokens']} output tokens, {c['calls']} calls)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="local")
    parser.add_argument("--store", default=".agentkit/handbook")
    parser.add_argument("--build-dataset", default="gsm8k-train")
    parser.add_argument("--build-limit", type=int, default=20)
    parser.add_argument("--dataset", default="gsm8k")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--sample-seed", type=int, default=None)
    parser.add_argument("--k", type=int, default=4, help="behaviors retrieved per problem")
    parser.add_argument("--retrieval", default="embedding", choices=["embedding", "topic", "both"])
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    configure_logging()  # an application configures logging; the library never does
    asyncio.run(main(parser.parse_args()))
