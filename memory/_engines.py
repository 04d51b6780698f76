"""One small adapter over the two real Qdrant engines the behavior store runs on.

- ``EdgeEngine``: Qdrant Edge (``qdrant-edge-py``), Qdrant's Rust shard engine in-process (HNSW, payload
  indexes, WAL persistence). One process owns a shard directory (the WAL is locked); a second opener gets
  ``StoreLocked``. Its API is synchronous and **holds the GIL** for the whole of each call (0.9.0: a thread
  that runs a query or ``optimize()`` stops every other Python thread, measured), so a worker thread buys no
  concurrency: reads (query, retrieve, count) run inline, which saves the thread hop (~0.15 ms, a fifth of
  an indexed search at 100k), and the HNSW index is built in a **child process** on a copy of the shard that
  then replaces the live one (``build_index``), so searches and writes go on while it builds.
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
import contextlib
import os
import shutil
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agentkit.errors import StoreError, StoreLocked, StoreNotFound
from agentkit.log import get_logger

__all__ = ["ClientEngine", "EdgeEngine", "Engine", "Record", "Where"]

Where = Mapping[str, str | Sequence[str]]
KEYWORD_FIELDS = ("kind", "name", "latest", "live", "status", "topics")
_log = get_logger(__name__)

EXACT_BELOW = 5_000
"""Vectors (behavior versions) that the embedded store keeps without an HNSW index: below this many, no
index is built and every search is exact, the same top-k as brute force (0.35 ms p50 at 1k, 0.7 ms at 5k on
MiniLM vectors; 1.3 ms at 10k, which is why the line is not higher). From this many unindexed vectors on, the
store builds the index in the background. Also the size under which Qdrant's planner scans a segment
instead of walking its graph, and the size from which its optimizer indexes a segment."""
HNSW_M = 32
HNSW_EF_CONSTRUCT = 200
SEARCH_EF = 64
RESCORE_OVERSAMPLING = 2.0
"""Search settings shared by both engines (``benchmarks/perf/bench_memory.py``, real MiniLM embeddings of
100k sentences): HNSW m 32 / ef_construct 200 over int8 scalar-quantized vectors, searched at ef 64 with 2x
oversampling and rescoring on the original vectors, reaches recall@10 0.995 at 100k, where m 16 / ef 100
without quantization needed ef 128 (1.4 ms) for 0.997 and gave 0.983 at ef 64."""


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
    def unindexed(self) -> int: ...
    def build_in_background(self) -> None: ...
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
_INDEX_READY = ".agentkit-index-ready"


def _vector_kb(dim: int, count: int) -> int:
    """Qdrant sizes its thresholds in kilobytes of float32 vectors."""
    return max(1, count * dim * 4 // 1024)


def _config(dim: int, exact_below: int = EXACT_BELOW) -> Any:
    """The shard's configuration: index, quantization and optimizer settings (see the constants above)."""
    import qdrant_edge as qe

    threshold_kb = _vector_kb(dim, exact_below)
    return qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
        hnsw_config=qe.HnswIndexConfig(m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT, full_scan_threshold=threshold_kb,
                                       max_indexing_threads=1),  # one core builds; the other keeps serving
        quantization_config=qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=0.99,
                                                        memory=qe.Memory.Pinned),
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=threshold_kb),
        payload_memory=qe.Memory.Cached,
    )


def _is_lock_error(exc: BaseException) -> bool:
    """Whether Edge refused a shard because another process holds its WAL lock."""
    return "WouldBlock" in str(exc) or "lock" in str(exc).lower()


def _load(path: Path, dim: int | None = None, exact_below: int = EXACT_BELOW) -> Any:
    """Open a shard; with ``dim``, its index settings are brought to ``_config(dim, exact_below)`` (a store made
    by an older agentkit takes them on at its next index build; its vectors are untouched)."""
    import qdrant_edge as qe

    if dim is not None:
        try:
            return qe.EdgeShard.load(str(path), _config(dim, exact_below))
        except Exception as exc:
            if _is_lock_error(exc):
                raise
            _log.warning("store opened with its own settings", store=str(path), reason=str(exc)[:200])
    return qe.EdgeShard.load(str(path))


