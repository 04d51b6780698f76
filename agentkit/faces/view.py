"""``agentkit view DB``: a local, read-only web page for a sweep's results database.

The page shows the report (the summary table with its intervals, the paired comparisons and the accuracy-vs-
tokens plot with its Pareto front, from ``agentkit.sweep.report``), the cells with filters by dataset,
method, budget and outcome (correct, wrong, failed), and for each cell its run: problem, reference, answer
and how it was extracted, the final text, PDR/SR rounds with every draft and workspace, the behaviors retrieved
and cited, and every call's tokens and latency (the runs the sweep stores with its rows; older databases have none).

Served by aiohttp on 127.0.0.1 (``--host`` to change), read-only (the database is opened with SQLite's
``mode=ro``, its path escaped as a ``file:`` URI, never spliced into one), one self-contained page with no
external assets, so it works offline. Text from the database is put into the page as text (``textContent``),
never as markup.

Only its user reads it: a request whose ``Host`` is not this machine's loopback name and port is 421 and one
from another page's ``Origin`` 403 (the DNS-rebinding guard, ``agentkit.faces.web.foreign_host``); with
``--token`` (generated when ``--host`` is not a loopback address) only the printed URL's ``?token=`` opens it.
Any results database opens: rows with values it cannot place (no key, a budget that is not a number) are left
out and counted. The page shows when its data was loaded; a sweep that writes to the database meanwhile is
noticed (``/api/status``) and the page offers the new results.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
import sqlite3
import time
import zlib
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from agentkit.errors import ConfigError
from agentkit.evaluation.answers import extract_strict
from agentkit.evaluation.datasets import numeric_answers
from agentkit.faces.web import (
    FaceError,
    agentkit_errors,
    face_middleware,
    json_response,
    start_site,
)
from agentkit.sweep.db import COLUMNS, ResultsDB
from agentkit.sweep.report import _plot, budget_label, compare, paired_items, summarise

__all__ = ["Viewer", "create_view_app", "run_view_runner"]

_KEY = re.compile(r"[0-9a-f]{32}")
PAGE = (resources.files("agentkit.faces") / "view.html").read_text(encoding="utf-8")
"""The viewer's one page (package data: HTML, CSS and script; it reads the JSON API below)."""
_OUTCOMES = ("all", "correct", "wrong", "failed", "ungraded")
MAX_LIMIT = 500
SORTS = ("item_id", "method", "budget", "seed", "outcome", "answer", "reference", "b_seq", "b_total", "calls",
         "latency_s")
"""The columns the cells table sorts by."""
STATIC = {"temml.min.js": "text/javascript", "Temml-Local.css": "text/css", "Temml.woff2": "font/woff2"}
"""The page's assets, shipped with the package: Temml (MIT, ``static/LICENSE-temml.txt``) renders the LaTeX of
problems and drafts as MathML, offline."""
EXTRACTIVE = ("topk", "topk-per-sample", "random-k")
"""PDR variants whose workspace is drafts' text (its token count an estimate, not a call's usage)."""


