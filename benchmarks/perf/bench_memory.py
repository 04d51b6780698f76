"""Behavior-store retrieval at 1k, 10k and 100k behaviors, on real embeddings, side by side with exact search
(numpy) and FAISS's HNSW in the same run.

    python benchmarks/perf/bench_memory.py [--sizes 1000 10000 100000] [--queries 200] [--random]

Vectors: the project's own default embedder (MiniLM, 384-d) over sentences cut from the datasets that ship in
``benchmarks/data`` (``_corpus.py``; embedded once, ~10 minutes, then cached); queries are 200 held-out
sentences of the same corpus. ``--random`` adds the old worst case, random Gaussian unit vectors (no
structure for HNSW to use), as a secondary table.

For each size, the same vectors and queries go to:

- **numpy exact**: ``vectors @ q`` and ``argpartition``: the ground truth for recall@10 and the latency floor
  of brute force;
- **FAISS HNSW** (``IndexHNSWFlat``, M 32, efConstruction 200, efSearch 48; if faiss is installed): a tuned
  in-memory HNSW library, no filter, no payload;
- **the store** (``QdrantBehaviorStore``, embedded Qdrant Edge, its default settings): what a caller of
  ``store.search_vector`` gets (the store's filter, payloads turned into ``Behavior`` objects; the query's
  embedding is not timed). Filled with behavior payloads through the engine adapter (``add`` would embed and
  dedup each one). Measured first as filled (below ``EXACT_BELOW`` vectors nothing is indexed: exact search),
  then while ``store.optimize()`` builds the index in its child process (searches keep going: their latency
  during the build), then with the index.

The default embedder's throughput, single-query latency and resident memory are measured in a child process.
Reported per engine: p50/p95 latency, recall@10 against numpy, build time, memory (resident-set growth of this
process while the engine was built and loaded; for the store also its size on disk, blocks actually used).
Writes benchmarks/perf/results/memory.json (``--out`` to write elsewhere).
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
from typing import Any

import numpy as np

from agentkit.memory import Behavior, QdrantBehaviorStore
from agentkit.memory.store import _LIVE, _point_id

try:
    from agentkit.memory._engines import EXACT_BELOW, SEARCH_EF
except ImportError:  # an older agentkit (the "before" figures): no exact line, ef from the store
    EXACT_BELOW, SEARCH_EF = 5_000, None

from _common import write_result

DIM = 384
K = 10


class NoEmbedder:
    """The store's embedder slot: the benchmark passes vectors, so nothing is ever embedded."""

    name = "all-MiniLM-L6-v2"
    dim = DIM

    async def embed(self, texts: Any) -> list[list[float]]:
        raise AssertionError("the benchmark searches by vector")


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file()) / 2**20


def stats(latencies: list[float], found: list[set[int]] | None, truth: list[set[int]]) -> dict[str, Any]:
    out: dict[str, Any] = {"p50_ms": round(float(np.percentile(latencies, 50)), 3),
                           "p95_ms": round(float(np.percentile(latencies, 95)), 3), "searches": len(latencies)}
    if found is not None:
        out["recall_at_10"] = round(sum(len(f & t) for f, t in zip(found, truth, strict=False)) / (K * len(found)), 4)
        out["same_top10"] = f"{sum(f == t for f, t in zip(found, truth, strict=False))}/{len(found)}"
    return out


def numpy_exact(vectors: np.ndarray, queries: np.ndarray) -> tuple[dict[str, Any], list[set[int]]]:
    latencies, truth = [], []
    for q in queries:
        t = time.perf_counter()
        top = np.argpartition(-(vectors @ q), K)[:K]
        latencies.append(1000 * (time.perf_counter() - t))
        truth.append(set(top.tolist()))
    return stats(latencies, None, truth), truth


def faiss_hnsw(vectors: np.ndarray, queries: np.ndarray, truth: list[set[int]]) -> dict[str, Any] | None:
    try:
        import faiss
    except ImportError:
        return None
    faiss.omp_set_num_threads(1)  # one query at a time, like the store's searches
    before = rss_mb()
    started = time.perf_counter()
    index = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 200
    index.add(vectors)
    build_s = time.perf_counter() - started
    index.hnsw.efSearch = 48
    latencies, found = [], []
    for q in queries:
        t = time.perf_counter()
        _, ids = index.search(q[None, :], K)
        latencies.append(1000 * (time.perf_counter() - t))
        found.append(set(ids[0].tolist()))
    return {**stats(latencies, found, truth), "build_s": round(build_s, 1), "rss_growth_mb": round(rss_mb() - before),
            "settings": "IndexHNSWFlat M 32, efConstruction 200, efSearch 48"}