def _create(path: Path, dim: int, exact_below: int = EXACT_BELOW) -> None:
    """Build a new shard in a temporary sibling, ``.<name>.creating-<pid>-<hex>`` (the marker of a creation in
    progress: the only kind of directory ``_clean_creations`` ever removes), and rename it to ``path`` (see
    ``EdgeEngine.open``)."""
    import qdrant_edge as qe

    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_name(f".{path.name}{_CREATING}{os.getpid()}-{uuid.uuid4().hex[:12]}")
    try:
        shard = qe.EdgeShard.create(str(building), _config(dim, exact_below))
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


_CREATING = ".creating-"
_STALE_CREATION_S = 600.0
"""A creation folder without a process id (written by an older agentkit) counts as abandoned after this long."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists but is another user's
    return True


def _clean_creations(path: Path) -> None:
    """Remove the creation folders (``_create``) of ``path`` whose creator is gone: killed while it built the
    store. A folder whose process still runs is another process creating the store right now, and is left."""
    for folder in _siblings(path, _CREATING.strip(".-")):
        tail = folder.name.rsplit(_CREATING, 1)[-1]
        pid, sep, _ = tail.partition("-")
        try:
            abandoned = not _alive(int(pid)) if sep and pid.isdigit() else \
                time.time() - folder.stat().st_mtime > _STALE_CREATION_S
        except OSError:
            continue
        if abandoned:
            shutil.rmtree(folder, ignore_errors=True)
            _log.info("removed an abandoned store creation", store=str(path), folder=folder.name)


def _is_store(path: Path) -> bool:
    return (path / _EDGE_CONFIG).is_file()


def _check_not_foreign(path: Path) -> None:
    """Refuse a path that holds something other than a store: a file, or a directory with entries but no store
    configuration (a user's folder, or a half-made store of an agentkit older than atomic creation). Nothing is
    moved or written: the caller is told what is there."""
    if path.exists() and not path.is_dir():
        raise StoreError(f"{path} is a file, not an embedded store directory; give a directory path")
    if path.is_dir() and not _is_store(path) and any(path.iterdir()):
        raise StoreError(f"{path} is a directory that is not a handbook store (it has files but no "
                         f"{_EDGE_CONFIG}); agentkit leaves it untouched: give a new or empty directory, or move "
                         "its files away")


def _search_params(qe: Any, hnsw_ef: int) -> Any:
    return qe.SearchParams(hnsw_ef=hnsw_ef, quantization=qe.QuantizationSearchParams(
        rescore=True, oversampling=RESCORE_OVERSAMPLING))


def _siblings(path: Path, kind: str) -> list[Path]:
    return sorted(path.parent.glob(f".{path.name}.{kind}-*")) if path.parent.is_dir() else []


def _recover(path: Path) -> None:
    """Finish or undo an index swap that a crash interrupted (``EdgeEngine.build_index``). Both directories of
    a swap hold every acknowledged write (writes wait while it runs), so either is a correct store: a ready
    index copy is preferred, then the replaced store, and leftovers of an unfinished build are removed."""
    if not (path / _EDGE_CONFIG).exists():
        ready = [p for p in _siblings(path, "index") if (p / _INDEX_READY).exists()]
        replaced = _siblings(path, "replaced")
        chosen = ready[-1] if ready else (replaced[-1] if replaced else None)
        if chosen is not None and not (path.is_dir() and any(path.iterdir())):
            if path.exists():
                path.rmdir()  # an empty directory (a rename half-done), never anything with files in it
            os.rename(chosen, path)
            (path / _INDEX_READY).unlink(missing_ok=True)
            _log.warning("finished an interrupted index swap", store=str(path), used=chosen.name)
    for leftover in [*_siblings(path, "index"), *_siblings(path, "replaced")]:
        shutil.rmtree(leftover, ignore_errors=True)


def optimize_copy(path: str) -> bool:
    """Build the index of the shard at ``path`` (run in a child process by ``EdgeEngine.build_index``)."""
    shard = _load(Path(path))
    try:
        changed = bool(shard.optimize())
        shard.flush()
    finally:
        shard.close()
    return changed


class EdgeEngine:
    """Qdrant Edge shard in a directory (created on first use)."""

    def __init__(self, shard: Any, dim: int, path: Path, exact_below: int = EXACT_BELOW) -> None:
        self._shard = shard
        self.dim = dim
        self.path = path
        self.exact_below = exact_below
        import qdrant_edge as qe

        self._qe = qe
        self._params = _search_params(qe, SEARCH_EF)  # built once: nearly every search uses the default
        self._gate = asyncio.Lock()  # writes, and the moment a built index replaces the live shard
        self._ready = asyncio.Event()  # cleared while the shard is being replaced: reads wait
        self._ready.set()
        self._oplog: list[tuple[str, tuple[Any, ...]]] | None = None  # writes made while a copy is indexed
        self._build: asyncio.Task[bool] | None = None
        self.builds = 0
        """Index builds finished by this engine (for logs and tests)."""

    @classmethod
    async def open(cls, path: Path, dim: int, *, exact_below: int = EXACT_BELOW, create: bool = True
                   ) -> EdgeEngine:
        """Open the shard at ``path``; with ``create``, create it if there is none (a missing or empty
        directory), else a missing store is a ``StoreNotFound``. Creation is atomic: the shard is built in a
        temporary sibling directory and renamed into place, so a crash never leaves a half-made store, and of
        two processes creating one store at once the second opens the first's (or is told it is locked).
        Creation folders that a killed process left are removed first (``_clean_creations``), and an index swap
        that a crash interrupted is finished (``_recover``). A path that holds anything else (a file, a
        directory with files but no store configuration) is refused and left exactly as it is."""

        def _open() -> Any:
            _check_not_foreign(path)
            if not create and not _is_store(path) and not _siblings(path, "index") \
                    and not _siblings(path, "replaced"):
                raise StoreNotFound(f"no handbook store at {path} (create one with `agentkit handbook add` or "
                                    "`build`, or check the path)")
            try:
                _clean_creations(path)
                _recover(path)
                _check_not_foreign(path)
                if not _is_store(path):
                    if not create:
                        raise StoreNotFound(f"no handbook store at {path}")
                    _create(path, dim, exact_below)
                return _load(path, dim, exact_below)
            except StoreError:
                raise
            except Exception as exc:
                if _is_lock_error(exc):
                    raise StoreLocked(
                        f"the embedded store {path} is open in another process (Qdrant Edge locks its WAL). Share "
                        f"it through one owner process: `agentkit serve --store {path}` and HandbookClient (or "
                        "`--store URL`), or use a Qdrant server URL"
                    ) from None
                raise StoreError(f"cannot open the embedded store {path}: {exc}") from exc

        return cls(await asyncio.to_thread(_open), dim, path, exact_below)

    # -- reads: inline (the GIL is held by Edge either way), waiting only while a built index is swapped in --
    async def _live(self) -> Any:
        if not self._ready.is_set():
            await self._ready.wait()
        if self._shard is None:
            raise StoreError("the store is closed")
        return self._shard

    def _filter(self, where: Where, must_not: Where | None) -> Any:
        qe = self._qe

        def conditions(spec: Where) -> list[Any]:
            return _conditions(spec, qe.FieldCondition, qe.MatchValue, qe.MatchAny)

        return qe.Filter(must=conditions(where) or None, must_not=conditions(must_not or {}) or None)

    def _search_params(self, hnsw_ef: int | None) -> Any:
        return self._params if hnsw_ef is None or hnsw_ef == SEARCH_EF else _search_params(self._qe, hnsw_ef)

    async def retrieve(self, ids: Sequence[str], *, with_vector: bool = False) -> list[Record]:
        points = (await self._live()).retrieve([uuid.UUID(i) for i in ids], True, with_vector)
        return [_record(p, with_vector) for p in points]

    async def scroll(self, where: Where, must_not: Where | None = None, *, with_vector: bool = False) -> list[Record]:
        shard = await self._live()

        def _all() -> list[Record]:
            out: list[Record] = []
            offset = None
            while True:
                page, offset = shard.scroll(self._qe.ScrollRequest(
                    offset=offset, limit=1000, filter=self._filter(where, must_not), with_payload=True,
                    with_vector=with_vector))
                out.extend(_record(p, with_vector) for p in page)
                if offset is None:
                    return out

        return await asyncio.to_thread(_all)

    async def query(self, vector: list[float], where: Where, must_not: Where | None, limit: int,
                    min_score: float | None, hnsw_ef: int | None = None) -> list[Record]:
        qe = self._qe
        request = qe.QueryRequest(limit=limit, query=qe.Query.Nearest(vector), filter=self._filter(where, must_not),
                                  with_payload=True, score_threshold=min_score, params=self._search_params(hnsw_ef))
        return [_record(p) for p in (await self._live()).query(request)]

    async def count(self, where: Where, must_not: Where | None = None) -> int:
        request = self._qe.CountRequest(exact=True, filter=self._filter(where, must_not))
        return int((await self._live()).count(request))

    def unindexed(self) -> int:
        """Vectors not in an HNSW index (all of them in a store below ``EXACT_BELOW``)."""
        if self._shard is None:
            return 0
        info = self._shard.info()
        return max(0, int(info.points_count) - int(info.indexed_vectors_count))

    # -- writes: through the gate, logged while a copy is being indexed ---------------------------------------
    def _operation(self, kind: str, args: tuple[Any, ...]) -> Any:
        qe = self._qe
        if kind == "upsert":
            return qe.UpdateOperation.upsert_points(
                [qe.Point(id=uuid.UUID(pid), vector=vec, payload=payload) for pid, vec, payload in args[0]])
        if kind == "set_payload":
            return qe.UpdateOperation.set_payload([uuid.UUID(args[0])], args[1])
        return qe.UpdateOperation.delete_points([uuid.UUID(i) for i in args[0]])

    async def _write(self, kind: str, *args: Any) -> None:
        async with self._gate:
            shard = await self._live()
            await asyncio.to_thread(shard.update, self._operation(kind, args))
            if self._oplog is not None:
                self._oplog.append((kind, args))

    async def upsert(self, points: Sequence[tuple[str, list[float], dict[str, Any]]]) -> None:
        await self._write("upsert", list(points))

    async def set_payload(self, point_id: str, payload: dict[str, Any]) -> None:
        await self._write("set_payload", point_id, dict(payload))

    async def delete(self, ids: Sequence[str]) -> None:
        if ids:
            await self._write("delete", list(ids))

    # -- the index --------------------------------------------------------------------------------------------
    @property
    def building(self) -> bool:
        return self._build is not None and not self._build.done()

    def build_in_background(self) -> None:
        """Start an index build unless one is running (``build_index`` without waiting)."""
        if not self.building and self._shard is not None:
            self._build = asyncio.get_running_loop().create_task(self._build_rounds())
            self._build.add_done_callback(_log_build_failure)

    async def _build_rounds(self) -> bool:
        """Build; while the writes made during a build outgrow exact search again, build again (a few rounds
        at most, and only while a round still indexes something)."""
        changed = await self._build_index()
        for _ in range(3):
            left = self.unindexed()
            if left < self.exact_below:
                break
            changed = await self._build_index() or changed
            if self.unindexed() >= left:
                break
        return changed

    async def build_index(self) -> bool:
        """Build the HNSW index (and int8 quantization) of every segment big enough for one, without stopping
        searches or writes: the shard is flushed and copied (writes wait for the copy, ~0.3 s per 100k
        behaviors), a child process optimizes the copy (minutes at 100k; on one core, so the other keeps
        serving) while the live shard answers and logs every write, then the log is replayed into the copy and
        the copy replaces the live shard (reads wait for the swap, a fraction of a second). A crash at any point
        leaves a complete store (``_recover``). Returns whether anything was indexed."""
        if not self.building:
            self.build_in_background()
        assert self._build is not None
        return await asyncio.shield(self._build)

    async def _build_index(self) -> bool:
        path = self.path
        copy = path.with_name(f".{path.name}.index-{uuid.uuid4().hex[:12]}")
        async with self._gate:
            shard = await self._live()
            await asyncio.to_thread(shard.flush)
            await asyncio.to_thread(shutil.copytree, path, copy)
            self._oplog = []
        proc: asyncio.subprocess.Process | None = None
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", "import sys; from agentkit.memory._engines import optimize_copy; "
                "print('indexed' if optimize_copy(sys.argv[1]) else 'unchanged')", str(copy),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await proc.communicate()
            if proc.returncode != 0:
                raise StoreError(f"building the index of {path} failed: {err.decode(errors='replace')[-400:]}")
            changed = out.strip().endswith(b"indexed")
            async with self._gate:
                ops, self._oplog = self._oplog, None
                await _shielded(asyncio.to_thread(self._finish_copy, copy, ops))
                self._ready.clear()
                try:
                    aside = await _shielded(asyncio.to_thread(self._swap, copy))
                finally:
                    self._ready.set()
            await asyncio.to_thread(shutil.rmtree, aside, True)
            self.builds += 1
            return changed
        except BaseException:
            self._oplog = None
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
            await asyncio.to_thread(shutil.rmtree, copy, True)  # the live shard is untouched
            raise

    def _finish_copy(self, copy: Path, ops: list[tuple[str, tuple[Any, ...]]] | None) -> None:
        """Replay the writes made during the build into the built copy and mark it complete."""
        built = _load(copy)
        try:
            for kind, args in ops or ():
                built.update(self._operation(kind, args))
            built.flush()
        finally:
            built.close()
        marker = copy / _INDEX_READY
        with open(marker, "w") as fh:
            fh.write("complete: every acknowledged write is in this copy\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _swap(self, copy: Path) -> Path:
        """Replace the live shard by the built copy; returns where the old one went (to be deleted)."""
        path = self.path
        old, self._shard = self._shard, None
        old.flush()
        old.close()
        aside = path.with_name(f".{path.name}.replaced-{uuid.uuid4().hex[:12]}")
        os.rename(path, aside)
        try:
            os.rename(copy, path)
            (path / _INDEX_READY).unlink()
            self._shard = _load(path, self.dim, self.exact_below)
        except BaseException:  # put the old store back: it holds every acknowledged write too
            if (path / _EDGE_CONFIG).exists():
                os.rename(path, copy)
            os.rename(aside, path)
            self._shard = _load(path, self.dim, self.exact_below)
            raise
        return aside

    async def optimize(self) -> bool:
        """Build the index now (``build_index``): searches and writes go on meanwhile."""
        return await self.build_index()

    async def close(self) -> None:
        if self._build is not None and not self._build.done():
            self._build.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._build
        shard, self._shard = self._shard, None
        if shard is not None:
            def _close() -> None:
                shard.flush()
                shard.close()

            await asyncio.to_thread(_close)


def _log_build_failure(task: asyncio.Task[bool]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.error("index build failed; the store keeps searching without it", error=str(task.exception())[:300])


async def _shielded(awaitable: Any) -> Any:
    """Await ``awaitable`` to the end even if the caller is cancelled meanwhile (then re-raise the cancel):
    a swap that is half done must finish."""
    future = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await future
        raise


def _server_collection_settings(models: Any, dim: int) -> dict[str, Any]:
    """A server collection's index settings: the embedded store's (``_config``), in qdrant-client's models."""
    threshold_kb = _vector_kb(dim, EXACT_BELOW)
    return {
        "hnsw_config": models.HnswConfigDiff(m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT,
                                             full_scan_threshold=threshold_kb),
        "quantization_config": models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
            type=models.ScalarType.INT8, quantile=0.99, always_ram=True)),
        "optimizers_config": models.OptimizersConfigDiff(indexing_threshold=threshold_kb),
    }


def server_search_params(models: Any, hnsw_ef: int | None) -> Any:
    """The search parameters a server query sends: the embedded store's (``EdgeEngine._search_params``)."""
    return models.SearchParams(hnsw_ef=hnsw_ef or SEARCH_EF, quantization=models.QuantizationSearchParams(
        rescore=True, oversampling=RESCORE_OVERSAMPLING))


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
                    collection, vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
                    **(_server_collection_settings(models, dim) if url is not None else {}))
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
        params = server_search_params(self._models, hnsw_ef) if self._server else None
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

    def unindexed(self) -> int:
        return 0  # a server indexes by itself

    def build_in_background(self) -> None:
        pass

    async def close(self) -> None:
        await self._client.close()
