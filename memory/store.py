"""The behavior handbook: a versioned store of ``Behavior`` entries in Qdrant, with usage statistics,
retrieval, curation and pruning.

``QdrantBehaviorStore`` runs on one of two real Qdrant engines (``memory/_engines.py``):
``QdrantBehaviorStore(path=...)`` is the embedded default (Qdrant Edge, in-process, persistent);
``QdrantBehaviorStore(url=..., api_key=...)`` is a Qdrant server or cluster; ``(location=":memory:")`` is
qdrant-client's local mode, which runs the server code path in tests.

How it is laid out. Every *version* of a behavior is one point (id = uuid5 of ``name@version``) whose payload
is the behavior plus two keyword flags: ``kind`` (``behavior``; one ``meta`` point records the schema version
and the embedder's name and dimension) and ``latest`` (``yes`` on the newest version only). Searches filter on
``latest == yes`` and ``status == active`` unless asked otherwise. Usage statistics live on the latest version
and move forward with each new version.

Consistency. All writes of one store object go through one ``asyncio.Lock`` (a single writer): a dedup check
and the insert it decides on, version numbering, and counter updates happen inside the same critical
section, while embedding (CPU work) runs before taking it. So two concurrent updates never lose a version, a
check and an insert are never separated by another writer (mem0 #6515), and counts are exact: usage events
are buffered in memory (no await between reading and adding) and applied in batches by the writer. Embedded
engines are single-process; a second process opening the same path gets ``StoreLocked``.

Bounded growth (ACE's users' top complaint was a playbook that only grew): ``max_active`` caps the active
behaviors; an add beyond it prunes the lowest-utility behavior (reversibly, as a new version).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentkit import tracing
from agentkit.errors import BehaviorNotFound, ConfigError, EmbedderMismatch, StoreError, validation_problems
from agentkit.log import get_logger

from ._engines import EXACT_BELOW, ClientEngine, EdgeEngine, Engine, Record, Where
from .behavior import MAX_NAME_CHARS, USAGE_EVENTS, Behavior, BehaviorStats, Provenance, Status, is_behavior_name
from .embedders import Embedder, default_embedder

__all__ = [
    "SCHEMA_VERSION",
    "BehaviorStore",
    "ImportReport",
    "PruneDecision",
    "PrunePolicy",
    "QdrantBehaviorStore",
    "SearchHit",
]

_log = get_logger(__name__)
SCHEMA_VERSION = 1
_NAMESPACE = uuid.UUID("6f1c2a4e-7d0b-4c0e-9a53-1f6b2e8d9c11")
_META_ID = str(uuid.uuid5(_NAMESPACE, "agentkit-meta"))
_BEHAVIOR: Where = {"kind": "behavior"}
_LATEST: Where = {"kind": "behavior", "latest": "yes"}
# "live" = latest version and active, precomputed at write time: the hot search path filters on this one
# keyword instead of three conditions, which halves Edge's exact search time at 100k (27.5 -> 13.8 ms).
_LIVE: Where = {"live": "yes"}
_FLAGS = {"kind", "latest", "live", "usage_seq"}  # store bookkeeping, not behavior fields


def _point_id(name: str, version: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{name}@{version}"))


def _now() -> datetime:
    return datetime.now(UTC)


class SearchHit(BaseModel):
    """A retrieved behavior and its similarity to the query (cosine, higher is closer)."""

    model_config = ConfigDict(frozen=True)

    behavior: Behavior
    score: float


class PrunePolicy(BaseModel):
    """What ``prune`` removes (each rule optional; a behavior matching several is reported once, first rule)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    unused_after_retrievals: int | None = Field(default=None, ge=1, le=10**12)
    """Retrieved at least this many times and never cited."""
    unused_after_days: float | None = Field(default=None, gt=0, le=36_500)
    """Created at least this long ago and never cited."""
    harmful_min_count: int | None = Field(default=None, ge=1, le=10**12)
    """Graded citations needed before the harmful rule applies."""
    harmful_ratio: float = Field(default=0.6, gt=0, le=1)
    """Share of graded citations that were in wrong answers, at or above which a behavior is harmful."""
    stale_after_days: float | None = Field(default=None, gt=0, le=36_500)
    """Not used (retrieved or cited) for this long (since creation, if never used)."""
    capacity: int | None = Field(default=None, ge=0, le=10**9)
    """Keep only the top N active behaviors by utility (``Behavior.stats.utility``)."""


class PruneDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    reason: str
    utility: float


class ImportReport(BaseModel):
    imported: list[str] = []
    skipped: dict[str, str] = {}
    """name (or line) -> why it was not imported."""