async def store_bench(vectors: np.ndarray, queries: np.ndarray, truth: list[set[int]], texts: list[str],
                      build: bool) -> dict[str, Any]:
    n = len(vectors)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "handbook"
        before = rss_mb()
        new = hasattr(QdrantBehaviorStore, "search_vector")
        store = QdrantBehaviorStore(path, embedder=NoEmbedder(), **({"exact_below": EXACT_BELOW} if new else {}))
        engine = await store._e()

        def unindexed() -> int | None:
            return engine.unindexed() if hasattr(engine, "unindexed") else None

        async def search_vector(vector: list[float]) -> list[Any]:
            if new:
                return await store.search_vector(vector, K)
            # What an older store's search() did after embedding the query.
            records = await engine.query(vector, _LIVE, None, K, None, store.hnsw_ef)
            return [store._behavior(r) for r in records]

        started = time.perf_counter()
        for lo in range(0, n, 1000):
            batch = []
            for i in range(lo, min(n, lo + 1000)):
                b = Behavior(name=f"behavior_b{i}", instruction=texts[i], topics=(f"topic{i % 7}",))
                batch.append((_point_id(b.name, 1), vectors[i].tolist(), QdrantBehaviorStore._payload(b, True)))
            await engine.upsert(batch)
        fill_s = time.perf_counter() - started

        async def search(q: np.ndarray) -> tuple[float, set[int]]:
            t = time.perf_counter()
            hits = await search_vector(q.tolist())
            names = [getattr(h, "behavior", h).name for h in hits]
            return 1000 * (time.perf_counter() - t), {int(name.removeprefix("behavior_b")) for name in names}

        async def run_all() -> dict[str, Any]:
            latencies, found = [], []
            for q in queries:
                ms, ids = await search(q)
                latencies.append(ms)
                found.append(ids)
            return stats(latencies, found, truth)

        row: dict[str, Any] = {"fill_s": round(fill_s, 1), "as_filled": {**await run_all(), "unindexed": unindexed()}}
        if build and n >= EXACT_BELOW:
            started = time.perf_counter()
            task = asyncio.create_task(store.optimize())
            during: list[float] = []
            while not task.done():  # searches while the child process builds the index
                ms, _ = await search(queries[len(during) % len(queries)])
                during.append(ms)
                await asyncio.sleep(0.01)
            await task
            row["build"] = {"build_s": round(time.perf_counter() - started, 1),
                            "searches_during_build": stats(during, None, truth)}
            row["indexed"] = {**await run_all(), "unindexed": unindexed(), "hnsw_ef": SEARCH_EF or store.hnsw_ef}
        row["rss_growth_mb"] = round(rss_mb() - before)
        row["disk_mb"] = round(disk_mb(path))
        await store.close()
    return row


def embedder_bench() -> dict[str, float]:
    """Runs in a child process: load, then embed 512 handbook-like sentences (batch 32) and 50 single queries."""
    from agentkit.memory import MiniLMEmbedder

    texts = [f"behavior number {i}: when the problem mentions {w}, first {v} every quantity before combining them"
             for i, (w, v) in enumerate([("rates", "normalise"), ("percentages", "convert"), ("units", "rewrite"),
                                         ("angles", "label")] * 128)]
    embedder = MiniLMEmbedder()

    async def run() -> dict[str, float]:
        started = time.perf_counter()
        await embedder.embed(["warm up"])
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        await embedder.embed(texts)
        batch_rate = len(texts) / (time.perf_counter() - started)
        singles = []
        for t in texts[:50]:
            s = time.perf_counter()
            await embedder.embed([t])
            singles.append(1000 * (time.perf_counter() - s))
        return {"load_s": round(load_s, 2), "texts_per_s_batch32": round(batch_rate, 1),
                "single_query_p50_ms": round(statistics.median(singles), 1),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}

    return asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--random", action="store_true", help="also the random-vector worst case")
    ap.add_argument("--no-build", action="store_true", help="skip the index builds (minutes at 100k)")
    ap.add_argument("--out", default="memory")
    ap.add_argument("--embedder-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.embedder_only:
        print(json.dumps(embedder_bench()))
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from _corpus import real_vectors

    report: dict[str, Any] = {"benchmark": __doc__.splitlines()[0], "dim": DIM, "queries": args.queries,
                              "exact_below": EXACT_BELOW, "hnsw_ef": SEARCH_EF, "real": {}, "random": {}}
    kinds = ["real", "random"] if args.random else ["real"]
    for kind in kinds:
        for n in args.sizes:
            vectors, queries, texts, _ = real_vectors(n, args.queries)
            if kind == "random":
                rng = np.random.default_rng(n)
                vectors = rng.standard_normal(vectors.shape).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                queries = rng.standard_normal(queries.shape).astype(np.float32)
                queries /= np.linalg.norm(queries, axis=1, keepdims=True)
            exact, truth = numpy_exact(vectors, queries)
            row = {"numpy_exact": exact, "faiss_hnsw": faiss_hnsw(vectors, queries, truth),
                   "store": asyncio.run(store_bench(vectors, queries, truth, texts, not args.no_build))}
            report[kind][str(n)] = row
            print(f"[{kind} {n}] {json.dumps(row)}", flush=True)
    child = subprocess.run([sys.executable, __file__, "--embedder-only"], capture_output=True, text=True, check=True)
    report["embedder"] = json.loads(child.stdout.strip().splitlines()[-1])  # its own process: its own RSS
    write_result(args.out, report)
    print("\nsearch top-10, p50 ms (recall@10)")
    for kind in kinds:
        for n, row in report[kind].items():
            s = row["store"]
            f = row["faiss_hnsw"] or {}
            idx = s.get("indexed", {})
            during = s.get("build", {}).get("searches_during_build", {})
            print(f"  {kind:6} {n:>6}: numpy {row['numpy_exact']['p50_ms']} | faiss {f.get('p50_ms', '-')} "
                  f"({f.get('recall_at_10', '-')}) | store as filled {s['as_filled']['p50_ms']} "
                  f"({s['as_filled']['recall_at_10']}) | during build {during.get('p50_ms', '-')} | indexed "
                  f"{idx.get('p50_ms', '-')} ({idx.get('recall_at_10', '-')}), build {s.get('build', {}).get('build_s', '-')} s")
    e = report["embedder"]
    print(f"embedder all-MiniLM-L6-v2: {e['texts_per_s_batch32']} texts/s (batch 32), single query "
          f"{e['single_query_p50_ms']} ms, load {e['load_s']} s, peak RSS {e['peak_rss_mb']} MB")


if __name__ == "__main__":
    main()
