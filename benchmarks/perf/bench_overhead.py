"""Middleware overhead, like for like: concurrent chat calls through ``OpenAICompatible`` + the middleware stack
versus a bare client on the **same transport** sending the same bodies, against the scripted server with 100 ms
simulated latency.

    python benchmarks/perf/bench_overhead.py [--calls 256] [--waves 4] [--latency 0.1] [--repeats 15] [--no-pin]

Compared (one process, one event loop, the same server process, the same JSON bodies):

- ``bare aiohttp``: one ``aiohttp.ClientSession`` gathering ``POST /chat/completions`` and decoding the JSON, the
  floor of agentkit's default transport for a base URL;
- ``agentkit aiohttp``: ``OpenAICompatible(http="aiohttp")`` under the stack a sweep uses (``backend_from_spec``'s
  retry, a concurrency limit and a rate limit), and the same plus the on-disk response cache (every call a miss,
  so it pays a lookup and a write);
- ``bare sdk``: ``AsyncOpenAI.post("/chat/completions", cast_to=bytes)`` and ``json.loads``, the floor of the SDK
  transport (``http="sdk"``, the default for OpenAI's own API), and ``agentkit sdk`` on it;
- ``sdk create``: the SDK's full ``chat.completions.create`` (request transform, typed response), for the
  transport comparison only.

How: every client is created once and kept **warm**, as a sweep or an agent uses one: a first burst of ``--calls``
opens its connections, then each repeat times ``--waves`` waves of ``--calls`` concurrent calls per variant, the
variants alternating within the repeat (so a noisy moment hits all of them). The server and this process are
pinned to separate cores (``--no-pin`` to let them float). Besides wall time, the client's CPU time per call is
measured (``time.process_time`` over the waves): it is the steadier figure, because on two cores a wave's wall
time also carries the server's scheduling.

Figures: middleware overhead = agentkit / bare on the same transport, in wall time (target: at most +5%) and in
client CPU per call; the transport comparison (bare aiohttp vs ``sdk create``) is reported apart and is not an
overhead. Each figure is the median of per-repeat ratios with their min-max. Writes
benchmarks/perf/results/overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai

from agentkit.backends import Backend, ConcurrencyLimit, OpenAICompatible, RateLimit, ResponseCache, with_middleware

from _common import scripted_server, write_result

One = Callable[[int], Awaitable[str]]


def body(i: int) -> dict[str, Any]:
    return {"model": "scripted", "messages": [{"role": "user", "content": f"question number {i}: what is {i} + {i}?"}],
            "temperature": 0.0, "max_tokens": 64, "seed": i}


class Variant:
    """One client kept open for the whole benchmark: ``one(i)`` sends call ``i``; ``close()`` at the end."""

    def __init__(self, one: One, close: Callable[[], Awaitable[Any]]) -> None:
        self.one, self.close = one, close

    async def waves(self, calls: int, waves: int, offset: int) -> tuple[float, float]:
        """(wall seconds, client CPU seconds) for ``waves`` waves of ``calls`` concurrent calls."""
        cpu, started = time.process_time(), time.perf_counter()
        for w in range(waves):
            base = offset + w * calls
            texts = await asyncio.gather(*(self.one(base + i) for i in range(calls)))
            assert len(texts) == calls and all(texts)
        return time.perf_counter() - started, time.process_time() - cpu


def bare_aiohttp(base_url: str) -> Variant:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), headers={"Authorization": "Bearer x"})
    url = f"{base_url}/chat/completions"

    async def one(i: int) -> str:
        async with session.post(url, json=body(i)) as r:
            data = json.loads(await r.read())
        return str(data["choices"][0]["message"]["content"])

    return Variant(one, session.close)


def sdk_client(base_url: str, *, create: bool) -> Variant:
    """The SDK's raw ``post`` (the bare floor of agentkit's ``http="sdk"``), or its full ``create``."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)

    async def post(i: int) -> str:
        data = json.loads(await client.post("/chat/completions", body=body(i), cast_to=bytes))
        return str(data["choices"][0]["message"]["content"])

    async def full(i: int) -> str:
        reply = await client.chat.completions.create(**body(i))
        return reply.choices[0].message.content or ""

    return Variant(full if create else post, client.close)


def ours(base_url: str, calls: int, http: str, cache_dir: str | None) -> Variant:
    cache = ResponseCache(Path(cache_dir) / f"{http}-{time.time_ns()}.sqlite") if cache_dir else None
    backend: Backend = with_middleware(OpenAICompatible("scripted", base_url=base_url, http=http),
                                       concurrency=ConcurrencyLimit(calls),
                                       rate=RateLimit(requests_per_minute=1e6, tokens_per_minute=1e9), cache=cache)

    async def one(i: int) -> str:
        b = body(i)
        [completion] = await backend.chat(b["messages"], max_tokens=64, temperature=0.0, seed=i)
        return completion.text

    async def close() -> None:
        await backend.aclose()
        if cache is not None:
            cache.close()

    return Variant(one, close)


