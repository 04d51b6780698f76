"""One small adapter over the two real Qdrant engines the behavior store runs on.

- ``EdgeEngine``: Qdrant Edge (``qdrant-edge-py``), Qdrant's Rust shard engine in-process (HNSW, payload
  indexes, WAL persistence). Its API is synchronous, so every call runs in a worker thread. One process owns
  a shard directory (the WAL is locked); a second opener gets ``StoreLocked``.
- ``ClientEngine``: ``AsyncQdrantClient`` against a Qdrant server or cluster by URL (API key supported), or
  qdrant-client's local mode (``":memory:"`` or a path), which speaks the same client API; tests run the
  server code path against local mode.

The store above speaks only this adapter: upsert, set_payload, retrieve, scroll, query, count, delete. Filters
are a plain ``Where`` (field -> value, or list of values for "any of"), with ``must_not`` the same shape;
every filtered field is a keyword string (Edge 0.9.0 never matches boolean filters, so flags are stored as
``"yes"``/``"no"``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agentkit.errors import StoreError, StoreLocked
from agentkit.log import get_logger

__all__ = ["ClientEngine", "EdgeEngine", "Engine", "Record", "Where"]

Where = Mapping[str, str | Sequence[str]]
KEYWORD_FIELDS = ("kind", "name", "latest", "live", "status", "topics")
_log = get_logger(__name__)


@dataclass(frozen=True)
class Record:
    id: str
    payload: dict[str, Any]
    score: float = 0.0
    vector: list[float] | None = None


class Engine(Protocol):
    dim: int

    async def upsert(self, points: Sequence[tuple[str, list[float], dict[str, Any]]]) -> None: ...
    async def set_payload(self, point_id: str, payload: dict[str, Any]) -> None: ...
    async def retrieve(self, ids: Sequence[str], *, with_vector: bool = False) -> list[Record]: ...
    async def scroll(self, where: Where, must_not: Where | None = None, *, with_vector: bool = False) -> list[Record]: ...
    async def query(self, vector: list[float], where: Where, must_not: Where | None, limit: int,
                    min_score: float | None, hnsw_ef: int | None = None) -> list[Record]: ...
    async def count(self, where: Where, must_not: Where | None = None) -> int: ...
    async def delete(self, ids: Sequence[str]) -> None: ...
    async def optimize(self) -> bool: ...
    async def close(self) -> None: ...


def _values(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _conditions(spec: Where, field: Any, match_one: Any, match_any: Any) -> list[Any]:
    """``Where`` -> field conditions, built with the given engine's classes."""
    out = []
    for key, value in spec.items():
        values = _values(value)
        out.append(field(key=key, match=match_one(values[0]) if len(values) == 1 else match_any(values)))
    return out


def _record(point: Any, with_vector: bool = False) -> Record:
    """An engine's point or record -> ``Record`` (both engines expose id, payload, score, vector)."""
    vector = point.vector if with_vector else None
    if isinstance(vector, dict):
        vector = next(iter(vector.values()))
    return Record(id=str(point.id), payload=dict(point.payload or {}), score=float(getattr(point, "score", 0.0)),
                  vector=list(vector) if vector is not None else None)


_EDGE_CONFIG = "edge_config.json"


def _load(path: Path) -> Any:
    import qdrant_edge as qe

    return qe.EdgeShard.load(str(path))


def _create(path: Path, dim: int) -> None:
    """Build a new shard in a temporary sibling and rename it to ``path`` (see ``EdgeEngine.open``)."""
    import qdrant_edge as qe

    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_name(f".{path.name}.creating-{uuid.uuid4().hex[:12]}")
    try:
        shard = qe.EdgeShard.create(
            str(building), qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)))
        for field in KEYWORD_FIELDS:
            shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))
        shard.flush()
        shard.close()
        try:
            os.rename(building, path)  # atomic; replaces an empty directory, fails on a non-empty one
        except OSError:
            if not (path / _EDGE_CONFIG).exists():
                raise  # neither ours nor someone else's store is there: a real error
            # another process created the store first: open theirs
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)


