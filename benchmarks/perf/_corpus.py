"""Real embeddings for the retrieval benchmarks: sentences cut from the datasets that ship in ``benchmarks/data``
(problems and solutions of GSM8K, MATH, AIME, AMC), embedded by the project's own default embedder.

    python benchmarks/perf/_corpus.py [--n 100000] [--queries 200]   # build (or check) the cache

``real_vectors(n, queries)`` returns ``(vectors, query_vectors, texts, query_texts)``: the first ``n`` corpus
sentences and ``queries`` held-out sentences (never in the corpus), as float32 unit rows. The corpus is every
distinct sentence of 12-400 characters in a fixed order (files sorted, rows in file order, fields sorted), put
in a seeded random order; the queries are every 500th sentence of that order, so they come from the same
distribution and are not in the indexed set. Embedding ~100k sentences takes ~10 minutes on 2 cores, so the
vectors are cached in ``benchmarks/perf/.cache/`` (git-ignored), keyed by the embedder's name and a hash of
the sentences; reruns load them in a second.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data"
CACHE = Path(__file__).parent / ".cache"
QUERY_STRIDE = 500
_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")


def sentences() -> tuple[list[str], list[str]]:
    """``(corpus, held_out)``: every distinct sentence in the shipped datasets, in a seeded random order, with
    every ``QUERY_STRIDE``-th one held out for queries."""
    seen: dict[str, None] = {}
    for path in sorted(DATA.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").split("\n"):
            if not line.strip():
                continue
            row = json.loads(line)
            for key in sorted(row):
                value = row[key]
                if isinstance(value, str) and len(value) > 40:
                    for piece in _SPLIT.split(value):
                        piece = piece.strip()
                        if 12 <= len(piece) <= 400:
                            seen.setdefault(piece, None)
    order = list(seen)
    np.random.default_rng(20261202).shuffle(order)  # type: ignore[arg-type]
    held = order[::QUERY_STRIDE]
    corpus = [s for i, s in enumerate(order) if i % QUERY_STRIDE]
    return corpus, held


def _embed(texts: list[str]) -> np.ndarray:
    from agentkit.memory import MiniLMEmbedder

    embedder = MiniLMEmbedder(batch_size=64)
    out: list[list[float]] = []
    started = time.perf_counter()

    async def run() -> None:
        for lo in range(0, len(texts), 2048):
            out.extend(await embedder.embed(texts[lo:lo + 2048]))
            rate = len(out) / (time.perf_counter() - started)
            print(f"embedded {len(out)}/{len(texts)} ({rate:.0f}/s)", file=sys.stderr, flush=True)

    asyncio.run(run())
    embedder.close()
    return np.asarray(out, dtype=np.float32)


def _cached(texts: list[str], tag: str) -> np.ndarray:
    from agentkit.memory import MiniLMEmbedder

    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"{MiniLMEmbedder.name}-{tag}-{len(texts)}-{digest}.npy"
    if path.exists():
        return np.load(path)
    vectors = _embed(texts)
    CACHE.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(path)
    return vectors


def real_vectors(n: int, queries: int) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    corpus, held = sentences()
    if n > len(corpus) or queries > len(held):
        raise SystemExit(f"the shipped datasets give {len(corpus)} corpus and {len(held)} query sentences; "
                         f"asked for {n} and {queries}")
    # The cache holds the largest corpus asked for; smaller sizes are its prefixes (the same order).
    full = max(n, 100_000) if len(corpus) >= 100_000 else len(corpus)
    vectors = _cached(corpus[:full], "corpus")[:n]
    query_vectors = _cached(held[:queries], "queries")
    return vectors, query_vectors, corpus[:n], held[:queries]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    vectors, query_vectors, _, _ = real_vectors(args.n, args.queries)
    print(f"{vectors.shape[0]} corpus and {query_vectors.shape[0]} query vectors, {vectors.shape[1]}-d, cached in {CACHE}")


if __name__ == "__main__":
    main()