def ratios(numer: list[float], denom: list[float]) -> dict[str, float]:
    per_repeat = [a / b for a, b in zip(numer, denom, strict=True)]
    return {"median_percent": round(100 * (statistics.median(per_repeat) - 1), 1),
            "min_percent": round(100 * (min(per_repeat) - 1), 1), "max_percent": round(100 * (max(per_repeat) - 1), 1)}


async def measure(base_url: str, args: argparse.Namespace, tmp: str) -> tuple[dict[str, list[float]],
                                                                                dict[str, list[float]]]:
    variants: dict[str, Variant] = {
        "bare aiohttp": bare_aiohttp(base_url),
        "agentkit aiohttp": ours(base_url, args.calls, "aiohttp", None),
        "agentkit aiohttp + cache": ours(base_url, args.calls, "aiohttp", tmp),
        "bare sdk": sdk_client(base_url, create=False),
        "agentkit sdk": ours(base_url, args.calls, "sdk", None),
        "sdk create": sdk_client(base_url, create=True),
    }
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    offset = 0
    try:
        for variant in variants.values():  # warm-up: imports, first connections, the cache's first pages
            await variant.waves(args.calls, 1, offset)
            offset += args.calls
        for _ in range(args.repeats):
            for name, variant in variants.items():
                seconds, cpu_s = await variant.waves(args.calls, args.waves, offset)
                offset += args.calls * args.waves  # every call new: the cache variant always misses
                wall[name].append(seconds)
                cpu[name].append(cpu_s / (args.calls * args.waves))
    finally:
        for variant in variants.values():
            await variant.close()
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=256)
    parser.add_argument("--waves", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--no-pin", action="store_true", help="do not pin the server and this process to cores")
    args = parser.parse_args()
    pin = not args.no_pin and len(os.sched_getaffinity(0)) >= 2
    with scripted_server(args.latency, cpu=1 if pin else None) as base_url, tempfile.TemporaryDirectory() as tmp:
        if pin:
            os.sched_setaffinity(0, {0})
        wall, cpu = asyncio.run(measure(base_url, args, tmp))
    overhead = {
        "aiohttp: agentkit (retry+limits) over bare": ratios(wall["agentkit aiohttp"], wall["bare aiohttp"]),
        "aiohttp: agentkit (retry+limits+cache) over bare": ratios(wall["agentkit aiohttp + cache"],
                                                                   wall["bare aiohttp"]),
        "sdk: agentkit (retry+limits) over bare": ratios(wall["agentkit sdk"], wall["bare sdk"]),
    }
    cpu_overhead = {
        "aiohttp: agentkit (retry+limits) over bare": ratios(cpu["agentkit aiohttp"], cpu["bare aiohttp"]),
        "sdk: agentkit (retry+limits) over bare": ratios(cpu["agentkit sdk"], cpu["bare sdk"]),
    }
    transport = {"sdk create over bare aiohttp": ratios(wall["sdk create"], wall["bare aiohttp"])}
    main_figures = [overhead["aiohttp: agentkit (retry+limits) over bare"]["median_percent"],
                    overhead["sdk: agentkit (retry+limits) over bare"]["median_percent"]]
    report = {
        "benchmark": "middleware overhead, same transport, warm clients", "calls": args.calls, "waves": args.waves,
        "latency_s": args.latency, "repeats": args.repeats, "pinned": pin, "seconds": wall,
        "median_s": {k: round(statistics.median(v), 4) for k, v in wall.items()},
        "client_cpu_us_per_call": {k: round(1e6 * statistics.median(v), 1) for k, v in cpu.items()},
        "overhead": overhead, "cpu_overhead": cpu_overhead, "transport_comparison": transport,
        "target": "<= +5% wall time over the bare client on the same transport (retry+limits stack)",
        "met": all(m <= 5.0 for m in main_figures), "openai_sdk": openai.__version__,
        "aiohttp": aiohttp.__version__,
    }
    write_result("overhead", report)
    print(f"{args.waves} waves of {args.calls} concurrent calls per repeat, server latency {args.latency * 1000:.0f} ms, "
          f"{args.repeats} repeats, {'pinned' if pin else 'not pinned'}")
    print(f"  {'variant':<28}{'median s':>10}{'CPU us/call':>13}")
    for name, v in report["median_s"].items():
        print(f"  {name:<28}{v:>10.3f}{report['client_cpu_us_per_call'][name]:>13.1f}")
    for label, table in (("wall", overhead), ("client CPU", cpu_overhead), ("transport, not an overhead", transport)):
        for name, s in table.items():
            print(f"  [{label}] {name:<50} {s['median_percent']:+6.1f}% "
                  f"(repeats {s['min_percent']:+.1f} to {s['max_percent']:+.1f})")
    print(f"target <= +5% wall time on the same transport: {'met' if report['met'] else 'NOT met'}")


if __name__ == "__main__":
    main()
