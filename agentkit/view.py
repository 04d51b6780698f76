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
from pathlib import Path
from typing import Any

from aiohttp import web

from agentkit._web import (
    UNAUTHORIZED,
    FaceError,
    agentkit_error,
    agentkit_errors,
    face_middleware,
    json_response,
    start_site,
)
from agentkit.sweep.db import ResultsDB
from agentkit.sweep.report import _plot, budget_label, compare, summarise

__all__ = ["Viewer", "create_view_app", "run_view_runner"]

_KEY = re.compile(r"[0-9a-f]{32}")
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
    app = web.Application(middlewares=[face_middleware(  # read-only and local: no token
        token=None, protected=lambda path: False, unauthorized=lambda: agentkit_error(401, UNAUTHORIZED),
        errors=agentkit_errors)])
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


PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>agentkit view</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222}
header{background:#223;color:#fff;padding:8px 16px}header h1{font-size:18px;margin:0}
main{display:flex;gap:16px;padding:12px 16px}#left{flex:3;min-width:0}#right{flex:2;min-width:0}
table{border-collapse:collapse;font-size:12px;margin:6px 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}
th{background:#f3f3f3}tr.cell{cursor:pointer}tr.cell:hover{background:#eef}tr.sel{background:#dde}
.correct{color:#070}.wrong{color:#a00}.failed{color:#a60;font-weight:bold}
pre{white-space:pre-wrap;background:#f7f7f7;border:1px solid #ddd;padding:6px;max-height:300px;overflow:auto}
details{margin:4px 0}summary{cursor:pointer}img{max-width:100%}label{margin-right:8px}
.muted{color:#777}
</style></head><body>
<header><h1>agentkit view <span id="db" class="muted"></span></h1></header>
<main><div id="left">
<section id="report"><h2>Report</h2><div id="groups"></div><div id="plots"></div><div id="pairs"></div></section>
<section><h2>Cells</h2><div id="filters"></div><div id="count" class="muted"></div>
<table id="cells"><thead><tr><th>item</th><th>method</th><th>budget</th><th>seed</th><th>outcome</th><th>answer</th>
<th>reference</th><th>extraction</th><th>B_seq</th><th>calls</th><th>latency s</th></tr></thead><tbody></tbody></table>
<div><button id="prev">previous</button> <button id="next">next</button></div></section>
</div><div id="right"><h2>Cell</h2><div id="trace" class="muted">Click a cell to see its run.</div></div></main>
<script>
"use strict";
const state = {offset: 0, limit: 100, total: 0, filters: {dataset: "", method: "", budget: "", outcome: "all"}};
function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined && text !== null) e.textContent = String(text); if (cls) e.className = cls; return e; }
function fmt(v, d) { return (typeof v === "number") ? v.toFixed(d) : (v === null || v === undefined ? "" : String(v)); }
function table(headers, rows) {
  const t = el("table"); const h = t.createTHead().insertRow();
  headers.forEach(x => h.appendChild(el("th", x)));
  const b = t.createTBody(); rows.forEach(r => { const tr = b.insertRow(); r.forEach(c => tr.insertCell().textContent = c); });
  return t;
}
async function getJSON(url) { const r = await fetch(url); if (!r.ok) throw new Error(url + ": " + r.status); return r.json(); }
async function loadSummary() {
  const s = await getJSON("api/summary");
  document.getElementById("db").textContent = s.db + " (" + s.cells + " cells)";
  const label = g => (g.budget_kind === "output" ? "out " : "B_seq ") + g.budget;
  document.getElementById("groups").appendChild(table(
    ["dataset", "method", "budget", "problems", "accuracy", "95% CI", "bootstrap CI", "failed", "B_seq", "B_total"],
    s.groups.map(g => [g.dataset, g.method, label(g), g.problems, fmt(g.accuracy, 3), fmt(g.ci_low, 2) + "-" + fmt(g.ci_high, 2),
                       fmt(g.boot_low, 2) + "-" + fmt(g.boot_high, 2), g.failed, fmt(g.B_seq, 0), fmt(g.B_total, 0)])));
  for (const [name, png] of Object.entries(s.plots)) { const img = el("img"); img.alt = name; img.src = "data:image/png;base64," + png; document.getElementById("plots").appendChild(img); }
  if (s.comparisons.length) {
    document.getElementById("pairs").appendChild(el("h3", "Paired comparisons"));
    document.getElementById("pairs").appendChild(table(["A", "B", "budget", "items", "A - B", "95% CI", "wins / losses / ties"],
      s.comparisons.map(c => [c.a, c.b, label(c), c.items, fmt(c.difference, 3), fmt(c.ci_low, 3) + " to " + fmt(c.ci_high, 3), c.wins + " / " + c.losses + " / " + c.ties])));
  }
  const box = document.getElementById("filters");
  for (const [name, values] of Object.entries(s.filters)) {
    const lab = el("label", name + " "); const sel = el("select"); sel.id = "f-" + name;
    if (name !== "outcome") sel.appendChild(new Option("all", ""));
    values.forEach(v => sel.appendChild(new Option(v, v)));
    sel.addEventListener("change", () => { state.filters[name] = sel.value; state.offset = 0; loadCells(); });
    lab.appendChild(sel); box.appendChild(lab);
  }
}
async function loadCells() {
  const q = new URLSearchParams({...state.filters, offset: state.offset, limit: state.limit});
  const data = await getJSON("api/cells?" + q);
  state.total = data.total;
  document.getElementById("count").textContent = data.total + " cells; showing " + (data.total ? state.offset + 1 : 0) + "-" + (state.offset + data.rows.length);
  const body = document.querySelector("#cells tbody"); body.replaceChildren();
  for (const r of data.rows) {
    const tr = body.insertRow(); tr.className = "cell"; tr.dataset.key = r.key;
    [r.item_id, r.method, r.budget_label, r.seed, r.outcome, r.answer, r.reference, r.extraction, r.b_seq, r.calls, fmt(r.latency_s, 1)]
      .forEach((c, i) => { const td = tr.insertCell(); td.textContent = c === null ? "" : String(c); if (i === 4) td.className = r.outcome; });
    tr.addEventListener("click", () => { document.querySelectorAll("tr.sel").forEach(x => x.classList.remove("sel")); tr.classList.add("sel"); showCell(r.key); });
  }
}
function block(parent, title, text, open) { const d = el("details"); if (open) d.open = true; d.appendChild(el("summary", title)); d.appendChild(el("pre", text)); parent.appendChild(d); return d; }
async function showCell(key) {
  const box = document.getElementById("trace"); box.className = ""; box.replaceChildren(el("p", "loading…"));
  const {row, trace} = await getJSON("api/cells/" + key);
  box.replaceChildren();
  box.appendChild(el("h3", row.item_id + " · " + row.method + " · " + (row.budget_kind === "output" ? "out " : "B_seq ") + row.budget + " · seed " + row.seed));
  box.appendChild(table(["answer", "reference", "outcome", "extraction", "finish", "B_seq", "B_total"],
    [[row.answer, row.reference, row.outcome, row.extraction, row.finish_reason, row.b_seq, row.b_total]]));
  if (row.error) box.appendChild(el("p", row.error, "failed"));
  if (!trace) { box.appendChild(el("p", "No run was stored for this cell (an older database).", "muted")); return; }
  block(box, "Problem", trace.problem, true);
  if (trace.behaviors && trace.behaviors.length) box.appendChild(el("p", "Behaviors retrieved: " + trace.behaviors.join(", ") + (trace.cited && trace.cited.length ? " · cited: " + trace.cited.join(", ") : " · none cited")));
  if (trace.drafts) {
    const rounds = [...new Set(trace.drafts.map(d => d[0]))].sort((a, b) => a - b);
    for (const r of rounds) {
      const sec = el("section", null, "round"); sec.appendChild(el("h4", "Round " + r));
      trace.drafts.filter(d => d[0] === r).forEach(d => block(sec, "draft " + d[1] + " · answer " + (d[2] === null ? "none" : d[2]) + " · " + d[4] + " tokens · " + d[3], d[5], false));
      (trace.workspaces || []).filter(w => w[0] === r).forEach(w => block(sec, "workspace · " + w[1] + " tokens from " + w[2] + " drafts", w[3], false));
      box.appendChild(sec);
    }
  }
  if (trace.text !== undefined) block(box, "Final text", trace.text, !trace.drafts);
  box.appendChild(el("h4", "Calls"));
  box.appendChild(table(["role", "stage", "round", "branch", "input", "output", "latency s", "finish", "accepted", "final"],
    trace.calls.map(c => [c[0], c[1], c[2], c[3], c[4], c[5], fmt(c[6], 2), c[7], c[8] ? "yes" : "", c[9] ? "yes" : ""])));
}
document.getElementById("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - state.limit); loadCells(); });
document.getElementById("next").addEventListener("click", () => { if (state.offset + state.limit < state.total) { state.offset += state.limit; loadCells(); } });
loadSummary().then(loadCells).then(() => { document.body.dataset.ready = "1"; }).catch(e => { document.body.appendChild(el("p", "error: " + e.message, "failed")); });
</script></body></html>
"""
