"""Behavior-guided self-improvement against critique-and-revise (and a single attempt), at the same budget.

    python recipes/self_improve.py [--backend local] [--dataset gsm8k] [--limit 5] [--max-tokens 512]

Self-improvement: the model answers, curates behaviors from its own attempt (reflect and extract, the reference
never shown), and answers again with only the question and those behaviors. Critique-and-revise: the model
answers, then critiques and revises that answer. Every answering call gets the same ``--max-tokens`` and
seed. Prints accuracy, tokens of the final answer, and every token the method spent (B_total).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from agentkit import Ledger, Problem, answers_match, load_dataset
from agentkit.backends import backend_from_spec
from agentkit.evaluation.stats import accuracy_summary
from agentkit.log import configure_logging
from agentkit.methods import critique_revise, long_cot, self_improve


async def main(args: argparse.Namespace) -> None:
    backend = backend_from_spec(args.backend)
    problems = load_dataset(args.dataset, limit=args.limit, seed=args.sample_seed)
    gate = asyncio.Semaphore(args.concurrency)

    async def run(method: str, problem: Problem) -> dict[str, Any]:
        ledger = Ledger(run_id=f"{method}:{problem.problem_id}")
        common: dict[str, Any] = {"ledger": ledger, "max_tokens": args.max_tokens, "seed": args.seed}
        async with gate:
            if method == "single":
                solution = await long_cot(problem, backend, **common)
            elif method == "self-improve":
                solution = (await self_improve(problem, backend, attempts=args.attempts, **common)).solution
            else:
                solution = (await critique_revise(problem, backend, **common)).solution
        return {"id": problem.problem_id, "answer": solution.answer, "correct": answers_match(
            solution.answer, problem.reference), "answer_output_tokens": ledger.answer_output_tokens,
            "B_seq": ledger.b_seq, "B_total": ledger.b_total, "behaviors": list(solution.behaviors)}

    table = {}
    try:
        for method in ("single", "critique-revise", "self-improve"):
            rows = list(await asyncio.gather(*(run(method, p) for p in problems)))
            table[method] = {**accuracy_summary(r["correct"] for r in rows),
                             **{k: sum(r[k] for r in rows) / len(rows)
                                for k in ("answer_output_tokens", "B_seq", "B_total")}, "rows": rows}
    finally:
        await backend.aclose()
    if args.json:
        print(json.dumps(table, indent=2))
        return
    print(f"{len(problems)} {args.dataset} problems, max_tokens {args.max_tokens} per answer, backend {args.backend}")
    print(f"{'method':<17}{'accuracy':>9}{'95% CI':>12}{'answer out':>12}{'B_seq':>8}{'B_total':>9}")
    for name, t in table.items():
        print(f"{name:<17}{t['accuracy']:>9.2f}{t['ci_low']:>6.2f}-{t['ci_high']:.2f}"
              f"{t['answer_output_tokens']:>12.0f}{t['B_seq']:>8.0f}{t['B_total']:>9.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="local")
    parser.add_argument("--dataset", default="gsm8k")
    parser.add_argument("--limit", type=int, default=5)
    parser.add_argument("--sample-seed", type=int, default=None)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--attempts", type=int, default=1, help="first attempts curated by self-improvement")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    configure_logging()  # an application configures logging; the library never does
    asyncio.run(main(parser.parse_args()))