def _parse(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _outcome(row: dict[str, Any]) -> str:
    if row["status"] != "ok":
        return "failed"
    if row["correct"] is None:
        return "ungraded"
    return "correct" if row["correct"] else "wrong"


_TEXT = ("key", "sweep", "dataset", "item_id", "method", "backend", "status", "error", "answer", "reference",
         "extraction", "finish_reason", "budget_kind", "grade_status")
_NUMBERS = {name: kind for name, kind in COLUMNS.items() if kind in ("INTEGER", "REAL")}


def _clean(row: dict[str, Any]) -> dict[str, Any] | None:
    """A row as the viewer uses it, whatever agentkit version or hand wrote it: numbers as numbers (or None),
    text as text; None for a row it cannot place (no key or method, or a budget that is not a number)."""
    out = dict(row)
    for name, kind in _NUMBERS.items():
        value = row.get(name)
        if value is None or isinstance(value, bool):
            out[name] = None if value is None else int(value)
            continue
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            number = math.nan
        if not math.isfinite(number) or abs(number) > 2**53:
            out[name] = None
        else:
            out[name] = int(number) if kind == "INTEGER" and number.is_integer() else number
    for name in _TEXT:
        value = row.get(name)
        out[name] = value if isinstance(value, str) or value is None else str(value)
    if not out["key"] or not out["method"] or not isinstance(out["budget"], int) or not 0 < out["budget"] <= 10**9:
        return None
    out["dataset"], out["backend"], out["item_id"] = out["dataset"] or "", out["backend"] or "", out["item_id"] or ""
    out["status"] = out["status"] or "failed"
    out["correct"] = None if out["correct"] is None else bool(out["correct"])
    kind = out["budget_kind"] if out["budget_kind"] in ("sequential", "output") else "sequential"
    out["budget_kind"] = kind
    out["budget_label"] = budget_label(kind, int(out["budget"]))
    out["outcome"] = _outcome(out)
    return out


def _signature(path: Path) -> tuple[int, ...]:
    """What changes when a sweep writes to the database: its file and its WAL (an empty WAL, which a reader
    opening the database creates, counts as none)."""
    sig: list[int] = []
    for file in (path, path.with_name(path.name + "-wal")):
        try:
            stat = file.stat()
        except OSError:
            sig += [0, 0]
            continue
        sig += [stat.st_mtime_ns, stat.st_size] if stat.st_size else [0, 0]
    return tuple(sig)


class Viewer:
    """A results database loaded for viewing: its rows in memory, the report computed once per load; a database
    that changed since (a sweep still running) is loaded again when the page asks for its summary."""

    def __init__(self, db_path: str | Path) -> None:
        self.path = Path(db_path)
        self._summary: dict[str, Any] | None = None
        self._lock = asyncio.Lock()
        self._load()

    def _load(self) -> None:
        signature = _signature(self.path)
        db = ResultsDB(self.path, create=False, readonly=True)
        try:
            raw = list(db.rows())
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path} cannot be read as a results database ({exc})") from None
        finally:
            db.close()
        cleaned = [_clean(row) for row in raw]
        self.rows = [row for row in cleaned if row is not None]
        self.skipped = len(cleaned) - len(self.rows)
        """Rows left out: no key, no method or a budget that is not a number (written by hand or damaged)."""
        self._by_key = {row["key"]: row for row in self.rows}
        self.loaded_at = time.time()
        self._signature = signature
        self._summary = None

    @property
    def changed(self) -> bool:
        """Whether the database was written since it was loaded."""
        return _signature(self.path) != self._signature

    def status(self) -> dict[str, Any]:
        return {"db": self.path.name, "cells": len(self.rows), "skipped": self.skipped, "loaded_at": self.loaded_at,
                "changed": self.changed}

    def _compute_summary(self) -> dict[str, Any]:
        groups = summarise(self.rows)
        plots = {}
        for dataset in sorted({g["dataset"] for g in groups}):
            png = _plot(dataset, [g for g in groups if g["dataset"] == dataset], "B_seq")
            plots[dataset] = base64.b64encode(png).decode()
        return {
            **self.status(), "groups": groups, "comparisons": compare(self.rows), "plots": plots,
            "filters": {"dataset": sorted({r["dataset"] for r in self.rows}),
                        "method": sorted({r["method"] for r in self.rows}),
                        "budget": sorted({r["budget_label"] for r in self.rows}), "outcome": list(_OUTCOMES)},
        }

    async def summary(self) -> dict[str, Any]:
        """The report of the rows, the database loaded again first if a sweep wrote to it since."""
        async with self._lock:
            if self.changed:
                await asyncio.to_thread(self._load)
            if self._summary is None:
                self._summary = await asyncio.to_thread(self._compute_summary)
            return self._summary

    def cells(self, *, dataset: str = "", method: str = "", budget: str = "", outcome: str = "all",
              offset: int = 0, limit: int = 100, q: str = "", sort: str = "", desc: bool = False) -> dict[str, Any]:
        """One page of the cells that match the filters (``q``: part of the item id, any case), sorted by
        ``sort`` (one of ``SORTS``; empty values last either way)."""
        needle = q.strip().lower()
        chosen = [r for r in self.rows
                  if (not dataset or r["dataset"] == dataset) and (not method or r["method"] == method)
                  and (not budget or r["budget_label"] == budget) and (outcome == "all" or r["outcome"] == outcome)
                  and (not needle or needle in r["item_id"].lower())]
        if sort:
            def order(r: dict[str, Any]) -> tuple[int, Any]:
                value = r.get(sort)
                if value is None or value == "":
                    return (1, 0)
                number = _number(value)
                return (0, (0, number, "") if number is not None else (1, 0, str(value)))
            present = [r for r in chosen if order(r)[0] == 0]
            present.sort(key=order, reverse=desc)
            chosen = present + [r for r in chosen if order(r)[0] == 1]
        page = chosen[offset:offset + limit]
        fields = ("key", "dataset", "item_id", "method", "budget_label", "seed", "outcome", "answer", "reference",
                  "extraction", "finish_reason", "b_seq", "b_total", "calls", "latency_s", "error")
        return {"total": len(chosen), "offset": offset, "rows": [{f: r.get(f) for f in fields} for r in page]}

    def pairs(self, *, dataset: str, backend: str, budget_kind: str, budget: int, a: str, b: str) -> dict[str, Any]:
        """The items a paired comparison won, lost and tied (``agentkit.sweep.report.paired_items``), with the
        cells of both methods on each."""
        return paired_items(self.rows, (dataset, backend, budget_kind, budget), a, b)

    def cell(self, key: str) -> dict[str, Any] | None:
        row = self._by_key.get(key)
        if row is None:
            return None
        db = ResultsDB(self.path, create=False, readonly=True)
        try:
            trace = db.trace(key)
        except (sqlite3.DatabaseError, TypeError, ValueError, zlib.error):
            trace = None  # a damaged trace: the row still shows
        finally:
            db.close()
        full = {k: _parse(v) for k, v in row.items()}
        siblings = [{"key": r["key"], "method": r["method"], "outcome": r["outcome"]} for r in self.rows
                    if r["key"] != key and (r["dataset"], r["item_id"], r["budget"], r["budget_kind"], r["seed"],
                                            r["backend"]) == (row["dataset"], row["item_id"], row["budget"],
                                                              row["budget_kind"], row["seed"], row["backend"])]
        found = trace if isinstance(trace, dict) else None
        given = full.get("method_params")
        params: dict[str, Any] = given if isinstance(given, dict) else {}
        return {"row": full, "trace": found, "siblings": siblings,
                "drafts": _draft_answers(found, row["dataset"]) if found else [],
                "workspace_tokens": "estimated" if params.get("variant") in EXTRACTIVE else "counted"}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _draft_answers(trace: dict[str, Any], dataset: str) -> list[dict[str, Any]]:
    """Each draft's answer under the sweep's own extraction rule (``extract_strict``, GSM8K's final-number rule
    for the GSM8K datasets), and how it was found; None where the rule finds none (a draft whose last number sits
    in its code states no answer)."""
    out = []
    for draft in trace.get("drafts") or []:
        try:
            text, finish = str(draft[5]), str(draft[3] or "stop")
        except (IndexError, TypeError):
            out.append({"answer": None, "how": "none"})
            continue
        answer, how = extract_strict(text, finish_reason=finish, final_number=numeric_answers(dataset))
        out.append({"answer": answer, "how": how})
    return out


