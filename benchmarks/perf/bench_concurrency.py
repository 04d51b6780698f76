"""Concurrency: M = 1, 4, 16, 64 concurrent requests through OpenAICompatible + middleware against the
scripted server with latency L. If the requests truly overlap, M requests take about L, not M x L.

    python benchmarks/perf/bench_concurrency.py [--latency 0.5 1.0] [--repeats 5]

Target (issue 2): wall time at most 1.1 x L for every M. Each burst runs on warm connections (the client
first sends M requests at once, as the previous round of a PDR run would have), so the figure measures
overlap, not TCP set-up. For reference the same bursts also run through a raw AsyncOpenAI client: what
exceeds L there is the openai SDK's own CPU time per request, which on 2 cores shared with the server
process adds up at M = 64. Writes benchmarks/perf/results/concurrency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import openai

from agentkit.backends import ConcurrencyLimit, OpenAICompatible, with_middleware

from _common import scripted_server, write_result


async def burst(base_url: str, m: int, repeats: int) -> list[float]:
    backend = with_middleware(OpenAICompatible("scripted", base_url=base_url), concurrency=ConcurrencyLimit(64))

    async def once() -> float:
        started = time.perf_counter()
        replies = await asyncio.gather(*(backend.chat(f"draft {i} of the problem", max_tokens=32,
                                                      temperature=0.8, seed=i) for i in range(m)))
        assert len(replies) == m
        return time.perf_counter() - started

    await once()  # warm: M keep-alive connections
    walls = [await once() for _ in range(repeats)]
    await backend.aclose()
    return walls


async def raw_burst(base_url: str, m: int, repeats: int) -> list[float]:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)

    async def once() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(client.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": f"draft {i} of the problem"}], max_tokens=32,
            temperature=0.8, seed=i) for i in range(m)))
        return time.perf_counter() - started

    await once()
    walls = [await once() for _ in range(repeats)]
    await client.close()
    return walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, dict[int, dict[str, float]]] = {}
    for latency in args.latency:
        rows: dict[int, dict[str, float]] = {}
        with scripted_server(latency) as base_url:
            for m in (1, 4, 16, 64):
                ours = asyncio.run(burst(base_url, m, args.repeats))
                raw = asyncio.run(raw_burst(base_url, m, args.repeats))
                rows[m] = {"median_s": statistics.median(ours), "ratio_to_latency": statistics.median(ours) / latency,
                           "raw_sdk_ratio_to_latency": statistics.median(raw) / latency}
        results[str(latency)] = rows
    met = {lat: all(r["ratio_to_latency"] <= 1.1 for r in rows.values()) for lat, rows in results.items()}
    report = {"benchmark": "concurrent requests overlap", "repeats": args.repeats, "results": results,
              "target": "median wall <= 1.1 x latency for every M", "met": met}
    write_result("concurrency", report)
    for latency, rows in results.items():
        print(f"server latency L = {latency} s, median of {args.repeats} warm bursts")
        for m, r in rows.items():
            print(f"  M = {m:>2}: agentkit {r['ratio_to_latency']:.3f} x L   (raw AsyncOpenAI "
                  f"{r['raw_sdk_ratio_to_latency']:.3f} x L)")
        print(f"  target <= 1.1 x L for every M: {'met' if met[latency] else 'NOT met'}")


if __name__ == "__main__":
    main()
