"""The sweep's results database: SQLite in WAL mode, one row per finished cell, keyed by the cell.

A row is written once, when its cell finishes (``INSERT OR IGNORE`` on the cell key), in its own
transaction, so a sweep killed at any point (``kill -9`` included) leaves only whole rows; ``resume`` reads
the keys and skips them. ``merge`` copies the rows of shard databases into one (duplicates are ignored).
Each row carries what reproduces it: method parameters, backend description, sampling parameters, prompt
template hash and grader version. Each row also keeps its cell's run for ``agentkit view`` in a ``trace``
column: every call's figures, PDR/SR drafts and workspaces, the behaviors retrieved and cited, the final text
(compact JSON, zlib-compressed, written with the row; ``rows()`` leaves it out, ``trace(key)`` reads it).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from agentkit.errors import ConfigError

__all__ = ["COLUMNS", "GRID_COLUMNS", "ResultsDB", "pack_trace", "unpack_trace"]


def pack_trace(trace: dict[str, Any]) -> bytes:
    """A trace as stored: compact JSON, zlib level 1 (cheap on the writer thread, ~4-8x smaller)."""
    return zlib.compress(json.dumps(trace, separators=(",", ":"), default=str).encode(), 1)


def unpack_trace(blob: bytes) -> dict[str, Any]:
    return dict(json.loads(zlib.decompress(blob)))

COLUMNS: dict[str, str] = {
    "key": "TEXT PRIMARY KEY",
    "sweep": "TEXT",
    "dataset": "TEXT",
    "item_id": "TEXT",
    "method": "TEXT",
    "method_params": "TEXT",
    "backend": "TEXT",
    "backend_info": "TEXT",
    "budget": "INTEGER",
    "seed": "INTEGER",
    "status": "TEXT",
    "error": "TEXT",
    "answer": "TEXT",
    "reference": "TEXT",
    "correct": "INTEGER",
    "grade_status": "TEXT",
    "grader": "TEXT",
    "b_seq": "INTEGER",
    "b_total": "INTEGER",
    "input_tokens": "INTEGER",
    "output_tokens": "INTEGER",
    "answer_output_tokens": "INTEGER",
    "calls": "INTEGER",
    "latency_s": "REAL",
    "prompt_hash": "TEXT",
    "sampling": "TEXT",
    "finished_at": "REAL",
    "extraction": "TEXT",
    "finish_reason": "TEXT",
    "details": "TEXT",
    "budget_kind": "TEXT",
    "handbook": "TEXT",
    "reasoning_tokens": "INTEGER",
}
STORED: dict[str, str] = {**COLUMNS, "trace": "BLOB"}
"""The table's columns: the row's, and its cell's packed run (read by ``trace``, left out of ``rows``)."""
ADDED_COLUMNS = ("extraction", "finish_reason", "details", "budget_kind", "trace", "handbook", "reasoning_tokens")
"""Columns added after the first results databases were written: opening an older database adds them (NULL)."""


# A rerun of a failed cell replaces its failed row (and only a failed row: a finished cell is never overwritten).
# Columns are named: an older database that gained columns has them in another order than STORED.
_RETRY = (f"INSERT INTO results ({', '.join(STORED)}) VALUES ({', '.join(f':{name}' for name in STORED)}) "
          "ON CONFLICT(key) DO UPDATE SET "
          + ", ".join(f"{name}=excluded.{name}" for name in STORED if name != "key")
          + " WHERE results.status != 'ok' AND excluded.finished_at > results.finished_at")
TRANSIENT_ERRORS = ("BackendUnavailable", "MalformedResponse", "RequestTimeout", "WorkerLost")
"""Failed cells whose error is one of these are rerun by a resume by default (the others, a budget too small
or a request the server refused, fail the same way again; ``retry="all"`` reruns them too)."""


GRID_COLUMNS = ("key", "dataset", "item_id", "method", "backend", "budget", "budget_kind", "seed")
"""A grid cell as the ``grid`` table keeps it: every cell a sweep that wrote this database set out to run."""
_GRID_SCHEMA = ("CREATE TABLE IF NOT EXISTS grid (key TEXT PRIMARY KEY, dataset TEXT, item_id TEXT, method TEXT, "
                "backend TEXT, budget INTEGER, budget_kind TEXT, seed INTEGER)",
                "CREATE TABLE IF NOT EXISTS specs (hash TEXT PRIMARY KEY, name TEXT, spec TEXT, recorded_at REAL)")


