"""Parallel-Distill-Refine vs Sequential Refinement vs one long chain of thought, at one matched B_seq.

    python recipes/pdr_math.py [--backend local] [--limit 5] [--budget 2500] [--drafts 4] [--variant summary]

Every method gets the same sequential budget: `plan_draft_tokens` turns it into each method's per-draft
`max_tokens`, and a `Ledger(Budget(sequential=...))` enforces it call by call. PDR's drafts go over the bus
as one `RefineRequest` each (the Refiner and Distiller roles answer them). Prints accuracy, mean B_seq,
B_total and wall time per method, with 95% Wilson intervals on accuracy; `--json` prints every result.
`--concurrency` problems run at once (a method's problems overlap; methods run one after another). Copy it to try other schedules or variants.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from agentkit import Bus, Ledger, Problem, answers_match, load_dataset
from agentkit.backends import backend_from_spec
from agentkit.evaluation.stats import accuracy_summary
from agentkit.ledger import Budget
from agentkit.log import configure_logging
from agentkit.methods.pdr import PDRConfig, pdr, plan_draft_tokens, planning_prompt_tokens


async def main(args: argparse.Namespace) -> None:
    backend = backend_from_spec(args.backend)
    methods = {
        "long-cot": PDRConfig(rounds=1, drafts=(1,), temperature=0.0),
        "sr": PDRConfig(rounds=args.rounds, drafts=(1,) * args.rounds, k=1, variant="topk", kappa=args.kappa),
        "pdr": PDRConfig(rounds=args.rounds, drafts=args.drafts, kappa=args.kappa, variant=args.variant),
    }
    problems = load_dataset(args.dataset, limit=args.limit, seed=args.sample_seed)
    table = {}
    try:
        async with Bus(name="pdr-math") as bus:
            gate = asyncio.Semaphore(args.concurrency)
            for name, config in methods.items():
                started = time.perf_counter()

                async def solve(problem: Problem, name: str = name, config: PDRConfig = config) -> dict[str, Any]:
                    single = None if config.rounds == 1 else config
                    m = plan_draft_tokens(args.budget, prompt_tokens=planning_prompt_tokens(problem.text, single),
                                          config=single)
                    async with gate:
                        result = await pdr(problem.with_(run_id=f"{name}:{problem.problem_id}"), backend,
                                           config.model_copy(update={"max_tokens": m}),
                                           ledger=Ledger(Budget(sequential=args.budget)), bus=bus)
                    return {"id": problem.problem_id, "answer": result.answer, "reference": problem.reference,
                            "correct": answers_match(result.answer, problem.reference), **result.budget}

                rows = list(await asyncio.gather(*(solve(p) for p in problems)))
                table[name] = {**accuracy_summary(r["correct"] for r in rows),
                               "B_seq": sum(r["B_seq"] for r in rows) / len(rows),
                               "B_total": sum(r["B_total"] for r in rows) / len(rows),
                               "wall_s": time.perf_counter() - started, "rows": rows}
    finally:
        await backend.aclose()
    if args.json:
        print(json.dumps(table, indent=2))
        return
    print(f"{len(problems)} {args.dataset} problems, matched B_seq budget {args.budget}, backend {args.backend}")
    print(f"{'method':<10}{'accuracy':>10}{'95% CI':>14}{'B_seq':>10}{'B_total':>10}{'wall s':>9}")
    for name, t in table.items():
        ci = f"{t['ci_low']:.2f}-{t['ci_high']:.2f}"
        print(f"{name:<10}{t['accuracy']:>10.2f}{ci:>14}{t['B_seq']:>10.0f}{t['B_total']:>10.0f}{t['wall_s']:>9.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="local")
    parser.add_argument("--dataset", default="gsm8k")
    parser.add_argument("--limit", type=int, default=5)
    parser.add_argument("--sample-seed", type=int, default=None)
    parser.add_argument("--budget", type=int, default=2500, help="sequential budget B_seq for every method")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--drafts", type=int, default=4)
    parser.add_argument("--kappa", type=int, default=256)
    parser.add_argument("--variant", default="summary", choices=["summary", "topk", "topk-per-sample", "random-k"])
    parser.add_argument("--concurrency", type=int, default=4,
                        help="problems solved at once (the local backend decodes up to 4 sequences together)")
    parser.add_argument("--json", action="store_true")
    configure_logging()  # an application configures logging; the library never does
    asyncio.run(main(parser.parse_args()))