class EdgeEngine:
    """Qdrant Edge shard in a directory (created on first use)."""

    def __init__(self, shard: Any, dim: int) -> None:
        self._shard = shard
        self.dim = dim
        import qdrant_edge as qe

        self._qe = qe

    @classmethod
    async def open(cls, path: Path, dim: int) -> EdgeEngine:
        """Open the shard at ``path``, creating it if there is none. Creation is atomic: the shard is built in a
        temporary sibling directory and renamed into place, so a crash never leaves a half-made store, and of
        two processes creating one store at once the second opens the first's (or is told it is locked). A
        directory an older version left half-created (no ``edge_config.json``: nothing in it can be loaded) is
        moved aside to ``<path>.incomplete-<time>`` and the store is created anew, with a warning."""

        def _open() -> Any:
            if path.exists() and not path.is_dir():
                raise StoreError(f"{path} is a file, not an embedded store directory; give a directory path")
            try:
                if path.is_dir() and any(path.iterdir()) and not (path / _EDGE_CONFIG).exists():
                    aside = path.with_name(f"{path.name}.incomplete-{int(time.time())}")
                    os.rename(path, aside)
                    _log.warning("half-created store moved aside", store=str(path), moved_to=str(aside))
                if not (path / _EDGE_CONFIG).exists():
                    _create(path, dim)
                return _load(path)
            except StoreError:
                raise
            except Exception as exc:
                if "WouldBlock" in str(exc) or "lock" in str(exc).lower():
                    raise StoreLocked(
                        f"the embedded store {path} is open in another process (Qdrant Edge locks its WAL). Share "
                        f"it through one owner process: `agentkit serve --store {path}` and HandbookClient (or "
                        "`--store URL`), or use a Qdrant server URL"
                    ) from None
                raise StoreError(f"cannot open the embedded store {path}: {exc}") from exc

        return cls(await asyncio.to_thread(_open), dim)

    def _filter(self, where: Where, must_not: Where | None) -> Any:
        qe = self._qe

        def conditions(spec: Where) -> list[Any]:
            return _conditions(spec, qe.FieldCondition, qe.MatchValue, qe.MatchAny)

        return qe.Filter(must=conditions(where) or None, must_not=conditions(must_not or {}) or None)

    async def upsert(self, points: Sequence[tuple[str, list[float], dict[str, Any]]]) -> None:
        qe = self._qe
        op = qe.UpdateOperation.upsert_points(
            [qe.Point(id=uuid.UUID(pid), vector=vec, payload=payload) for pid, vec, payload in points])
        await asyncio.to_thread(self._shard.update, op)

    async def set_payload(self, point_id: str, payload: dict[str, Any]) -> None:
        op = self._qe.UpdateOperation.set_payload([uuid.UUID(point_id)], payload)
        await asyncio.to_thread(self._shard.update, op)

    async def retrieve(self, ids: Sequence[str], *, with_vector: bool = False) -> list[Record]:
        points = await asyncio.to_thread(self._shard.retrieve, [uuid.UUID(i) for i in ids], True, with_vector)
        return [_record(p, with_vector) for p in points]

    async def scroll(self, where: Where, must_not: Where | None = None, *, with_vector: bool = False) -> list[Record]:
        def _all() -> list[Record]:
            out: list[Record] = []
            offset = None
            while True:
                page, offset = self._shard.scroll(self._qe.ScrollRequest(
                    offset=offset, limit=1000, filter=self._filter(where, must_not), with_payload=True,
                    with_vector=with_vector))
                out.extend(_record(p, with_vector) for p in page)
                if offset is None:
                    return out

        return await asyncio.to_thread(_all)

    async def query(self, vector: list[float], where: Where, must_not: Where | None, limit: int,
                    min_score: float | None, hnsw_ef: int | None = None) -> list[Record]:
        qe = self._qe
        params = qe.SearchParams(hnsw_ef=hnsw_ef) if hnsw_ef else None
        request = qe.QueryRequest(limit=limit, query=qe.Query.Nearest(vector), filter=self._filter(where, must_not),
                                  with_payload=True, score_threshold=min_score, params=params)
        points = await asyncio.to_thread(self._shard.query, request)
        return [_record(p) for p in points]

    async def count(self, where: Where, must_not: Where | None = None) -> int:
        request = self._qe.CountRequest(exact=True, filter=self._filter(where, must_not))
        return int(await asyncio.to_thread(self._shard.count, request))

    async def delete(self, ids: Sequence[str]) -> None:
        if ids:
            op = self._qe.UpdateOperation.delete_points([uuid.UUID(i) for i in ids])
            await asyncio.to_thread(self._shard.update, op)

    async def optimize(self) -> bool:
        """Build the HNSW index and merge segments (blocking work in a thread; minutes at 100k on 2 cores)."""
        return bool(await asyncio.to_thread(self._shard.optimize))

    async def close(self) -> None:
        shard, self._shard = self._shard, None
        if shard is not None:
            def _close() -> None:
                shard.flush()
                shard.close()

            await asyncio.to_thread(_close)


