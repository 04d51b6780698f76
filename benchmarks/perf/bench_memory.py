"""Behavior-store search latency at 1k, 10k and 100k behaviors in the embedded store (Qdrant Edge), side by
side with exact brute-force search over the same vectors (numpy, and FAISS IndexFlatIP when installed), plus
the default embedder's throughput and resident memory.

    python benchmarks/perf/bench_memory.py [--sizes 1000 10000 100000] [--queries 200]

The store is filled through its own engine adapter with behavior payloads and random unit vectors
(embedding 100k texts would take ~10 minutes on 2 cores and says nothing about search), and queried with
the store's own filter (latest version, active). Edge is first measured without ``optimize()``: without an HNSW build
it searches exactly, which is what a test-sized handbook uses, so its top-10 must equal brute force. With
``--optimize`` it then builds HNSW (``QdrantBehaviorStore.optimize()``) and reports latency and recall@10
(random Gaussian vectors are HNSW's worst case; real embeddings cluster). Reported: p50/p95 per query, top-10 agreement, latency ratio Edge / numpy.
The embedder figures come from a child process, so its resident memory is the embedder's alone.
Writes benchmarks/perf/results/memory.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from agentkit.memory import Behavior
from agentkit.memory._engines import EdgeEngine
from agentkit.memory.store import _LIVE, QdrantBehaviorStore, _point_id

from _common import write_result

DIM = 384
STORE_EF = QdrantBehaviorStore().hnsw_ef  # the store's own search breadth


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


async def search_bench(n: int, queries: np.ndarray, rng: np.random.Generator, optimize: bool) -> dict[str, object]:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with tempfile.TemporaryDirectory() as tmp:
        engine = await EdgeEngine.open(Path(tmp) / "edge", DIM)
        started = time.perf_counter()
        for lo in range(0, n, 1000):
            batch = []
            for i in range(lo, min(n, lo + 1000)):
                b = Behavior(name=f"behavior_synthetic_{i}", instruction=f"synthetic behavior number {i}",
                             topics=(f"topic{i % 7}",))
                batch.append((_point_id(b.name, 1), vectors[i].tolist(), QdrantBehaviorStore._payload(b, True)))
            await engine.upsert(batch)
        upsert_s = time.perf_counter() - started
        where = _LIVE  # exactly what QdrantBehaviorStore.search filters on
        edge_ms, numpy_ms, faiss_ms, agree_numpy, agree_faiss = [], [], [], 0, 0
        try:
            import faiss

            index = faiss.IndexFlatIP(DIM)
            index.add(vectors)
        except ImportError:
            index = None
        for q in queries:
            t = time.perf_counter()
            hits = await engine.query(q.tolist(), where, None, 10, None)
            edge_ms.append(1000 * (time.perf_counter() - t))
            edge_top = {int(h.payload["name"].rsplit("_", 1)[1]) for h in hits}
            t = time.perf_counter()
            scores = vectors @ q
            top = np.argpartition(-scores, 10)[:10]
            numpy_ms.append(1000 * (time.perf_counter() - t))
            agree_numpy += edge_top == set(top.tolist())
            if index is not None:
                t = time.perf_counter()
                _, ids = index.search(q[None, :], 10)
                faiss_ms.append(1000 * (time.perf_counter() - t))
                agree_faiss += edge_top == set(ids[0].tolist())
        hnsw: dict[str, object] = {}
        if optimize:
            started = time.perf_counter()
            await engine.optimize()
            build_s = time.perf_counter() - started
            hnsw_ms, agree_hnsw = [], 0
            for q in queries:
                t = time.perf_counter()
                hits = await engine.query(q.tolist(), where, None, 10, None, STORE_EF)
                hnsw_ms.append(1000 * (time.perf_counter() - t))
                scores = vectors @ q
                agree_hnsw += len({int(h.payload["name"].rsplit("_", 1)[1]) for h in hits}
                                  & set(np.argpartition(-scores, 10)[:10].tolist()))
            hnsw = {"optimize_s": round(build_s, 1), "hnsw_ef": STORE_EF, "hnsw_p50_ms": round(percentile(hnsw_ms, 50), 3),
                    "hnsw_p95_ms": round(percentile(hnsw_ms, 95), 3),
                    "hnsw_recall_at_10": round(agree_hnsw / (10 * len(queries)), 3)}
        await engine.close()
    row: dict[str, object] = {
        "upsert_s": round(upsert_s, 2),
        "edge_p50_ms": round(percentile(edge_ms, 50), 3), "edge_p95_ms": round(percentile(edge_ms, 95), 3),
        "numpy_p50_ms": round(percentile(numpy_ms, 50), 3), "numpy_p95_ms": round(percentile(numpy_ms, 95), 3),
        "top10_same_as_numpy": f"{agree_numpy}/{len(queries)}",
        "ratio_edge_over_numpy_p50": round(percentile(edge_ms, 50) / percentile(numpy_ms, 50), 2),
        **hnsw,
    }
    if faiss_ms:
        row.update({"faiss_p50_ms": round(percentile(faiss_ms, 50), 3), "faiss_p95_ms": round(percentile(faiss_ms, 95), 3),
                    "top10_same_as_faiss": f"{agree_faiss}/{len(queries)}"})
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--optimize", action="store_true",
                        help="also build Edge's HNSW index and measure it (minutes at 100k on 2 cores)")
    parser.add_argument("--embedder-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.embedder_only:
        print(json.dumps(embedder_bench()))
        return
    child = subprocess.run([sys.executable, __file__, "--embedder-only"], capture_output=True, text=True, check=True)
    embed = json.loads(child.stdout.strip().splitlines()[-1])
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((args.queries, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    rows = {n: asyncio.run(search_bench(n, queries, rng, args.optimize)) for n in args.sizes}
    write_result("memory", {"benchmark": "behavior store search + default embedder", "dim": DIM,
                            "queries": args.queries, "search": rows, "embedder": embed})
    print(f"search top-10, {args.queries} queries, {DIM}-d random unit vectors, the store's filter (latest, active)")
    for n, r in rows.items():
        faiss_part = f"  faiss p50 {r.get('faiss_p50_ms', '-')} ms (same top-10 {r.get('top10_same_as_faiss', '-')})"
        print(f"  N={n:>6}: edge p50 {r['edge_p50_ms']} / p95 {r['edge_p95_ms']} ms  numpy p50 {r['numpy_p50_ms']} ms "
              f"(same top-10 {r['top10_same_as_numpy']}, edge/numpy {r['ratio_edge_over_numpy_p50']}x){faiss_part}")
        if "hnsw_p50_ms" in r:
            print(f"           after optimize() ({r['optimize_s']} s): HNSW (ef {r['hnsw_ef']}) p50 {r['hnsw_p50_ms']} / p95 "
                  f"{r['hnsw_p95_ms']} ms, recall@10 {r['hnsw_recall_at_10']}")
    print(f"embedder all-MiniLM-L6-v2: {embed['texts_per_s_batch32']} texts/s (batch 32), single query "
          f"{embed['single_query_p50_ms']} ms, load {embed['load_s']} s, peak RSS {embed['peak_rss_mb']} MB")


if __name__ == "__main__":
    main()