@runtime_checkable
class BehaviorStore(Protocol):
    """The behavior handbook's interface: what every seam that takes a handbook is typed against.

    ``QdrantBehaviorStore`` (embedded or a Qdrant server) and ``HandbookClient`` (the HTTP service) both
    satisfy it; ``tests/memory/test_conformance.py`` runs the same cases on both.
    """

    async def add(self, behavior: Behavior, *, dedup: bool = True) -> Behavior: ...
    async def update(self, name: str, **changes: Any) -> Behavior: ...
    async def get(self, name: str, version: int | None = None) -> Behavior: ...
    async def history(self, name: str) -> list[Behavior]: ...
    async def rollback(self, name: str, version: int) -> Behavior: ...
    async def deprecate(self, name: str, reason: str = "") -> Behavior: ...
    async def restore(self, name: str) -> Behavior: ...
    async def list_behaviors(self, *, status: str | None = "active") -> list[Behavior]: ...
    async def search(self, query: str, k: int = 5, *, topics: Sequence[str] | None = None,
                     min_score: float | None = None, include_inactive: bool = False) -> list[SearchHit]: ...
    async def by_topic(self, topic: str, k: int = 40) -> list[Behavior]: ...
    async def record_usage(self, name: str, event: str, count: int = 1) -> None: ...
    async def record_usage_many(self, events: Iterable[tuple[str, str]]) -> None: ...
    async def flush_usage(self) -> None: ...
    async def count(self, *, status: str | None = "active") -> int: ...
    async def prune(self, policy: PrunePolicy, *, dry_run: bool = True) -> list[PruneDecision]: ...
    async def compact(self) -> int: ...
    async def export_jsonl(self, path: str | Path) -> int: ...
    async def import_jsonl(self, path: str | Path) -> ImportReport: ...
    async def import_behavior_json(self, data: str | Mapping[str, Any], *,
                                   topics: Sequence[str] = ()) -> ImportReport: ...
    async def close(self) -> None: ...


