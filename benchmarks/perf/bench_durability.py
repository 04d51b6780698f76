"""What durability costs in the embedded store: usage events per second and the time to create a store.

    python benchmarks/perf/bench_durability.py [--events 20000] [--repeats 3]

Usage events: ``record_usage`` on 5 behaviors of an embedded (Qdrant Edge) store, ``--events`` calls then one
flush, in ``--repeats`` fresh stores; every acknowledged event is journaled (``usage.journal``) before it returns.
Creation: opening a store in a fresh directory (built beside its path, flushed, closed, renamed in, reopened),
and reopening it, median of 10. The baseline is the same script on the code before a change, run alternately in
one session (put the other tree first on ``PYTHONPATH``): the figures are only comparable within one session.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from agentkit.memory import Behavior, MiniLMEmbedder, QdrantBehaviorStore

from _common import write_result


async def usage_rate(events: int, embedder: MiniLMEmbedder) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        async with QdrantBehaviorStore(path=Path(tmp) / "s", embedder=embedder) as store:
            names = [f"behavior_rule_{i}" for i in range(5)]
            for name in names:
                await store.add(Behavior(name=name, instruction=f"rule {name} number"), dedup=False)
            started = time.perf_counter()
            for i in range(events):
                await store.record_usage(names[i % 5], "cited")
            await store.flush_usage()
            rate = events / (time.perf_counter() - started)
            assert (await store.get(names[0])).stats.cited == events // 5
            return rate


async def creation(embedder: MiniLMEmbedder) -> tuple[float, float]:
    create, reopen = [], []
    for _ in range(10):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "s"
            started = time.perf_counter()
            store = await QdrantBehaviorStore(path=path, embedder=embedder).open()
            create.append(time.perf_counter() - started)
            await store.close()
            started = time.perf_counter()
            store = await QdrantBehaviorStore(path=path, embedder=embedder).open()
            reopen.append(time.perf_counter() - started)
            await store.close()
    return statistics.median(create) * 1000, statistics.median(reopen) * 1000


async def main(args: argparse.Namespace) -> dict[str, object]:
    embedder = MiniLMEmbedder()
    rates = [await usage_rate(args.events, embedder) for _ in range(args.repeats)]
    create_ms, reopen_ms = await creation(embedder)
    return {"usage_events_per_s": [round(r) for r in rates], "create_ms": round(create_ms, 1),
            "reopen_ms": round(reopen_ms, 1)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    report = asyncio.run(main(parser.parse_args()))
    print(json.dumps(report))
    print(f"written {write_result('durability', report)}")