VIEWER_KEY: web.AppKey[Viewer] = web.AppKey("viewer", Viewer)


def _bad(message: str) -> FaceError:
    return FaceError(400, message)


async def _index(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html", charset="utf-8",
                        headers={"Content-Security-Policy": "default-src 'none'; script-src 'self' 'unsafe-inline'; "
                                                            "style-src 'self' 'unsafe-inline'; img-src data:; "
                                                            "font-src 'self'; connect-src 'self'"})


async def _static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC:
        raise FaceError(404, f"no asset {name!r}")
    body = (resources.files("agentkit.faces") / "static" / name).read_bytes()
    return web.Response(body=body, content_type=STATIC[name], headers={"Cache-Control": "max-age=86400"})


async def _pairs(request: web.Request) -> web.Response:
    q = request.query
    try:
        budget = int(q.get("budget", ""))
    except ValueError:
        raise _bad("budget must be an integer") from None
    missing = [k for k in ("dataset", "backend", "a", "b") if not q.get(k)]
    if missing:
        raise _bad(f"{', '.join(missing)} required (a comparison of /api/summary names them)")
    kind = q.get("budget_kind", "sequential")
    out = request.app[VIEWER_KEY].pairs(dataset=q["dataset"], backend=q["backend"], budget_kind=kind, budget=budget,
                                        a=q["a"], b=q["b"])
    return json_response(out)