class ResultsDB:
    """``ResultsDB(path)``; ``write(row)``, ``finished_keys()``, ``rows()``, ``merge(paths)``."""

    def __init__(self, path: str | Path, *, create: bool = True, readonly: bool = False) -> None:
        """Open (``create``: or create) the results database at ``path``; a path that is a directory, a file
        that is not SQLite, or (without ``create``) a missing file is a ``ConfigError`` saying so. ``readonly``
        opens an existing database without changing it (no column is added: ``rows()`` fills the missing ones
        with None), as the viewer does."""
        self.path = Path(path)
        self.readonly = readonly
        if self.path.is_dir():
            raise ConfigError(f"{self.path} is a directory, not a results database")
        if (readonly or not create) and not self.path.is_file():
            raise ConfigError(f"no results database at {self.path}")
        if readonly:
            self._open_readonly()
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open a results database at {self.path}: {exc}") from None
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            columns = ", ".join(f"{name} {kind}" for name, kind in STORED.items())
            self._conn.execute(f"CREATE TABLE IF NOT EXISTS results ({columns})")
            for schema in _GRID_SCHEMA:
                self._conn.execute(schema)
            have = {r[1] for r in self._conn.execute("PRAGMA table_info(results)")}
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise ConfigError(f"{self.path} is not a sweep results database ({exc})") from None
        for name in ADDED_COLUMNS:
            if name not in have and "key" in have:
                self._conn.execute(f"ALTER TABLE results ADD COLUMN {name} {STORED[name]}")
                have.add(name)
        if missing := set(COLUMNS) - have:
            self._conn.close()
            raise ConfigError(f"{self.path} is not a sweep results database (missing {', '.join(sorted(missing))})")
        self._have = set(COLUMNS)
        self._traces = True

    def _open_readonly(self) -> None:
        try:
            # the path as a file: URI (``?``, ``#`` and ``%`` in a name escaped, never spliced into the query)
            self._conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False,
                                         isolation_level=None, timeout=30)
            have = {r[1] for r in self._conn.execute("PRAGMA table_info(results)")}
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path} is not a sweep results database ({exc})") from None
        if not {"key", "status", "method", "item_id"} <= have:
            self._conn.close()
            raise ConfigError(f"{self.path} is not a sweep results database")
        self._have = have & set(COLUMNS)
        self._traces = "trace" in have

    def write(self, row: dict[str, Any]) -> bool:
        """Insert one finished cell; False if its key was already there (nothing is duplicated)."""
        return self.write_many([row]) == 1

    def write_many(self, rows: list[dict[str, Any]]) -> int:
        """Insert finished cells in one transaction (all or none survive a crash); returns how many were new."""
        if not rows:
            return 0
        now = time.time()
        values = []
        for row in rows:
            v = {name: row.get(name) for name in COLUMNS}
            trace = row.get("trace")
            v["trace"] = pack_trace(trace) if isinstance(trace, dict) else trace
            for name in ("method_params", "backend_info", "sampling", "details", "handbook"):
                if not isinstance(v[name], (str, type(None))):
                    v[name] = json.dumps(v[name], sort_keys=True)
            v["finished_at"] = v["finished_at"] or now
            values.append(v)
        before = self._conn.total_changes
        with self._conn:  # BEGIN ... COMMIT (ROLLBACK on error)
            self._conn.execute("BEGIN")
            self._conn.executemany(_RETRY, values)
        return self._conn.total_changes - before

    def finished_keys(self, *, retry: str = "transient") -> set[str]:
        """Keys of the cells a run skips: every ok cell, and the failed ones that are not to be rerun
        (``retry``: ``"transient"`` reruns cells that failed for a transient reason, ``"all"`` every failed
        cell, ``"none"`` none)."""
        if retry not in {"transient", "all", "none"}:
            raise ConfigError(f"retry must be transient, all or none, got {retry!r}")
        keys: set[str] = set()
        for key, status, error in self._conn.execute("SELECT key, status, error FROM results"):
            if status == "ok" or retry == "none":
                keys.add(key)
            elif retry == "transient" and not str(error or "").startswith(TRANSIENT_ERRORS):
                keys.add(key)
        return keys

    def record_spec(self, name: str, spec_json: str, cells: Iterable[Mapping[str, Any]]) -> str:
        """Keep the spec a sweep runs (its JSON and that JSON's hash) and every cell of its grid (``GRID_COLUMNS``),
        so a report knows which cells should have a row; returns the spec's hash. A resume records nothing new;
        a database that several specs (or shards) ran into keeps the union of their grids."""
        digest = hashlib.sha256(spec_json.encode()).hexdigest()[:16]
        values = (tuple(cell[c] for c in GRID_COLUMNS) for cell in cells)  # streamed: a grid may be large
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.execute("INSERT OR IGNORE INTO specs VALUES (?, ?, ?, ?)", (digest, name, spec_json, time.time()))
            self._conn.executemany(f"INSERT OR IGNORE INTO grid VALUES ({', '.join('?' * len(GRID_COLUMNS))})", values)
        return digest

    def specs(self) -> list[dict[str, Any]]:
        """The specs recorded (``hash``, ``name``, ``spec`` JSON, ``recorded_at``), oldest first; [] for a database
        written before agentkit recorded them."""
        if not self._has_table("specs"):
            return []
        cursor = self._conn.execute("SELECT hash, name, spec, recorded_at FROM specs ORDER BY recorded_at")
        return [dict(zip(("hash", "name", "spec", "recorded_at"), r, strict=True)) for r in cursor]

    def grid(self) -> list[dict[str, Any]] | None:
        """Every cell the recorded specs set out to run, or None when the database recorded no grid (written
        before agentkit recorded one: its report can only count the rows it has)."""
        if not self._has_table("grid"):
            return None
        cells = [dict(zip(GRID_COLUMNS, r, strict=True))
                 for r in self._conn.execute(f"SELECT {', '.join(GRID_COLUMNS)} FROM grid ORDER BY key")]
        return cells or None

    def _has_table(self, name: str) -> bool:
        return self._conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                  (name,)).fetchone() is not None

    def failed_count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM results WHERE status != 'ok'").fetchone()[0])

    def count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def rows(self) -> Iterator[dict[str, Any]]:
        names = [c for c in COLUMNS if c in self._have]
        cursor = self._conn.execute(f"SELECT {', '.join(names)} FROM results ORDER BY key")
        for values in cursor:
            row = dict.fromkeys(COLUMNS)
            row.update(zip(names, values, strict=True))
            yield row

    def row(self, key: str) -> dict[str, Any] | None:
        names = [c for c in COLUMNS if c in self._have]
        values = self._conn.execute(f"SELECT {', '.join(names)} FROM results WHERE key = ?", (key,)).fetchone()
        if values is None:
            return None
        row = dict.fromkeys(COLUMNS)
        row.update(zip(names, values, strict=True))
        return row

    def trace(self, key: str) -> dict[str, Any] | None:
        """A cell's stored run (``agentkit view``), or None (none was stored: an older database)."""
        if not self._traces:
            return None
        found = self._conn.execute("SELECT trace FROM results WHERE key = ?", (key,)).fetchone()
        return unpack_trace(found[0]) if found and found[0] is not None else None

    def merge(self, others: Iterable[str | Path]) -> int:
        """Copy every row of the other databases in; returns how many were new."""
        added = 0
        sources = list(others)
        for other in sources:  # every input is checked before anything is merged
            ResultsDB(other, create=False).close()
        for other in sources:
            source = ResultsDB(other, create=False)
            try:
                grid = source.grid() or []  # the shards' grids too: the merged database knows every cell
                for spec in source.specs():
                    self.record_spec(spec["name"], spec["spec"], grid)
                    grid = []
                for row in source.rows():
                    trace = source.trace(row["key"])
                    added += self.write({**row, "trace": trace} if trace is not None else row)
            finally:
                source.close()
        return added

    def close(self) -> None:
        self._conn.close()
