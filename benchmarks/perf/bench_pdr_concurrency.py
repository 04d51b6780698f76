"""PDR round concurrency: one round of M = 8 drafts (each a RefineRequest on the bus, answered by the
Refiner role) against the scripted server with simulated latency L, versus one draft.

    python benchmarks/perf/bench_pdr_concurrency.py [--latency 1.0] [--drafts 8] [--repeats 5]

Target (issue 4): the round of M drafts takes at most 1.15 x the wall time of one draft. A run of
``PDRConfig(rounds=1, drafts=(M,))`` would not exist (the last round has one draft), so the round is timed
as a two-round run with an agreement-based top-k workspace (no distill call): M drafts + 1 final, compared
with SR's 1 + 1. Writes benchmarks/perf/results/pdr_concurrency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from agentkit import Bus, Problem
from agentkit.backends import ConcurrencyLimit, OpenAICompatible, with_middleware
from agentkit.methods import PDRConfig, pdr

from _common import scripted_server, write_result

PROBLEM = Problem(problem_id="bench", text="What is 6 times 7?", reference="42")


async def timed(base_url: str, drafts: int, repeats: int) -> list[float]:
    backend = with_middleware(OpenAICompatible("scripted", base_url=base_url), concurrency=ConcurrencyLimit(64))
    config = PDRConfig(rounds=2, drafts=(drafts, 1), variant="topk", k=2, kappa=128, max_tokens=64)
    walls = []
    async with Bus() as bus:
        await pdr(PROBLEM.with_(run_id="warm"), backend, config, bus=bus)  # warm connections
        for i in range(repeats):
            started = time.perf_counter()
            await pdr(PROBLEM.with_(run_id=f"run{i}"), backend, config, bus=bus)
            walls.append(time.perf_counter() - started)
    await backend.aclose()
    return walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--drafts", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with scripted_server(args.latency) as base_url:
        one = asyncio.run(timed(base_url, 1, args.repeats))
        many = asyncio.run(timed(base_url, args.drafts, args.repeats))
    # Both runs have the same final round (one draft, latency L); the difference is the first round.
    round_one = statistics.median(one) - args.latency
    round_many = statistics.median(many) - args.latency
    ratio = round_many / round_one
    write_result("pdr_concurrency", {
        "benchmark": "one PDR round of M drafts vs one draft", "latency_s": args.latency, "drafts": args.drafts,
        "repeats": args.repeats, "run_s": {"M=1": one, f"M={args.drafts}": many},
        "round_s": {"M=1": round_one, f"M={args.drafts}": round_many}, "ratio": round(ratio, 3),
        "target": "<= 1.15", "met": ratio <= 1.15})
    print(f"server latency {args.latency} s, median of {args.repeats}: round of 1 draft {round_one:.3f} s, "
          f"round of {args.drafts} drafts {round_many:.3f} s -> {ratio:.3f}x (target <= 1.15: "
          f"{'met' if ratio <= 1.15 else 'NOT met'})")


if __name__ == "__main__":
    main()
