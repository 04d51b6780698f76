"""``agentkit view DB``: a local, read-only web page for a sweep's results database.

The page shows the report (the summary table with its intervals, the paired comparisons and the accuracy-vs-
tokens plot with its Pareto front, from ``agentkit.sweep.report``), the cells with filters by dataset,
method, budget and outcome (correct, wrong, failed), and for each cell its run: problem, reference, answer
and how it was extracted, the final text, PDR/SR rounds with every draft and workspace, the behaviors retrieved
and cited, and every call's tokens and latency (the runs the sweep stores with its rows; older databases have none).

Served by aiohttp on 127.0.0.1 (``--host`` to change), read-only (the database is opened with SQLite's
``mode=ro``), one self-contained page with no external assets, so it works offline. Text from the database
is put into the page as text (``textContent``), never as markup.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from agentkit.faces.web import (
    FaceError,
    agentkit_errors,
    face_middleware,
    json_response,
    start_site,
)
from agentkit.sweep.db import ResultsDB
from agentkit.sweep.report import _plot, budget_label, compare, summarise

__all__ = ["Viewer", "create_view_app", "run_view_runner"]

_KEY = re.compile(r"[0-9a-f]{32}")
PAGE = (resources.files("agentkit.faces") / "view.html").read_text(encoding="utf-8")
"""The viewer's one page (package data: HTML, CSS and script; it reads the JSON API below)."""
_OUTCOMES = ("all", "correct", "wrong", "failed", "ungraded")
MAX_LIMIT = 500


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


class Viewer:
    """A results database loaded for viewing: its rows in memory, the report computed once on first use."""

    def __init__(self, db_path: str | Path) -> None:
        self.path = Path(db_path)
        db = ResultsDB(self.path, create=False, readonly=True)
        try:
            self.rows = list(db.rows())
        finally:
            db.close()
        for row in self.rows:
            row["budget_label"] = budget_label(str(row.get("budget_kind") or "sequential"), int(row["budget"] or 0))
            row["outcome"] = _outcome(row)
        self._by_key = {row["key"]: row for row in self.rows}
        self._summary: dict[str, Any] | None = None
        self._lock = asyncio.Lock()

    def _compute_summary(self) -> dict[str, Any]:
        groups = summarise(self.rows)
        plots = {}
        for dataset in sorted({g["dataset"] for g in groups}):
            png = _plot(dataset, [g for g in groups if g["dataset"] == dataset], "B_seq")
            plots[dataset] = base64.b64encode(png).decode()
        return {
            "db": self.path.name, "cells": len(self.rows), "groups": groups, "comparisons": compare(self.rows),
            "plots": plots,
            "filters": {"dataset": sorted({r["dataset"] for r in self.rows}),
                        "method": sorted({r["method"] for r in self.rows}),
                        "budget": sorted({r["budget_label"] for r in self.rows}), "outcome": list(_OUTCOMES)},
        }

    async def summary(self) -> dict[str, Any]:
        async with self._lock:
            if self._summary is None:
                self._summary = await asyncio.to_thread(self._compute_summary)
            return self._summary

    def cells(self, *, dataset: str = "", method: str = "", budget: str = "", outcome: str = "all",
              offset: int = 0, limit: int = 100) -> dict[str, Any]:
        chosen = [r for r in self.rows
                  if (not dataset or r["dataset"] == dataset) and (not method or r["method"] == method)
                  and (not budget or r["budget_label"] == budget) and (outcome == "all" or r["outcome"] == outcome)]
        page = chosen[offset:offset + limit]
        fields = ("key", "dataset", "item_id", "method", "budget_label", "seed", "outcome", "answer", "reference",
                  "extraction", "finish_reason", "b_seq", "b_total", "calls", "latency_s", "error")
        return {"total": len(chosen), "offset": offset, "rows": [{f: r.get(f) for f in fields} for r in page]}

    def cell(self, key: str) -> dict[str, Any] | None:
        row = self._by_key.get(key)
        if row is None:
            return None
        db = ResultsDB(self.path, create=False, readonly=True)
        try:
            trace = db.trace(key)
        finally:
            db.close()
        full = {k: _parse(v) for k, v in row.items()}
        return {"row": full, "trace": trace}


VIEWER_KEY: web.AppKey[Viewer] = web.AppKey("viewer", Viewer)


def _bad(message: str) -> FaceError:
    return FaceError(400, message)


async def _index(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html", charset="utf-8",
                        headers={"Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
                                                            "style-src 'unsafe-inline'; img-src data:; "
                                                            "connect-src 'self'"})


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
    out = request.app[VIEWER_KEY].cells(dataset=q.get("dataset", ""), method=q.get("method", ""),
                                        budget=q.get("budget", ""), outcome=outcome, offset=offset, limit=limit)
    return json_response(out)


async def _cell(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    found = request.app[VIEWER_KEY].cell(key) if _KEY.fullmatch(key) else None
    if found is None:
        raise FaceError(404, f"no cell {key!r}")
    return json_response(found)


def create_view_app(viewer: Viewer) -> web.Application:
    """The read-only aiohttp application of ``viewer`` (GET only)."""
    app = web.Application(middlewares=[face_middleware(errors=agentkit_errors)])  # read-only and local: no token
    app[VIEWER_KEY] = viewer
    app.router.add_get("/", _index)
    app.router.add_get("/api/summary", _summary)
    app.router.add_get("/api/cells", _cells)
    app.router.add_get("/api/cells/{key}", _cell)
    return app


async def run_view_runner(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Start ``app`` at ``host:port``; returns the runner and the page's URL."""
    runner, url = await start_site(app, host, port)
    return runner, f"{url}/"
