"""Orchestration overhead: 256 concurrent chat calls through OpenAICompatible + middleware versus a raw
asyncio.gather of AsyncOpenAI calls, against the scripted server with 100 ms simulated latency.

    python benchmarks/perf/bench_overhead.py [--calls 256] [--latency 0.1] [--repeats 7]

Target (issue 2): at most 5% more wall time than the raw baseline. Both sides use the same openai SDK and
the same server process; runs alternate and the medians are compared. The agentkit side runs the default
stack of `backend_from_spec` (retry) plus a concurrency limit and a rate limit (what a sweep uses), and a
second variant adds the on-disk response cache (every call a miss, so it pays a lookup and a write).
Writes benchmarks/perf/results/overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import openai

from agentkit.backends import ConcurrencyLimit, OpenAICompatible, RateLimit, ResponseCache, with_middleware

from _common import scripted_server, write_result


def prompt(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"question number {i}: what is {i} + {i}?"}]


async def raw(base_url: str, calls: int) -> float:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)
    started = time.perf_counter()
    replies = await asyncio.gather(*(client.chat.completions.create(
        model="scripted", messages=prompt(i), max_tokens=64, temperature=0.0, seed=i) for i in range(calls)))
    elapsed = time.perf_counter() - started
    assert len(replies) == calls and all(r.choices[0].message.content for r in replies)
    await client.close()
    return elapsed


async def ours(base_url: str, calls: int, cache_dir: str | None) -> float:
    cache = ResponseCache(Path(cache_dir) / f"{time.time_ns()}.sqlite") if cache_dir else None
    backend = with_middleware(OpenAICompatible("scripted", base_url=base_url), concurrency=ConcurrencyLimit(calls),
                              rate=RateLimit(requests_per_minute=1e6, tokens_per_minute=1e9), cache=cache)
    started = time.perf_counter()
    replies = await asyncio.gather(*(backend.chat(prompt(i), max_tokens=64, temperature=0.0, seed=i)
                                     for i in range(calls)))
    elapsed = time.perf_counter() - started
    assert len(replies) == calls and all(r[0].text for r in replies)
    await backend.aclose()
    if cache is not None:
        cache.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=256)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"raw AsyncOpenAI gather": [], "agentkit (retry+limits)": [],
                                     "agentkit (retry+limits+cache)": []}
    with scripted_server(args.latency) as base_url, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(raw(base_url, args.calls))  # warm-up: server and client imports, first connections
        asyncio.run(ours(base_url, args.calls, None))
        for _ in range(args.repeats):
            times["raw AsyncOpenAI gather"].append(asyncio.run(raw(base_url, args.calls)))
            times["agentkit (retry+limits)"].append(asyncio.run(ours(base_url, args.calls, None)))
            times["agentkit (retry+limits+cache)"].append(asyncio.run(ours(base_url, args.calls, tmp)))
    medians = {k: statistics.median(v) for k, v in times.items()}
    base = medians["raw AsyncOpenAI gather"]
    overhead = {k: round(100 * (v / base - 1), 2) for k, v in medians.items()}
    main_overhead = overhead["agentkit (retry+limits)"]
    report = {
        "benchmark": "orchestration overhead", "calls": args.calls, "latency_s": args.latency,
        "repeats": args.repeats, "seconds": times, "median_s": medians, "overhead_percent": overhead,
        "target": "<= 5% (retry+limits stack)", "met": main_overhead <= 5.0, "openai_sdk": openai.__version__,
    }
    write_result("overhead", report)
    print(f"{args.calls} concurrent calls, server latency {args.latency * 1000:.0f} ms, median of {args.repeats}")
    for name, median in medians.items():
        print(f"  {name:<32}{median:>8.3f} s  {overhead[name]:+6.1f}%")
    print(f"overhead {main_overhead:+.1f}% (target <= 5%: {'met' if main_overhead <= 5 else 'NOT met'})")


if __name__ == "__main__":
    main()