class ClientEngine:
    """A collection through ``AsyncQdrantClient`` (server URL, or local mode for tests)."""

    def __init__(self, client: Any, collection: str, dim: int, *, server: bool = False) -> None:
        from qdrant_client import models

        self._server = server  # local mode is exact brute force: it ignores (and warns about) search params
        self._client = client
        self._models = models
        self.collection = collection
        self.dim = dim

    @classmethod
    async def open(cls, *, url: str | None, api_key: str | None, location: str | None, path: str | None,
                   collection: str, dim: int) -> ClientEngine:
        from qdrant_client import AsyncQdrantClient, models

        try:
            if url is not None:
                client = AsyncQdrantClient(url=url, api_key=api_key)
            elif path is not None:
                client = AsyncQdrantClient(path=path)
            else:
                client = AsyncQdrantClient(location=location or ":memory:")
        except RuntimeError as exc:  # local mode's folder lock
            raise StoreLocked(f"{exc}") from None
        try:
            if not await client.collection_exists(collection):
                await client.create_collection(
                    collection, vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE))
                if url is not None:  # local mode ignores payload indexes (and warns)
                    for field in KEYWORD_FIELDS:
                        await client.create_payload_index(collection, field, models.PayloadSchemaType.KEYWORD)
        except Exception as exc:
            await client.close()
            raise StoreError(f"cannot open collection {collection!r}: {exc}") from exc
        return cls(client, collection, dim, server=url is not None)

    def _filter(self, where: Where, must_not: Where | None) -> Any:
        m = self._models

        def conditions(spec: Where) -> list[Any]:
            return _conditions(spec, m.FieldCondition, lambda v: m.MatchValue(value=v), lambda v: m.MatchAny(any=v))

        return m.Filter(must=conditions(where) or None, must_not=conditions(must_not or {}) or None)

    async def upsert(self, points: Sequence[tuple[str, list[float], dict[str, Any]]]) -> None:
        m = self._models
        await self._client.upsert(self.collection, points=[m.PointStruct(id=pid, vector=vec, payload=payload)
                                                           for pid, vec, payload in points], wait=True)

    async def set_payload(self, point_id: str, payload: dict[str, Any]) -> None:
        await self._client.set_payload(self.collection, payload=payload, points=[point_id], wait=True)

    async def retrieve(self, ids: Sequence[str], *, with_vector: bool = False) -> list[Record]:
        points = await self._client.retrieve(self.collection, ids=list(ids), with_payload=True, with_vectors=with_vector)
        return [_record(p, with_vector) for p in points]

    async def scroll(self, where: Where, must_not: Where | None = None, *, with_vector: bool = False) -> list[Record]:
        out: list[Record] = []
        offset = None
        while True:
            page, offset = await self._client.scroll(
                self.collection, scroll_filter=self._filter(where, must_not), limit=1000, offset=offset,
                with_payload=True, with_vectors=with_vector)
            out.extend(_record(p, with_vector) for p in page)
            if offset is None:
                return out

    async def query(self, vector: list[float], where: Where, must_not: Where | None, limit: int,
                    min_score: float | None, hnsw_ef: int | None = None) -> list[Record]:
        params = self._models.SearchParams(hnsw_ef=hnsw_ef) if hnsw_ef and self._server else None
        response = await self._client.query_points(
            self.collection, query=vector, query_filter=self._filter(where, must_not), limit=limit, with_payload=True,
            score_threshold=min_score, search_params=params)
        return [_record(p) for p in response.points]

    async def count(self, where: Where, must_not: Where | None = None) -> int:
        result = await self._client.count(self.collection, count_filter=self._filter(where, must_not), exact=True)
        return int(result.count)

    async def delete(self, ids: Sequence[str]) -> None:
        if ids:
            await self._client.delete(self.collection, points_selector=self._models.PointIdsList(points=list(ids)),
                                      wait=True)

    async def optimize(self) -> bool:
        return False  # a Qdrant server optimizes in the background; local mode has no index to build

    async def close(self) -> None:
        await self._client.close()
