"""Sweep runner throughput and memory against the scripted server (its own process, 100 ms latency).

    python benchmarks/perf/bench_sweep.py [--items 2000] [--concurrency 64] [--memory-items 2000 20000]

Throughput: ``--items`` long-CoT cells at ``--concurrency``, every cell graded by math-verify and written to
SQLite; the ideal is ``concurrency / latency`` cells per second, the target at least 90% of it. Memory: the
runner's peak RSS (each run in a fresh child process) at each ``--memory-items`` size; cells come from a lazy
iterator, so the peak should not grow with the number of cells beyond the problems themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import scripted_server, write_result


def write_items(path: Path, n: int) -> None:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"item-{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n")


async def child(url: str, items: int, concurrency: int, latency: float) -> dict[str, float]:
    from agentkit.sweep import SweepSpec, run_sweep

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "items.jsonl"
        write_items(data, items)
        spec = SweepSpec.model_validate({
            "name": "bench", "concurrency": concurrency, "budgets": [1024], "seeds": [0],
            "datasets": [{"name": str(data)}], "methods": [{"name": "long-cot"}],
            "backends": [{"spec": f"openai-compatible:{url}?model=scripted&retries=1", "concurrency": concurrency}]})
        started = time.perf_counter()
        summary = await run_sweep(spec, Path(tmp) / "r.sqlite")
        wall = time.perf_counter() - started
    ideal = items * latency / concurrency
    return {"items": items, "ran": summary.ran, "failed": summary.failed, "wall_s": wall, "ideal_s": ideal,
            "throughput_vs_ideal": ideal / wall, "cells_per_s": items / wall,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(url: str, items: int, concurrency: int, latency: float) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", str(items), "--url", url, "--concurrency",
                          str(concurrency), "--latency", str(latency)], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--memory-items", type=int, nargs="*", default=[2000, 20000])
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--url", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(asyncio.run(child(args.url, args.child, args.concurrency, args.latency))))
        return
    with scripted_server(args.latency) as url:
        run_child(url, 64, args.concurrency, args.latency)  # warm caches (imports, pip's bytecode)
        throughput = run_child(url, args.items, args.concurrency, args.latency)
        memory = [run_child(url, n, args.concurrency, args.latency) for n in args.memory_items]
    report = {"throughput": throughput, "memory": memory, "target": "throughput_vs_ideal >= 0.90"}
    print(f"{args.items} cells at concurrency {args.concurrency}, {args.latency * 1000:.0f} ms latency: "
          f"{throughput['wall_s']:.2f} s vs ideal {throughput['ideal_s']:.2f} s -> "
          f"{throughput['throughput_vs_ideal']:.0%} of ideal")
    for m in memory:
        print(f"{m['items']:>6} cells: peak RSS {m['peak_rss_mb']:.0f} MB, {m['wall_s']:.1f} s")
    print(f"written {write_result('sweep', report)}")


if __name__ == "__main__":
    main()