class QdrantBehaviorStore:
    """The behavior handbook over Qdrant (Edge by path, a server by URL, or local mode by location).

    Args:
        path: directory of the embedded store (Qdrant Edge).
        url, api_key: a Qdrant server or cluster.
        location: qdrant-client local mode (``":memory:"``), or ``local_path`` for its on-disk variant.
        embedder: defaults to the offline MiniLM embedder; the store refuses one that differs from the
            embedder that made its vectors.
        dedup_threshold: cosine at or above which a new behavior merges into an existing one.
        max_active: the most active behaviors kept (beyond it the lowest-utility one is pruned).
        usage_batch: buffered usage events that trigger a write.
        hnsw_ef: HNSW search breadth once an index exists; higher is closer to exact and slower. None: the
            tuned default (``SEARCH_EF``, 64: recall@10 0.995 at 100k real MiniLM embeddings, with int8
            quantization, 2x oversampling and rescoring; ``benchmarks/perf/bench_memory.py``). Both engines
            (embedded and server) send the same search parameters.
        exact_below: the embedded store builds no index below this many vectors (behavior versions), so its
            searches are exact; from this many unindexed vectors on it builds one in the background (a child
            process on a copy of the store; searches and writes go on). Default ``EXACT_BELOW`` (5,000).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        location: str | None = None,
        local_path: str | Path | None = None,
        collection: str = "behaviors",
        embedder: Embedder | None = None,
        dedup_threshold: float = 0.92,
        name_similarity: float = 0.85,
        max_active: int = 10_000,
        usage_batch: int = 256,
        hnsw_ef: int | None = None,
        exact_below: int = EXACT_BELOW,
        create: bool = True,
    ) -> None:
        chosen = [x for x in (path, url, location, local_path) if x is not None]
        if len(chosen) > 1:
            raise ConfigError("give one of path= (embedded), url= (server), location= or local_path= (local mode)")
        if max_active < 1 or usage_batch < 1 or not 0 < dedup_threshold <= 1:
            raise ConfigError("max_active and usage_batch must be >= 1 and dedup_threshold in (0, 1]")
        if exact_below < 1 or (hnsw_ef is not None and not 1 <= hnsw_ef <= 100_000):
            raise ConfigError("exact_below must be >= 1 and hnsw_ef in 1..100000")
        self.path = Path(path).expanduser() if path is not None else None
        self.url, self.api_key, self.location = url, api_key, location
        self.local_path = str(local_path) if local_path is not None else None
        if not chosen:
            self.path = Path(".agentkit") / "handbook"
        self.collection = collection
        self.embedder = embedder or default_embedder()
        self.dedup_threshold = dedup_threshold
        self.name_similarity = name_similarity
        self.max_active = max_active
        self.usage_batch = usage_batch
        self.hnsw_ef = hnsw_ef
        self.exact_below = exact_below
        self.create = create
        self._engine: Engine | None = None
        self._lock = asyncio.Lock()
        self._open_lock = asyncio.Lock()
        self._pending: dict[str, Counter[str]] = {}
        self._pending_seq: dict[str, int] = {}
        self._pending_count = 0
        self._journal: IO[str] | None = None
        self._seq = 0
        self._writes = 0
        self.dropped_usage = 0
        """Usage events for names that did not exist when applied (logged, then dropped)."""

    @property
    def where(self) -> str:
        return str(self.path) if self.path is not None else (self.url or self.local_path or self.location or "")

    # -- lifecycle ---------------------------------------------------------------------------------
    async def open(self) -> QdrantBehaviorStore:
        async with self._open_lock:
            if self._engine is not None:
                return self
            dim = self.embedder.dim
            engine: Engine
            if self.path is not None:
                engine = await EdgeEngine.open(self.path, dim, exact_below=self.exact_below, create=self.create)
            else:
                engine = await ClientEngine.open(url=self.url, api_key=self.api_key, location=self.location,
                                                 path=self.local_path, collection=self.collection, dim=dim)
            try:
                await self._check_meta(engine)
                self._engine = engine
                await self._replay_journal()
            except Exception:
                self._engine = None
                await engine.close()
                raise
        return self

    async def _check_meta(self, engine: Engine) -> None:
        [*found] = await engine.retrieve([_META_ID])
        expected = {"embedder": self.embedder.name, "dim": self.embedder.dim}
        if not found:
            vector = [1.0] + [0.0] * (self.embedder.dim - 1)
            await engine.upsert([(_META_ID, vector, {"kind": "meta", "schema_version": SCHEMA_VERSION, **expected})])
            return
        meta = found[0].payload
        if (meta.get("embedder"), meta.get("dim")) != (expected["embedder"], expected["dim"]):
            raise EmbedderMismatch(
                f"store {self.where} holds vectors from embedder {meta.get('embedder')!r} ({meta.get('dim')}-d), "
                f"not {expected['embedder']!r} ({expected['dim']}-d); open it with the same embedder, or export "
                "and import into a new store to re-embed"
            )
        if int(meta.get("schema_version", 0)) > SCHEMA_VERSION:
            raise StoreError(f"store {self.where} has schema {meta.get('schema_version')}, newer than this agentkit "
                             f"({SCHEMA_VERSION}); upgrade agentkit")

    @contextlib.asynccontextmanager
    async def _writer(self) -> AsyncIterator[None]:
        """The single-writer critical section. The store is opened first: opening replays the usage journal
        under this same lock, so opening lazily from inside it would wait on itself forever."""
        await self._e()
        async with self._lock:
            yield

    async def _e(self) -> Engine:
        if self._engine is None:
            await self.open()
        assert self._engine is not None
        return self._engine

    async def close(self) -> None:
        if self._engine is None:
            return
        await self.flush_usage()
        engine, self._engine = self._engine, None
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        await engine.close()

    async def __aenter__(self) -> QdrantBehaviorStore:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- payload mapping ---------------------------------------------------------------------------
    @staticmethod
    def _payload(behavior: Behavior, latest: bool) -> dict[str, Any]:
        live = latest and behavior.status == Status.ACTIVE
        return {**behavior.model_dump(mode="json"), "kind": "behavior", "latest": "yes" if latest else "no",
                "live": "yes" if live else "no"}

    @staticmethod
    def _behavior(record: Record) -> Behavior:
        data = {k: v for k, v in record.payload.items() if k not in _FLAGS}
        return Behavior.model_validate(data)

    async def _latest(self, name: str, *, with_vector: bool = False) -> Record | None:
        found = await (await self._e()).scroll({**_LATEST, "name": name}, with_vector=with_vector)
        return found[0] if found else None

    async def _write_version(self, old: Record | None, new: Behavior, vector: list[float]) -> Behavior:
        """Write ``new`` as the latest version (caller holds the lock). The new version and the old one's
        ``latest = no`` go in one upsert, one entry of the store's write-ahead log: a kill -9 leaves either both or
        neither, never two latest versions of one behavior."""
        engine = await self._e()
        points = [(_point_id(new.name, new.version), vector, self._payload(new, latest=True))]
        if old is not None:
            previous = old if old.vector is not None else (await engine.retrieve([old.id], with_vector=True))[0]
            assert previous.vector is not None
            points.append((old.id, previous.vector, {**previous.payload, "latest": "no", "live": "no"}))
        await engine.upsert(points)
        self._writes += 1
        if self._writes % 64 == 0 and engine.unindexed() >= self.exact_below:
            engine.build_in_background()  # a store that outgrew exact search gets its index, without waiting
        return new

    async def _embed_one(self, text: str) -> list[float]:
        [vector] = await self.embedder.embed([text])
        if len(vector) != self.embedder.dim:
            raise EmbedderMismatch(f"embedder {self.embedder.name!r} returned {len(vector)}-d vectors, "
                                   f"not the {self.embedder.dim} it declares")
        return vector

    # -- writes ------------------------------------------------------------------------------------
    @tracing.traced("agentkit.handbook.add", lambda b: {"agentkit.behaviors": [b.name], "agentkit.version": b.version})
    async def add(self, behavior: Behavior, *, dedup: bool = True) -> Behavior:
        """Add a behavior as version 1, or merge it into a near-duplicate (returns what was stored). The store
        owns version, status, statistics and timestamps: whatever ``behavior`` carries there is ignored (only
        ``import_jsonl`` restores them, from an export)."""
        if not isinstance(behavior, Behavior):
            raise ConfigError(f"add() takes a Behavior, got {type(behavior).__name__}")
        behavior = behavior.model_copy(update={"stats": BehaviorStats(), "version": 1, "status": Status.ACTIVE,
                                               "note": ""})
        vector = await self._embed_one(behavior.text)  # CPU work, outside the critical section
        async with self._writer():
            await self._apply_pending()
            engine = await self._e()
            same = await self._latest(behavior.name, with_vector=True)
            if same is not None and same.payload.get("category", "strategy") != behavior.category:
                # A strategy and a pitfall never merge: the newcomer takes its category as a suffix (or a number).
                behavior = await self._free_name(behavior)
                same = None
            if same is not None:
                return await self._merge(same, behavior, f"merged a new {behavior.name}")
            if dedup:
                hits = await engine.query(vector, _LIVE, None, 5, None, self.hnsw_ef)
                for hit in hits:
                    if hit.payload.get("category", "strategy") != behavior.category:
                        continue
                    existing_name = str(hit.payload.get("name", ""))
                    similar_name = difflib.SequenceMatcher(None, existing_name, behavior.name).ratio()
                    if hit.score >= self.dedup_threshold or (similar_name >= self.name_similarity and hit.score >= 0.75):
                        target = await self._latest(existing_name, with_vector=True)
                        assert target is not None
                        return await self._merge(
                            target, behavior, f"merged {behavior.name} (cosine {hit.score:.3f}, name {similar_name:.2f})")
            now = _now()
            stored = behavior.model_copy(update={"version": 1, "created_at": now, "updated_at": now,
                                                 "status": Status.ACTIVE})
            await self._write_version(None, stored, vector)
            await self._enforce_capacity()
            return stored

    async def _free_name(self, behavior: Behavior) -> Behavior:
        """``behavior`` renamed ``<name>_<category>`` (then ``_2``, ``_3``, ...) to a name no entry has."""
        base = f"{behavior.name}_{behavior.category}"[:MAX_NAME_CHARS - 4]
        candidate, n = base, 1
        while await self._latest(candidate) is not None:
            n += 1
            candidate = f"{base}_{n}"
        return behavior.model_copy(update={"name": candidate})

    async def _merge(self, target: Record, incoming: Behavior, note: str) -> Behavior:
        old = self._behavior(target)
        provenance = old.provenance + tuple(p for p in incoming.provenance if p not in old.provenance)
        merged = old.model_copy(update={
            "version": old.version + 1, "updated_at": _now(), "note": note, "provenance": provenance,
            "topics": tuple(dict.fromkeys(old.topics + incoming.topics)), "stats": old.stats.plus(incoming.stats),
        })
        merged = Behavior.model_validate(merged.model_dump())
        assert target.vector is not None
        return await self._write_version(target, merged, target.vector)

    async def _enforce_capacity(self) -> None:
        engine = await self._e()
        active = await engine.count({**_LATEST, "status": "active"})
        if active <= self.max_active:
            return
        records = await engine.scroll({**_LATEST, "status": "active"}, with_vector=True)
        ranked = sorted(records, key=lambda r: (self._behavior(r).stats.utility, r.payload.get("updated_at", "")))
        for record in ranked[: active - self.max_active]:
            old = self._behavior(record)
            await self._new_version(record, {"status": Status.PRUNED, "note": f"pruned: capacity {self.max_active}"})
            _log.info("pruned for capacity", name=old.name, utility=round(old.stats.utility, 3))

    async def _new_version(self, record: Record, changes: Mapping[str, Any], vector: list[float] | None = None
                           ) -> Behavior:
        old = self._behavior(record)
        data = {**old.model_dump(), **changes, "version": old.version + 1, "updated_at": _now()}
        try:
            new = Behavior.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"invalid change to {old.name}: {_explain(exc)}") from None
        if vector is None:
            if record.vector is None:
                [record] = await (await self._e()).retrieve([record.id], with_vector=True)
            vector = record.vector
        assert vector is not None
        return await self._write_version(record, new, vector)

    @tracing.traced("agentkit.handbook.update",
                    lambda b: {"agentkit.behaviors": [b.name], "agentkit.version": b.version})
    async def update(self, name: str, **changes: Any) -> Behavior:
        """Write a new version with ``changes`` (instruction, topics, status, provenance, note); the old stays."""
        allowed = {"instruction", "topics", "status", "provenance", "note"}
        unknown = set(changes) - allowed
        if unknown:
            raise ConfigError(f"update() can change {', '.join(sorted(allowed))}, not {', '.join(sorted(unknown))}")
        vector = None
        if "instruction" in changes:
            if not is_behavior_name(name):
                raise BehaviorNotFound(f"no behavior named {name!r}")
            try:
                probe = Behavior(name=name, instruction=changes["instruction"])
            except ValidationError as exc:
                raise ConfigError(f"invalid change to {name}: {_explain(exc)}") from None
            vector = await self._embed_one(probe.text)
        async with self._writer():
            await self._apply_pending()
            record = await self._latest(name, with_vector=vector is None)
            if record is None:
                raise BehaviorNotFound(f"no behavior named {name!r}; add() it first")
            return await self._new_version(record, changes, vector)

    async def rollback(self, name: str, version: int) -> Behavior:
        """A new version equal to ``version`` (instruction, topics, status), keeping the current statistics."""
        async with self._writer():
            await self._apply_pending()
            record = await self._latest(name)
            if record is None:
                raise BehaviorNotFound(f"no behavior named {name!r}")
            found = await (await self._e()).retrieve([_point_id(name, version)], with_vector=True)
            if not found:
                raise BehaviorNotFound(f"{name} has no version {version}")
            target = self._behavior(found[0])
            changes = {"instruction": target.instruction, "topics": target.topics, "status": target.status,
                       "provenance": target.provenance, "note": f"rollback to version {version}"}
            return await self._new_version(record, changes, found[0].vector)

    async def deprecate(self, name: str, reason: str = "") -> Behavior:
        return await self.update(name, status=Status.DEPRECATED, note=f"deprecated{': ' + reason if reason else ''}")

    async def restore(self, name: str) -> Behavior:
        """Undo a prune or deprecation (a new, active version)."""
        return await self.update(name, status=Status.ACTIVE, note="restored")

    # -- usage -------------------------------------------------------------------------------------
    async def record_usage(self, name: str, event: str, count: int = 1) -> None:
        """Count a usage event (``retrieved``, ``cited``, ``cited_correct``, ``cited_wrong``).

        Acknowledged means durable: when this returns, the event is on disk. For the embedded store it is
        appended to the store's usage journal (``usage.journal``: one write, no model of the batch lost to a
        kill -9) and applied to the behaviors in batches of ``usage_batch`` and before any read; a store
        opened after a crash replays the journal exactly once (each behavior remembers the last journal entry
        applied to it). Other engines apply each event before returning. Events for a name the store does not
        have are dropped when applied (logged, counted in ``dropped_usage``)."""
        if event not in USAGE_EVENTS:
            raise ConfigError(f"unknown usage event {event!r}; use one of {', '.join(USAGE_EVENTS)}")
        if count < 1:
            raise ConfigError(f"count must be >= 1, got {count}")
        if self._engine is None:
            await self.open()
        # No await between reading and writing the buffer: concurrent callers cannot lose an increment.
        self._seq += 1
        if self._journal is not None:
            self._journal.write(json.dumps({"seq": self._seq, "name": name, "event": event, "count": count}) + "\n")
            self._journal.flush()  # in the OS before acknowledging: survives the process being killed
        self._pending.setdefault(name, Counter())[event] += count
        self._pending_seq[name] = self._seq
        self._pending_count += count
        if self._journal is None or self._pending_count >= self.usage_batch:
            await self.flush_usage()

    async def record_usage_many(self, events: Iterable[tuple[str, str]]) -> None:
        for name, event in events:
            await self.record_usage(name, event)

    async def flush_usage(self) -> None:
        """Apply buffered usage events now."""
        if not self._pending:
            return
        async with self._writer():
            await self._apply_pending()

    async def _apply_pending(self) -> None:
        """Caller holds the lock."""
        if not self._pending:
            return
        pending, seqs = self._pending, self._pending_seq
        self._pending, self._pending_seq, self._pending_count = {}, {}, 0
        await self._apply_counts(pending, seqs)
        await self._truncate_journal()

    async def _apply_counts(self, counts_by_name: Mapping[str, Counter[str]], seqs: Mapping[str, int]) -> None:
        engine = await self._e()
        now = _now()
        for name, counts in counts_by_name.items():
            record = await self._latest(name)
            if record is None:
                self.dropped_usage += sum(counts.values())
                _log.warning("usage for an unknown behavior dropped", name=name, events=dict(counts))
                continue
            stats = self._behavior(record).stats
            delta = BehaviorStats(**{e: counts.get(e, 0) for e in USAGE_EVENTS}, last_used=now)
            await engine.set_payload(record.id, {"stats": stats.plus(delta).model_dump(mode="json"),
                                                 "usage_seq": seqs.get(name, 0)})

    # -- the usage journal (embedded store) --------------------------------------------------------
    @property
    def _journal_path(self) -> Path | None:
        return self.path / "usage.journal" if self.path is not None else None

    async def _replay_journal(self) -> None:
        """Apply what a crash left in the journal (each entry once), then start an empty one."""
        path = self._journal_path
        if path is None:
            return
        [meta] = await (await self._e()).retrieve([_META_ID])
        self._seq = int(meta.payload.get("usage_seq", 0))
        entries: list[dict[str, Any]] = []
        if path.exists():
            for line in (await asyncio.to_thread(path.read_text, "utf-8")).splitlines():
                try:
                    entry = json.loads(line)
                    entries.append({"seq": int(entry["seq"]), "name": str(entry["name"]),
                                    "event": str(entry["event"]), "count": int(entry["count"])})
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut by the crash was never acknowledged
        if entries:
            self._seq = max(self._seq, *(e["seq"] for e in entries))
            counts: dict[str, Counter[str]] = {}
            seqs: dict[str, int] = {}
            for name in {e["name"] for e in entries}:
                record = await self._latest(name)
                done = int(record.payload.get("usage_seq", 0)) if record is not None else 0
                for e in entries:
                    if e["name"] == name and e["seq"] > done and e["event"] in USAGE_EVENTS:
                        counts.setdefault(name, Counter())[e["event"]] += e["count"]
                        seqs[name] = max(seqs.get(name, 0), e["seq"])
            async with self._lock:
                await self._apply_counts(counts, seqs)
            _log.info("usage journal replayed", store=str(self.path), entries=len(entries))
        self._journal = await asyncio.to_thread(path.open, "a", encoding="utf-8")
        async with self._lock:
            await self._truncate_journal()

    async def _truncate_journal(self) -> None:
        """Everything journaled is applied: remember the last sequence number, then empty the journal."""
        if self._journal is None:
            return
        await (await self._e()).set_payload(_META_ID, {"usage_seq": self._seq})
        self._journal.truncate(0)
        self._journal.seek(0)

    # -- reads -------------------------------------------------------------------------------------
    async def get(self, name: str, version: int | None = None) -> Behavior:
        await self.flush_usage()
        if version is None:
            record = await self._latest(name)
        else:
            found = await (await self._e()).retrieve([_point_id(name, version)])
            record = found[0] if found else None
        if record is None:
            raise BehaviorNotFound(f"no behavior named {name!r}" + (f" with version {version}" if version else ""))
        return self._behavior(record)

    async def history(self, name: str) -> list[Behavior]:
        await self.flush_usage()
        records = await (await self._e()).scroll({**_BEHAVIOR, "name": name})
        if not records:
            raise BehaviorNotFound(f"no behavior named {name!r}")
        return sorted((self._behavior(r) for r in records), key=lambda b: b.version)

    async def list_behaviors(self, *, status: str | Sequence[str] | None = "active") -> list[Behavior]:
        """Latest versions (of the given status or statuses; None for all), by name."""
        await self.flush_usage()
        where: dict[str, Any] = dict(_LATEST)
        if status is not None:
            where["status"] = status
        return sorted((self._behavior(r) for r in await (await self._e()).scroll(where)), key=lambda b: b.name)

    @tracing.traced("agentkit.handbook.search", lambda hits: {"agentkit.behaviors": [h.behavior.name for h in hits],
                                                             "agentkit.scores": [round(h.score, 4) for h in hits]})
    async def search(self, query: str, k: int = 5, *, topics: Sequence[str] | None = None,
                     min_score: float | None = None, include_inactive: bool = False) -> list[SearchHit]:
        """The ``k`` behaviors closest to ``query`` (cosine), optionally only with one of ``topics``."""
        if not isinstance(query, str) or not query.strip():
            raise ConfigError("search() needs a non-empty query")
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        await self.flush_usage()
        vector = await self._embed_one(query)
        return await self.search_vector(vector, k, topics=topics, min_score=min_score,
                                        include_inactive=include_inactive)

    async def search_vector(self, vector: Sequence[float], k: int = 5, *, topics: Sequence[str] | None = None,
                            min_score: float | None = None, include_inactive: bool = False) -> list[SearchHit]:
        """``search`` with a query vector made by this store's embedder (a caller that embeds its queries in
        batches, or reuses one embedding for several searches). Usage events still buffered are not applied
        first (``search`` does that)."""
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        if len(vector) != self.embedder.dim:
            raise EmbedderMismatch(f"a {len(vector)}-d query vector for a store of {self.embedder.dim}-d vectors")
        where: dict[str, Any] = dict(_LATEST if include_inactive else _LIVE)
        if topics:
            where["topics"] = list(topics)
        records = await (await self._e()).query(list(vector), where, None, k, min_score, self.hnsw_ef)
        return [SearchHit(behavior=self._behavior(r), score=r.score) for r in records]

    async def by_topic(self, topic: str, k: int = 40) -> list[Behavior]:
        """Up to ``k`` active behaviors with ``topic``, most useful first (the paper's MATH setting)."""
        await self.flush_usage()
        records = await (await self._e()).scroll({**_LIVE, "topics": topic})
        ranked = sorted((self._behavior(r) for r in records), key=lambda b: (-b.stats.utility, b.name))
        return ranked[:k]

    async def optimize(self) -> bool:
        """Build the embedded engine's HNSW index now and wait for it (Qdrant Edge only; a server indexes by
        itself). The store also does this by itself, in the background, once ``exact_below`` vectors are
        unindexed. The build runs in a child process on a copy of the store: searches and writes go on while it
        runs (about a minute at 100k behaviors on 2 cores). Returns whether anything was indexed."""
        return await (await self._e()).optimize()

    async def count(self, *, status: str | None = "active") -> int:
        where: dict[str, Any] = dict(_LATEST)
        if status is not None:
            where["status"] = status
        return await (await self._e()).count(where)

    # -- curation ----------------------------------------------------------------------------------
    async def prune(self, policy: PrunePolicy, *, dry_run: bool = True, now: datetime | None = None
                    ) -> list[PruneDecision]:
        """Decide (and unless ``dry_run``, apply) which active behaviors to prune, and why. Applying writes a
        new ``pruned`` version, which ``restore`` undoes; only ``compact`` deletes."""
        async with self._writer():
            await self._apply_pending()
            records = {self._behavior(r).name: r for r in await (await self._e()).scroll({**_LATEST, "status": "active"})}
            decisions = _decide(policy, [self._behavior(r) for r in records.values()], now or _now())
            if not dry_run:
                for decision in decisions:
                    await self._new_version(records[decision.name],
                                            {"status": Status.PRUNED, "note": f"pruned: {decision.reason}"})
            return decisions

    async def compact(self) -> int:
        """Delete for real every version of every behavior whose latest version is pruned; returns how many
        behaviors were deleted. Not reversible."""
        async with self._writer():
            await self._apply_pending()
            engine = await self._e()
            pruned = {str(r.payload["name"]) for r in await engine.scroll({**_LATEST, "status": "pruned"})}
            if not pruned:
                return 0
            ids = [r.id for r in await engine.scroll({**_BEHAVIOR, "name": sorted(pruned)})]
            await engine.delete(ids)
            return len(pruned)

    # -- import / export ---------------------------------------------------------------------------
    async def export_jsonl(self, path: str | Path) -> int:
        """Every version of every behavior (with statistics) as JSON Lines; returns the line count."""
        await self.flush_usage()
        records = await (await self._e()).scroll(_BEHAVIOR)
        rows = sorted(records, key=lambda r: (str(r.payload["name"]), int(r.payload["version"])))
        lines = [json.dumps({**self._behavior(r).model_dump(mode="json"), "latest": r.payload.get("latest") == "yes"},
                            sort_keys=True) for r in rows]
        await asyncio.to_thread(Path(path).write_text, "".join(line + "\n" for line in lines), "utf-8")
        return len(lines)

    async def import_jsonl(self, path: str | Path) -> ImportReport:
        """Import an ``export_jsonl`` file exactly (versions, statuses, statistics). The file is validated as a
        whole before anything is written: every line a behavior version (a JSON object), no version twice, and
        exactly one ``latest`` version per behavior, the highest; otherwise nothing is imported and the
        ``ConfigError`` lists every problem. Names already in the store are skipped (reported)."""
        text = await asyncio.to_thread(Path(path).read_text, "utf-8")
        versions: dict[str, list[tuple[Behavior, bool]]] = {}
        problems: list[str] = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError(f"a behavior version is a JSON object, not {type(row).__name__}")
                latest = row.pop("latest", False)
                if not isinstance(latest, bool):
                    raise ValueError("latest must be true or false")
                behavior = Behavior.model_validate(row)
            except ValidationError as exc:
                problems.append(f"line {number}: {_explain(exc)}")
                continue
            except ValueError as exc:  # JSONDecodeError included
                problems.append(f"line {number}: {exc}")
                continue
            versions.setdefault(behavior.name, []).append((behavior, latest))
        for name, items in versions.items():
            numbers = [b.version for b, _ in items]
            latest_versions = [b.version for b, latest in items if latest]
            if len(set(numbers)) != len(numbers):
                problems.append(f"{name}: a version appears twice")
            if len(latest_versions) != 1:
                problems.append(f"{name}: {len(latest_versions)} versions marked latest (exactly one must be)")
            elif latest_versions[0] != max(numbers):
                problems.append(f"{name}: the latest version ({latest_versions[0]}) is not the highest")
        if problems:
            raise ConfigError(f"{path} is not a valid handbook export, nothing was imported: " + "; ".join(problems))
        report = ImportReport()
        for name, items in versions.items():
            vectors = await self.embedder.embed([b.text for b, _ in items])
            async with self._writer():
                if await self._latest(name) is not None:
                    report.skipped[name] = "already in the store"
                    continue
                await (await self._e()).upsert([
                    (_point_id(b.name, b.version), v, self._payload(b, latest))
                    for (b, latest), v in zip(items, vectors, strict=True)])
            report.imported.append(name)
        return report

    async def import_behavior_json(self, data: str | Mapping[str, Any], *, topics: Sequence[str] = (),
                                   provenance: Provenance | None = None) -> ImportReport:
        """Import the plain ``{"behavior_name": "instruction", ...}`` JSON the paper's extraction prompt writes
        (deduplicated like ``add``); invalid entries are reported, never stored."""
        report = ImportReport()
        for name, instruction in parse_behavior_json(data).items():
            try:
                behavior = Behavior(name=str(name), instruction=instruction, topics=tuple(topics),
                                    provenance=(provenance,) if provenance else ())
            except ValidationError as exc:
                report.skipped[str(name)] = _explain(exc)
                continue
            stored = await self.add(behavior)
            report.imported.append(stored.name)
        return report


def parse_behavior_json(data: str | Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``{"behavior_name": "instruction", ...}`` object the paper's extraction prompt writes, from JSON text
    or an already parsed mapping (entries are validated later, one by one)."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError('expected a JSON object {"behavior_name": "instruction", ...}')
    return data


def _explain(exc: ValidationError) -> str:
    return "; ".join(f"{field}: {reason}" for field, reason in validation_problems(exc))


def _decide(policy: PrunePolicy, behaviors: list[Behavior], now: datetime) -> list[PruneDecision]:
    decisions: dict[str, str] = {}
    for b in behaviors:
        s = b.stats
        graded = s.cited_correct + s.cited_wrong
        if policy.unused_after_retrievals is not None and s.retrieved >= policy.unused_after_retrievals and s.cited == 0:
            decisions[b.name] = f"unused: retrieved {s.retrieved} times, never cited"
        elif policy.unused_after_days is not None and s.cited == 0 and \
                now - b.created_at >= timedelta(days=policy.unused_after_days):
            decisions[b.name] = f"unused: never cited in {(now - b.created_at).days} days"
        elif policy.harmful_min_count is not None and graded >= policy.harmful_min_count and \
                s.cited_wrong / graded >= policy.harmful_ratio:
            decisions[b.name] = f"harmful: cited in {s.cited_wrong} wrong of {graded} graded answers"
        elif policy.stale_after_days is not None and \
                now - (s.last_used or b.created_at) >= timedelta(days=policy.stale_after_days):
            decisions[b.name] = f"stale: not used since {(s.last_used or b.created_at).date()}"
    if policy.capacity is not None:
        survivors = sorted((b for b in behaviors if b.name not in decisions),
                           key=lambda b: (-b.stats.utility, b.name))
        for b in survivors[policy.capacity:]:
            decisions[b.name] = f"over capacity {policy.capacity} (utility {b.stats.utility:.3f})"
    by_name = {b.name: b for b in behaviors}
    return [PruneDecision(name=n, reason=r, utility=round(by_name[n].stats.utility, 4))
            for n, r in sorted(decisions.items())]
