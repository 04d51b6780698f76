"""Sweep runner throughput and memory against the scripted server (its own process, 100 ms latency).

    python benchmarks/perf/bench_sweep.py [--items 2000] [--concurrency 64] [--repeats 5] [--memory-items 2000 20000]

Throughput: ``--items`` long-CoT cells at ``--concurrency``, every cell graded and written to SQLite; the
ideal is ``concurrency / latency`` cells per second, the target at least 90% of it (median of ``--repeats``
runs, each in a fresh process, wall time of the whole ``run_sweep`` call: setup, ramp-up and the last cells
included). Two figures put it in context, measured in the same run: the *steady* rate (first to last finished
cell) and a *bare client* baseline, the same number of requests sent by plain aiohttp with a semaphore and
nothing else, which is the most this machine's two cores give with the server on one of them. Sweep and bare
runs alternate (each repeat is a pair, so both see the same machine); the sweep-over-bare ratio is reported as
the median of the per-pair ratios with their min-max, target at least 97% (issue 18).
Memory: the runner's peak RSS (each run in a fresh child process) at each ``--memory-items`` size; cells come
from a lazy iterator, so the peak should not grow with the number of cells beyond the problems themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import pin_to, scripted_server, write_items, write_result


async def child(url: str, items: int, concurrency: int, latency: float, http: str = "aiohttp") -> dict[str, float]:
    from agentkit.sweep import SweepSpec, run_sweep

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "items.jsonl"
        write_items(data, items)
        spec = SweepSpec.model_validate({
            "name": "bench", "concurrency": concurrency, "budgets": [1024], "seeds": [0],
            "datasets": [{"name": str(data)}], "methods": [{"name": "long-cot"}],
            "backends": [{"spec": f"openai-compatible:{url}?model=scripted&retries=1&http={http}", "concurrency": concurrency}]})
        finished: list[float] = []
        started = time.perf_counter()
        summary = await run_sweep(spec, Path(tmp) / "r.sqlite", on_cell=lambda row: finished.append(time.perf_counter()))
        wall = time.perf_counter() - started
    ideal = items * latency / concurrency
    steady = (finished[-1] - finished[0]) / (len(finished) - 1) if len(finished) > 1 else wall
    return {"items": items, "ran": summary.ran, "failed": summary.failed, "wall_s": wall, "ideal_s": ideal,
            "throughput_vs_ideal": ideal / wall, "cells_per_s": items / wall,
            "steady_vs_ideal": (latency / concurrency) / steady,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


async def bare(url: str, items: int, concurrency: int, latency: float, http: str = "") -> dict[str, float]:
    """The same requests from plain aiohttp: no ledger, no grading, no database (the machine's ceiling)."""
    import aiohttp

    gate = asyncio.Semaphore(concurrency)

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        async with gate:
            body = {"model": "scripted", "messages": [{"role": "user", "content": f"What is {i} + {i}?"}],
                    "max_tokens": 1024, "temperature": 0.0, "seed": 0}
            async with session.post(f"{url}/chat/completions", json=body) as reply:
                json.loads(await reply.read())

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(one(session, i) for i in range(items)))
        wall = time.perf_counter() - started
    ideal = items * latency / concurrency
    return {"items": items, "wall_s": wall, "ideal_s": ideal, "throughput_vs_ideal": ideal / wall}


def run_child(url: str, items: int, concurrency: int, latency: float, *, bare: bool = False,
              cpu: int | None = None, http: str = "aiohttp") -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", str(items), "--url", url, "--concurrency",
                          str(concurrency), "--latency", str(latency), "--http", http, *(["--bare"] if bare else [])],
                         capture_output=True, text=True, check=True, preexec_fn=pin_to(cpu))
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    return sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory-items", type=int, nargs="*", default=[2000, 20000])
    parser.add_argument("--http", default="aiohttp", choices=["aiohttp", "sdk"],
                        help="OpenAICompatible's transport for the sweep (the bare baseline is always aiohttp)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and runner to separate cores")
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--url", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        run = bare if args.bare else child
        print(json.dumps(asyncio.run(run(args.url, args.child, args.concurrency, args.latency, args.http))))
        return
    # Headline: the server pinned to one core and the runner to the other (as when the server is another
    # machine). Also measured unpinned, where both processes float over the same two cores.
    cpus = sorted(os.sched_getaffinity(0))
    pinned = len(cpus) >= 2 and not args.no_pin
    modes = [("pinned", cpus[1], cpus[0]), ("unpinned", None, None)] if pinned else [("unpinned", None, None)]
    results: dict[str, dict[str, object]] = {}
    for mode, server_cpu, client_cpu in modes:
        with scripted_server(args.latency, cpu=server_cpu) as url:
            run_child(url, 64, args.concurrency, args.latency, cpu=client_cpu)  # warm caches (imports, bytecode)
            runs, bares = [], []
            for _ in range(args.repeats):  # interleaved, so both see the same machine
                runs.append(run_child(url, args.items, args.concurrency, args.latency, cpu=client_cpu,
                                      http=args.http))
                bares.append(run_child(url, args.items, args.concurrency, args.latency, bare=True, cpu=client_cpu))
            if mode == modes[0][0]:
                memory = [run_child(url, n, args.concurrency, args.latency, cpu=client_cpu, http=args.http)
                          for n in args.memory_items]
        throughput, baseline = median_run(runs), median_run(bares)
        paired = [r["throughput_vs_ideal"] / b["throughput_vs_ideal"] for r, b in zip(runs, bares, strict=True)]
        of_ideal = [r["throughput_vs_ideal"] for r in runs]
        results[mode] = {
            "throughput": throughput, "bare_client": baseline, "runs": runs, "bare_runs": bares,
            "of_ideal": {"median": round(statistics.median(of_ideal), 4), "min": round(min(of_ideal), 4),
                         "max": round(max(of_ideal), 4)},
            "over_bare_client": {"median": round(statistics.median(paired), 4), "min": round(min(paired), 4),
                                 "max": round(max(paired), 4)},
            "met": {"of_ideal >= 0.90": statistics.median(of_ideal) >= 0.90,
                    "over_bare_client >= 0.97": statistics.median(paired) >= 0.97},
        }
        print(f"[{mode}, http={args.http}] {args.items} cells at concurrency {args.concurrency}, {args.latency * 1000:.0f} ms "
              f"latency (median of {args.repeats}): {throughput['wall_s']:.2f} s vs ideal "
              f"{throughput['ideal_s']:.2f} s -> {throughput['throughput_vs_ideal']:.1%} of ideal (steady "
              f"{throughput['steady_vs_ideal']:.1%}; runs "
              f"{', '.join(format(r['throughput_vs_ideal'], '.1%') for r in runs)})")
        print(f"[{mode}] bare aiohttp client, same requests: {baseline['wall_s']:.2f} s -> "
              f"{baseline['throughput_vs_ideal']:.1%} of ideal; the sweep reaches "
              f"{statistics.median(paired):.1%} of the bare client (median of paired repeats; "
              f"{min(paired):.1%} to {max(paired):.1%})")
    report = {**results, "http": args.http, "memory": memory,
              "target": "throughput_vs_ideal >= 0.90 and >= 0.97 of the bare client (pinned: the headline)"}
    for m in memory:
        print(f"{m['items']:>6} cells: peak RSS {m['peak_rss_mb']:.0f} MB, {m['wall_s']:.1f} s")
    print(f"written {write_result('sweep' if args.http == 'aiohttp' else f'sweep_{args.http}', report)}")


if __name__ == "__main__":
    main()
