"""One backend over two replicas of different speed: does a sweep get the capacity of both?

    python benchmarks/perf/bench_replicas.py [--items 2000] [--repeats 3]

Two scripted servers, each in its own process: one answers after 50 ms, the other after 200 ms. One sweep of
``--items`` long-CoT cells (one call each, graded and written to SQLite) runs over both as one replicated backend
(``vllm:A,B?per_replica=16``: fewest requests in flight, at most 16 on each) at concurrency 32. Compared: the
sweep's throughput (cells per second, the whole ``run_sweep`` wall time) against the sum of the two replicas'
capacity, 16 / 0.05 + 16 / 0.2 = 400 calls per second (target at least 0.90), median of ``--repeats`` runs with
their min-max; and the share of calls each replica served (its capacity share would be 0.80 and 0.20).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import scripted_server, write_items, write_result

CAP, FAST, SLOW = 16, 0.05, 0.2


async def one(fast: str, slow: str, items: int) -> dict[str, Any]:
    from agentkit.backends import backend_from_spec
    from agentkit.sweep import SweepSpec, run_sweep

    spec_text = f"openai-compatible:{fast},{slow}?model=scripted&retries=1&per_replica={CAP}"
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "items.jsonl"
        write_items(data, items)
        spec = SweepSpec.model_validate({
            "name": "bench-replicas", "concurrency": 2 * CAP, "budgets": [1024], "seeds": [0],
            "datasets": [{"name": str(data)}], "methods": [{"name": "long-cot"}],
            "backends": [{"spec": spec_text, "concurrency": 2 * CAP}]})
        backend = backend_from_spec(spec_text)
        started = time.perf_counter()
        summary = await run_sweep(spec, Path(tmp) / "r.sqlite", backends={spec.backends[0].key: backend})
        wall = time.perf_counter() - started
        stats = backend.unwrap().stats()  # type: ignore[attr-defined]
        await backend.aclose()
    capacity = CAP / FAST + CAP / SLOW
    served = {"fast": stats[fast]["served"], "slow": stats[slow]["served"]}
    return {"ran": summary.ran, "failed": summary.failed, "wall_s": round(wall, 3),
            "cells_per_s": round(items / wall, 1), "vs_capacity": round(items / wall / capacity, 4),
            "share": {k: round(v / max(1, sum(served.values())), 3) for k, v in served.items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    runs = []
    with scripted_server(FAST) as fast, scripted_server(SLOW) as slow:
        for _ in range(args.repeats):
            runs.append(asyncio.run(one(fast, slow, args.items)))
    ratios = [r["vs_capacity"] for r in runs]
    report = {"items": args.items, "per_replica": CAP, "latency_s": {"fast": FAST, "slow": SLOW},
              "capacity_per_s": CAP / FAST + CAP / SLOW, "runs": runs,
              "vs_capacity": {"median": round(statistics.median(ratios), 3), "min": round(min(ratios), 3),
                              "max": round(max(ratios), 3)},
              "share_fast": round(statistics.median(r["share"]["fast"] for r in runs), 3)}
    print(json.dumps(report, indent=2))
    write_result("replicas", report)


if __name__ == "__main__":
    main()
