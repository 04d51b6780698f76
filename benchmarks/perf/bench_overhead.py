"""Middleware overhead, like for like: 256 concurrent chat calls through ``OpenAICompatible`` + the middleware
stack versus a bare client on the **same transport** sending the same bodies, against the scripted server with
100 ms simulated latency.

    python benchmarks/perf/bench_overhead.py [--calls 256] [--latency 0.1] [--repeats 7]

Compared (all in this process, same server process, same JSON bodies; runs alternate, medians compared):

- ``bare aiohttp``: one ``aiohttp.ClientSession`` gathering ``POST /chat/completions`` and decoding the JSON, the
  floor of agentkit's default transport for a base URL;
- ``agentkit aiohttp``: ``OpenAICompatible(http="aiohttp")`` under the stack a sweep uses (``backend_from_spec``'s
  retry, a concurrency limit and a rate limit), and the same plus the on-disk response cache (every call a miss,
  so it pays a lookup and a write);
- ``bare sdk``: ``AsyncOpenAI.post("/chat/completions", cast_to=bytes)`` and ``json.loads``, the floor of the SDK
  transport (``http="sdk"``, the default for OpenAI's own API), and ``agentkit sdk`` on it;
- ``sdk create``: the SDK's full ``chat.completions.create`` (request transform, typed response), for the
  transport comparison only.

Figures: middleware overhead = agentkit / bare on the same transport (target: at most +5%); the transport
comparison (bare aiohttp vs ``sdk create``) is reported apart and is not an overhead. Each figure is the median
over repeats with its min-max of per-repeat ratios. Writes benchmarks/perf/results/overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai

from agentkit.backends import ConcurrencyLimit, OpenAICompatible, RateLimit, ResponseCache, with_middleware

from _common import scripted_server, write_result


def body(i: int) -> dict[str, Any]:
    return {"model": "scripted", "messages": [{"role": "user", "content": f"question number {i}: what is {i} + {i}?"}],
            "temperature": 0.0, "max_tokens": 64, "seed": i}


async def timed(calls: int, one: Callable[[int], Awaitable[str]]) -> float:
    started = time.perf_counter()
    texts = await asyncio.gather(*(one(i) for i in range(calls)))
    elapsed = time.perf_counter() - started
    assert len(texts) == calls and all(texts)
    return elapsed


async def bare_aiohttp(base_url: str, calls: int) -> float:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     headers={"Authorization": "Bearer x"}) as session:
        async def one(i: int) -> str:
            async with session.post(f"{base_url}/chat/completions", json=body(i)) as r:
                data = json.loads(await r.read())
            return str(data["choices"][0]["message"]["content"])

        return await timed(calls, one)


async def bare_sdk(base_url: str, calls: int) -> float:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)

    async def one(i: int) -> str:
        data = json.loads(await client.post("/chat/completions", body=body(i), cast_to=bytes))
        return str(data["choices"][0]["message"]["content"])

    try:
        return await timed(calls, one)
    finally:
        await client.close()


async def sdk_create(base_url: str, calls: int) -> float:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)

    async def one(i: int) -> str:
        reply = await client.chat.completions.create(**body(i))
        return reply.choices[0].message.content or ""

    try:
        return await timed(calls, one)
    finally:
        await client.close()


async def ours(base_url: str, calls: int, http: str, cache_dir: str | None) -> float:
    cache = ResponseCache(Path(cache_dir) / f"{time.time_ns()}.sqlite") if cache_dir else None
    backend = with_middleware(OpenAICompatible("scripted", base_url=base_url, http=http),
                              concurrency=ConcurrencyLimit(calls),
                              rate=RateLimit(requests_per_minute=1e6, tokens_per_minute=1e9), cache=cache)

    async def one(i: int) -> str:
        b = body(i)
        [completion] = await backend.chat(b["messages"], max_tokens=64, temperature=0.0, seed=i)
        return completion.text

    try:
        return await timed(calls, one)
    finally:
        await backend.aclose()
        if cache is not None:
            cache.close()


def spread(numer: list[float], denom: list[float]) -> dict[str, float]:
    ratios = [a / b for a, b in zip(numer, denom, strict=True)]
    return {"median_percent": round(100 * (statistics.median(ratios) - 1), 1),
            "min_percent": round(100 * (min(ratios) - 1), 1), "max_percent": round(100 * (max(ratios) - 1), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=256)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with scripted_server(args.latency) as base_url, tempfile.TemporaryDirectory() as tmp:
        variants: dict[str, Callable[[], Awaitable[float]]] = {
            "bare aiohttp": lambda: bare_aiohttp(base_url, args.calls),
            "agentkit aiohttp": lambda: ours(base_url, args.calls, "aiohttp", None),
            "agentkit aiohttp + cache": lambda: ours(base_url, args.calls, "aiohttp", tmp),
            "bare sdk": lambda: bare_sdk(base_url, args.calls),
            "agentkit sdk": lambda: ours(base_url, args.calls, "sdk", None),
            "sdk create": lambda: sdk_create(base_url, args.calls),
        }
        for run in variants.values():  # warm-up: imports, first connections
            asyncio.run(run())  # type: ignore[arg-type]
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, run in variants.items():
                times[name].append(asyncio.run(run()))  # type: ignore[arg-type]
    overhead = {
        "aiohttp: agentkit (retry+limits) over bare": spread(times["agentkit aiohttp"], times["bare aiohttp"]),
        "aiohttp: agentkit (retry+limits+cache) over bare": spread(times["agentkit aiohttp + cache"],
                                                                   times["bare aiohttp"]),
        "sdk: agentkit (retry+limits) over bare": spread(times["agentkit sdk"], times["bare sdk"]),
    }
    transport = {"sdk create over bare aiohttp": spread(times["sdk create"], times["bare aiohttp"])}
    main_figures = [overhead["aiohttp: agentkit (retry+limits) over bare"]["median_percent"],
                    overhead["sdk: agentkit (retry+limits) over bare"]["median_percent"]]
    report = {
        "benchmark": "middleware overhead, same transport", "calls": args.calls, "latency_s": args.latency,
        "repeats": args.repeats, "seconds": times,
        "median_s": {k: round(statistics.median(v), 4) for k, v in times.items()},
        "overhead": overhead, "transport_comparison": transport,
        "target": "<= +5% over the bare client on the same transport (retry+limits stack)",
        "met": all(m <= 5.0 for m in main_figures), "openai_sdk": openai.__version__,
        "aiohttp": aiohttp.__version__,
    }
    write_result("overhead", report)
    print(f"{args.calls} concurrent calls, server latency {args.latency * 1000:.0f} ms, {args.repeats} repeats")
    for name, v in report["median_s"].items():
        print(f"  {name:<28}{v:>8.3f} s")
    for name, s in {**overhead, **transport}.items():
        print(f"  {name:<50} {s['median_percent']:+6.1f}% (min {s['min_percent']:+.1f}, max {s['max_percent']:+.1f})")
    print(f"target <= +5% on the same transport: {'met' if report['met'] else 'NOT met'}")


if __name__ == "__main__":
    main()