async def _status(request: web.Request) -> web.Response:
    return json_response(request.app[VIEWER_KEY].status())


async def _summary(request: web.Request) -> web.Response:
    return json_response(await request.app[VIEWER_KEY].summary())


async def _cells(request: web.Request) -> web.Response:
    q = request.query
    outcome = q.get("outcome", "all")
    if outcome not in _OUTCOMES:
        raise _bad(f"outcome must be one of {', '.join(_OUTCOMES)}")
    try:
        offset, limit = int(q.get("offset", "0")), int(q.get("limit", "100"))
    except ValueError:
        raise _bad("offset and limit must be integers") from None
    if offset < 0 or not 1 <= limit <= MAX_LIMIT:
        raise _bad(f"offset must be >= 0 and limit 1-{MAX_LIMIT}")
    sort = q.get("sort", "")
    if sort and sort not in SORTS:
        raise _bad(f"sort must be one of {', '.join(SORTS)}")
    out = request.app[VIEWER_KEY].cells(dataset=q.get("dataset", ""), method=q.get("method", ""),
                                        budget=q.get("budget", ""), outcome=outcome, offset=offset, limit=limit,
                                        q=q.get("q", "")[:200], sort=sort, desc=q.get("desc", "") in ("1", "true"))
    return json_response(out)


async def _cell(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    found = request.app[VIEWER_KEY].cell(key) if _KEY.fullmatch(key) else None
    if found is None:
        raise FaceError(404, f"no cell {key!r}")
    return json_response(found)


def create_view_app(viewer: Viewer, *, token: str | None = None) -> web.Application:
    """The read-only aiohttp application of ``viewer`` (GET only). It answers only requests for this machine's
    loopback names (421 for another ``Host``, 403 for another page's ``Origin``: a DNS-rebinding page cannot read
    a user's results) and, with ``token``, only a browser that opened the URL with ``?token=`` (kept in a cookie)
    or a client with the bearer token."""
    app = web.Application(middlewares=[face_middleware(errors=agentkit_errors, token=token, protected=lambda _: True,
                                                       local_only=True, browser=True)])
    app[VIEWER_KEY] = viewer
    app.router.add_get("/", _index)
    app.router.add_get("/api/status", _status)
    app.router.add_get("/api/summary", _summary)
    app.router.add_get("/api/cells", _cells)
    app.router.add_get("/api/cells/{key}", _cell)
    app.router.add_get("/api/pairs", _pairs)
    app.router.add_get("/static/{name}", _static)
    return app


async def run_view_runner(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Start ``app`` at ``host:port``; returns the runner and the page's URL."""
    runner, url = await start_site(app, host, port)
    return runner, f"{url}/"
