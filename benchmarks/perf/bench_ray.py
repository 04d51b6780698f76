"""The Ray executor against the local one, and what losing a worker costs.

    python benchmarks/perf/bench_ray.py [--items 2000] [--repeats 3]

The upstream is the scripted server in its own process, 100 ms per call. ``--items`` long-CoT cells (one call
each, graded, written to SQLite) at the same total concurrency, 64: the local executor (64 cells in flight in
this process) against the Ray executor on a local cluster of a head (no CPU for workers) and two one-CPU nodes,
two workers with 32 cells in flight each (``ray.cluster_utils.Cluster``, object stores at 100 MB). Compared: the
whole ``run_sweep`` wall time (the workers' start included) and its throughput ratio, Ray over local (target at
least 0.90), median of ``--repeats`` alternating pairs with the min-max. On two cores the cluster's processes
share them with the driver and the server, so the ratio is a floor for a real cluster.

Worker loss: one more Ray run on a cluster with a spare node, whose first worker's node is removed abruptly once
a quarter of the cells are written: rows written (target: every cell, once), cells requeued, and the time from
the removal to the first requeue.
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

LATENCY, CONCURRENCY, STORE = 0.1, 64, 100 << 20


def spec_for(url: str, data: Path) -> Any:
    from agentkit.sweep import SweepSpec

    return SweepSpec.model_validate({
        "name": "bench-ray", "concurrency": CONCURRENCY, "budgets": [1024], "seeds": [0],
        "datasets": [{"name": str(data)}], "methods": [{"name": "long-cot"}],
        "backends": [{"spec": f"openai-compatible:{url}?model=scripted&retries=1", "concurrency": CONCURRENCY}]})


async def timed(spec: Any, db: Path, executor: Any = None, on_cell: Any = None) -> tuple[float, float, Any]:
    """(whole ``run_sweep`` wall, wall from the first cell handed out: the workers started, the grid recorded)."""
    from agentkit.sweep import run_sweep

    started = time.perf_counter()
    running: list[float] = []
    summary = await run_sweep(spec, db, executor=executor, on_cell=on_cell,
                              on_start=lambda cells, done: running.append(time.perf_counter()))
    ended = time.perf_counter()
    return ended - started, ended - running[0], summary


def cluster(nodes: int) -> Any:
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": STORE,
                                                      "include_dashboard": False})
    for _ in range(nodes):
        c.add_node(num_cpus=1, object_store_memory=STORE)
    c.wait_for_nodes()
    return c


def main() -> None:
    from agentkit.sweep.ray_executor import RayExecutor

    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    walls: dict[str, list[float]] = {"local": [], "ray": []}
    running: dict[str, list[float]] = {"local": [], "ray": []}
    with scripted_server(LATENCY) as url, tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "items.jsonl"
        write_items(data, args.items)
        spec = spec_for(url, data)
        two = cluster(2)
        try:
            for r in range(args.repeats):
                wall, run, summary = asyncio.run(timed(spec, Path(tmp) / f"local{r}.sqlite"))
                assert summary.ran == args.items and not summary.failed, summary
                walls["local"].append(wall)
                running["local"].append(run)
                executor = RayExecutor(two.address, workers=2, cells_per_worker=CONCURRENCY // 2)
                wall, run, summary = asyncio.run(timed(spec, Path(tmp) / f"ray{r}.sqlite", executor))
                assert summary.ran == args.items and not summary.failed, summary
                walls["ray"].append(wall)
                running["ray"].append(run)
        finally:
            two.shutdown()
        # Worker loss: three nodes, two workers; the first worker's node goes away a quarter of the way in.
        spare = cluster(3)
        nodes = list(spare.worker_nodes)
        executor = RayExecutor(spare.address, workers=2, cells_per_worker=CONCURRENCY // 2)
        removed: dict[str, float] = {}
        count = [0]

        def on_cell(row: dict[str, Any]) -> None:
            count[0] += 1
            if count[0] == args.items // 4 and not removed:
                target = next(n for n in nodes if n.node_id == executor.nodes[0]["node"])
                removed["at"] = time.monotonic()
                spare.remove_node(target, allow_graceful=False)

        try:
            wall, _, summary = asyncio.run(timed(spec, Path(tmp) / "loss.sqlite", executor, on_cell))
        finally:
            spare.shutdown()
        import sqlite3

        conn = sqlite3.connect(Path(tmp) / "loss.sqlite")
        keys = [k for (k,) in conn.execute("SELECT key FROM results")]
        failed = conn.execute("SELECT COUNT(*) FROM results WHERE status != 'ok'").fetchone()[0]
        conn.close()
    ratios = [lw / rw for lw, rw in zip(running["local"], running["ray"], strict=True)]
    whole = [lw / rw for lw, rw in zip(walls["local"], walls["ray"], strict=True)]
    report = {
        "items": args.items, "latency_s": LATENCY, "concurrency": CONCURRENCY, "repeats": args.repeats,
        "wall_s": {k: [round(w, 3) for w in v] for k, v in walls.items()},
        "running_s": {k: [round(w, 3) for w in v] for k, v in running.items()},
        "ray_over_local_throughput": {"median": round(statistics.median(ratios), 3), "min": round(min(ratios), 3),
                                      "max": round(max(ratios), 3)},
        "ray_over_local_with_start": {"median": round(statistics.median(whole), 3), "min": round(min(whole), 3),
                                      "max": round(max(whole), 3)},
        "worker_loss": {"cells": args.items, "rows": len(keys), "distinct_keys": len(set(keys)), "failed": failed,
                        "lost": args.items - len(set(keys)) + failed, "requeued": executor.requeued,
                        "seconds_to_first_requeue": round(executor.requeued_at[0] - removed["at"], 3)
                        if executor.requeued_at and removed else None, "wall_s": round(wall, 3)},
    }
    print(json.dumps(report, indent=2))
    write_result("ray", report)


if __name__ == "__main__":
    main()
