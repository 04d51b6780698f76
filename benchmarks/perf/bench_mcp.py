"""Tool-call latency of `agentkit mcp` over stdio: search on a 1,000-behavior handbook, as an agent sees it.

    python benchmarks/perf/bench_mcp.py [--behaviors 1000] [--calls 200]

Builds an embedded handbook of ``--behaviors`` distinct behaviors (MiniLM embeddings), starts ``agentkit mcp``
on it the way an agent does (the official SDK's stdio client spawning the command), and times ``--calls``
``search_behaviors`` calls (k=8, varied queries) one after another from the client: p50, p90 and p99 of the
round trip (JSON-RPC over the pipes, the query's embedding, the vector search, the reply). The baseline, in the
same run: the same searches on the same store in-process (``QdrantBehaviorStore.search``), so the difference is
what the protocol and the process boundary add. Beside it: ``initialize_s`` (spawn to initialized: the server
loads the embedder before it answers), ``first_search_ms`` (the first search after that: no model load left in
it), and the characters of JSON per hit an agent's context receives, compact (the default) and with
``details=true``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from agentkit.memory import Behavior, MiniLMEmbedder, QdrantBehaviorStore

from _common import write_result

TOPICS = ["Algebra", "Geometry", "Number Theory", "Counting & Probability", "Precalculus"]
VERBS = ["check", "simplify", "factor", "bound", "draw", "list", "compare", "substitute", "count", "estimate"]
OBJECTS = ["units", "the equation", "each case", "the triangle", "remainders", "the sum", "a table", "the roots",
           "small cases", "the constraints"]


def behaviors(n: int) -> list[Behavior]:
    out = []
    for i in range(n):
        verb, obj = VERBS[i % len(VERBS)], OBJECTS[(i // len(VERBS)) % len(OBJECTS)]
        out.append(Behavior(name=f"behavior_{verb}_{i}", instruction=f"{verb.capitalize()} {obj} before step {i % 17}; "
                            f"this helps with problems of kind {i}.", topics=(TOPICS[i % len(TOPICS)],)))
    return out


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99), "mean_ms": round(1000 * statistics.mean(values), 2)}


async def run(n: int, calls: int) -> dict[str, Any]:
    queries = [f"how do I {VERBS[i % len(VERBS)]} {OBJECTS[i % len(OBJECTS)]} in problem {i}?" for i in range(calls)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hb"
        embedder = MiniLMEmbedder()
        async with QdrantBehaviorStore(path=path, embedder=embedder, max_active=n + 10) as store:
            started = time.perf_counter()
            for b in behaviors(n):
                await store.add(b, dedup=False)
            build_s = time.perf_counter() - started
            assert await store.count() == n
            local = []
            for q in queries:
                t = time.perf_counter()
                await store.search(q, 8)
                local.append(time.perf_counter() - t)
        server = StdioServerParameters(command=sys.executable, args=["-m", "agentkit", "mcp", "--store", str(path),
                                                                     "--read-only"], env=dict(os.environ))
        remote = []
        async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
            t = time.perf_counter()
            await session.initialize()
            initialize_s = time.perf_counter() - t
            t = time.perf_counter()
            first = await session.call_tool("search_behaviors", {"query": "warm up", "k": 8})
            first_ms = 1000 * (time.perf_counter() - t)
            detailed = await session.call_tool("search_behaviors", {"query": "warm up", "k": 8, "details": True})
            sizes = {name: round(sum(len(getattr(c, "text", "")) for c in r.content) / 8)
                     for name, r in (("compact", first), ("details", detailed))}
            for q in queries:
                t = time.perf_counter()
                result = await session.call_tool("search_behaviors", {"query": q, "k": 8})
                remote.append(time.perf_counter() - t)
                assert not result.isError
    return {"behaviors": n, "calls": calls, "build_s": round(build_s, 1), "mcp_stdio": percentiles(remote),
            "in_process": percentiles(local), "initialize_s": round(initialize_s, 2),
            "first_search_ms": round(first_ms, 1), "chars_per_hit": sizes}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--behaviors", type=int, default=1000)
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    report = asyncio.run(run(args.behaviors, args.calls))
    print(json.dumps(report, indent=2))
    write_result("mcp", report)


if __name__ == "__main__":
    main()
