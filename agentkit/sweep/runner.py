"""Running a sweep: every cell concurrently under a global limit and per-backend limits, each result written
to SQLite as it finishes, resumable after any stop.

- Cells come from a lazy iterator (``iter_cells``) pulled by ``spec.concurrency`` workers; a worker holds a
  cell only while it runs, so 100,000 cells cost no more memory than 100 (measured in
  ``benchmarks/perf/bench_sweep.py``).
- Before a cell runs, its key is checked against the database: finished cells (ok or failed) are never run
  again, and ``--shard i/n`` keeps only the cells whose key hashes to shard i.
- A failing cell (a backend error, a budget too small, a grader timeout) is written with ``status="failed"``
  and its error, and the sweep goes on.
- Answers are graded by ``MathVerifyGrader`` (a process pool with its own timeout); the grader version is in
  every row.

Every cell runs its method from the registry through ``agentkit.methods.run_method`` (the path ``agentkit
solve``, the proxy and the method server take), with the method's roles attached to one bus for the whole sweep for the length of the
cell. ``budget`` is the cell's sequential budget, which each method plans its per-call ``max_tokens`` from (see
``agentkit.registry``), or for a method with ``budget_kind = "output"`` each answering call's output cap; the spec's ``temperature`` is every method's ``temperature`` parameter unless the method's
``params`` set their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from agentkit import tracing
from agentkit.backends.base import Backend
from agentkit.bus import Bus
from agentkit.errors import CONNECTION_REFUSED, AgentkitError, BackendError, BackendUnavailable, ConfigError
from agentkit.evaluation.datasets import split_guarded
from agentkit.evaluation.grader import MathVerifyGrader
from agentkit.ledger import Ledger
from agentkit.log import get_logger
from agentkit.memory.store import BehaviorStore
from agentkit.messages import Problem
from agentkit.methods import MethodResult, get_method, run_method

from .db import ResultsDB
from .spec import Cell, DatasetEntry, MethodEntry, SweepSpec, is_service_url, iter_cells, require_handbooks

if TYPE_CHECKING:
    from .ray_executor import RayExecutor

__all__ = ["DEFAULT_STOP_AFTER_UNREACHABLE", "BackendUnreachable", "CellRunner", "SweepSummary", "is_unreachable",
           "lost_row", "provenance_splits", "run_cell", "run_sweep", "split_warnings"]

_log = get_logger(__name__)

def prompt_hash(method: str) -> str:
    """One hash over every template a method uses (a changed prompt changes it): the registry's."""
    return get_method(method).prompt_hash


class SweepSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cells: int = 0
    """Cells of this shard in the spec."""
    skipped: int = 0
    """Already in the database."""
    ran: int = 0
    failed: int = 0
    tokens: int = 0
    wall_s: float = 0.0
    db: str = ""
    grader_timeouts: int = 0


DEFAULT_STOP_AFTER_UNREACHABLE = 16
"""Cells in a row that fail because a backend cannot be reached before a sweep stops (``run_sweep``)."""


class BackendUnreachable(BackendUnavailable):
    """A sweep stopped because a backend could not be reached for many cells in a row; ``summary`` is what the
    sweep did before it stopped (every row written)."""

    def __init__(self, message: str, *, cause: str, summary: SweepSummary) -> None:
        super().__init__(message, cause=cause)
        self.summary = summary


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says a backend could not be reached at all (refused or failed connections)."""
    return isinstance(exc, BackendError) and exc.cause in (CONNECTION_REFUSED, "connection error")


async def run_cell(problem: Problem, backend: Backend, method: MethodEntry, budget: int, seed: int, *,
                   temperature: float = 0.0, handbooks: dict[str, BehaviorStore] | None = None,
                   bus: Bus | None = None, ledger: Ledger | None = None) -> MethodResult:
    """Run one registered method on one problem at one budget (``run_method``, the path ``agentkit solve`` takes):
    a sequential budget, or with ``method.budget_kind == "output"`` each answering call's output cap. ``ledger``,
    when given, records the calls even if the run fails."""
    store = method.params.get("store")
    handbook = (handbooks or {}).get(store) if isinstance(store, str) else None
    return await run_method(method.name, problem, backend, params={"temperature": temperature, **method.params},
                            budget=budget, budget_kind=method.budget_kind, seed=seed, handbook=handbook, bus=bus,
                            ledger=ledger)


class CellRunner:
    """What runs a sweep's cells in one process: the spec's backends (by their logical key), a gate per backend,
    the grader, the bus, the handbooks and each backend's identity; ``run(cell, problem)`` is one cell's row. The
    local executor has one; each Ray worker has its own (``agentkit.sweep.ray_executor``)."""

    def __init__(self, spec: SweepSpec, live: dict[str, Backend], built: dict[str, Backend],
                 gates: dict[str, asyncio.Semaphore], identities: dict[str, dict[str, Any]],
                 handbooks: dict[str, BehaviorStore], infos: dict[str, dict[str, Any]], own_handbooks: bool) -> None:
        self.spec, self.live, self.built, self.gates, self.identities = spec, live, built, gates, identities
        self.handbooks, self.infos, self.own_handbooks = handbooks, infos, own_handbooks
        self.methods = {m.key: m for m in spec.methods}
        self.samplings = {m.key: method_sampling(m, spec.temperature) for m in spec.methods}
        self.datasets = {d.name: d for d in spec.datasets}
        self.grader = MathVerifyGrader(workers=2, timeout=spec.grader_timeout)
        self.bus = Bus(name=f"sweep:{spec.name}")  # every cell's roles attach here for the length of the cell

    @classmethod
    async def open(cls, spec: SweepSpec, *, infos: dict[str, dict[str, Any]],
                   handbooks: dict[str, BehaviorStore] | None = None, stores: dict[str, str] | None = None,
                   backends: dict[str, Backend] | None = None, cells: int | None = None) -> CellRunner:
        """Build the spec's backends (``backends`` gives ready ones by key or spec) and resolve each one's identity
        (a local model started and hashed, a server asked what it serves: every row names the model that answered);
        the handbooks are ``handbooks`` (open, the caller's) or opened from ``stores`` (the store each method names
        -> the directory to open it from, e.g. a worker's snapshot). ``cells``: calls in flight per backend at most
        (default: each backend's concurrency)."""
        from agentkit.backends import backend_from_spec

        given = dict(backends or {})
        # Backends by their logical key (what cells name); ``backends`` may give one by its key or its spec.
        ready = {b.key: given[b.spec] if b.spec in given else given[b.key] for b in spec.backends
                 if b.spec in given or b.key in given}
        built = {b.key: backend_from_spec(b.build_spec) for b in spec.backends if b.key not in ready}
        live = {**built, **ready}
        gates = {b.key: asyncio.Semaphore(min(b.concurrency, cells or b.concurrency)) for b in spec.backends}
        own = handbooks is None
        opened: dict[str, BehaviorStore] = dict(handbooks or {})
        try:
            identities = {b.key: await live[b.key].identity() for b in spec.backends}
            if own and stores:
                opened = await _open_handbooks(spec, list(stores), where=stores)
        except BaseException:
            for backend in built.values():
                await backend.aclose()
            raise
        return cls(spec, live, built, gates, identities, opened, infos, own)

    async def run(self, cell: Cell, problem: Problem) -> dict[str, Any]:
        return await _run_one(cell, problem, self.methods[cell.method], self.samplings[cell.method],
                              self.live[cell.backend], self.gates[cell.backend], self.spec, self.grader,
                              self.handbooks, self.infos, self.bus, self.datasets[cell.dataset],
                              self.identities[cell.backend])

    async def aclose(self) -> None:
        await self.bus.close()
        await self.grader.aclose()
        for backend in self.built.values():
            await backend.aclose()
        if self.own_handbooks:
            for store in self.handbooks.values():
                await store.close()


def lost_row(cell: Cell, spec: SweepSpec, problem: Problem, reason: str) -> dict[str, Any]:
    """The failed row of a cell that could not be run to the end (its worker died too often): counted as wrong,
    rerun by ``sweep resume``."""
    method = next(m for m in spec.methods if m.key == cell.method)
    return {**_cell_fields(cell, spec, method, problem), "status": "failed", "error": reason, "b_seq": 0,
            "b_total": 0, "input_tokens": 0, "output_tokens": 0, "calls": 0}


def _cell_fields(cell: Cell, spec: SweepSpec, method: MethodEntry, problem: Problem) -> dict[str, Any]:
    """What every row of ``cell`` records, however the cell ended: its key and grid place, the method's
    parameters and prompt hash, the problem's reference."""
    return {"key": cell.key, "sweep": spec.name, "dataset": cell.dataset, "item_id": cell.item_id,
            "method": cell.method, "method_params": {"name": method.name, **method.params}, "backend": cell.backend,
            "budget": cell.budget, "budget_kind": cell.budget_kind, "seed": cell.seed, "reference": problem.reference,
            "prompt_hash": prompt_hash(method.name)}


async def run_sweep(
    spec: SweepSpec,
    db_path: str | Path,
    *,
    shard: tuple[int, int] = (0, 1),
    backends: dict[str, Backend] | None = None,
    on_cell: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    retry: str = "transient",
    stop_after_unreachable: int | None = DEFAULT_STOP_AFTER_UNREACHABLE,
    on_warning: Callable[[str], None] | None = None,
    executor: RayExecutor | None = None,
) -> SweepSummary:
    """Run (or resume) ``spec`` into the database at ``db_path``.

    ``backends`` maps a backend spec string to a ready backend (tests and embedding programs); the others are
    built from their specs and closed at the end. Cells already in the database are skipped, except failed
    ones that ``retry`` says to rerun (``"transient"``, the default: backend outages and timeouts; ``"all"``;
    ``"none"``); a rerun replaces the failed row. ``on_start(cells, finished)`` is called once before any
    cell runs (the shard's cell count and how many of them the database already has: a progress bar's total
    and ETA); ``on_cell(row)`` after every written row.

    When ``stop_after_unreachable`` cells in a row fail because a backend cannot be reached at all (connection
    refused or failed, after the retry policy), the sweep hands out no more cells, writes the rows of the cells
    in flight and raises ``BackendUnreachable``: a backend that is down fails fast instead of failing every cell
    of the grid one by one. The failed rows are transient (``sweep resume`` reruns them). None: never stop.

    ``on_warning(line)`` receives what the person running the sweep must read (a handbook curated from a split
    the sweep evaluates); without it, such lines are logged as warnings.

    ``executor``: a ``RayExecutor`` runs the cells on Ray workers (``agentkit.sweep.ray_executor``); this process
    stays the only writer of the database. None: the cells run here (``CellRunner``).
    """

    index, count = shard
    if not 0 <= index < count:
        raise ConfigError(f"shard must be i/n with 0 <= i < n, got {index}/{count}")
    stores = await asyncio.to_thread(require_handbooks, spec)  # a missing store is refused before anything exists
    db = await asyncio.to_thread(ResultsDB, db_path)  # a bad --db fails before anything starts
    problems: dict[str, dict[str, Problem]] = {}
    for d in spec.datasets:
        problems[d.name] = {p.problem_id: p for p in d.load()}
    try:
        handbooks = await _open_handbooks(spec, stores)
        infos = {store: {**await asyncio.to_thread(handbook_info, store, handbook),
                         "splits": await provenance_splits(handbook)} for store, handbook in handbooks.items()}
        if executor is None:  # the cells run here: backends, grader and bus of this process
            runner: CellRunner | None = await CellRunner.open(spec, infos=infos, handbooks=handbooks,
                                                              backends=backends)
        else:  # on Ray workers, each with its own (and snapshots of the handbooks)
            runner = None
            await executor.start(spec, infos, stores)
    except BaseException:
        for handbook in handbooks.values() if "handbooks" in locals() else ():
            await handbook.close()
        db.close()
        raise
    evaluated = {d.name: {p.dataset for p in problems[d.name].values() if p.dataset} for d in spec.datasets}
    for line in split_warnings(spec, evaluated, {s: info["splits"] for s, info in infos.items()}):
        (on_warning or _log.warning)(line)
    done = await asyncio.to_thread(db.finished_keys, retry=retry)
    summary = SweepSummary(db=str(db_path))
    started = time.perf_counter()
    ids = {k: list(v) for k, v in problems.items()}
    # The spec and its grid go in first: a report then knows every cell that should have a row, finished or not.
    await asyncio.to_thread(db.record_spec, spec.name, spec.model_dump_json(), (
        {**c.model_dump(), "key": c.key} for c in iter_cells(spec, ids) if c.in_shard(index, count)))
    if on_start is not None:  # one cheap pass over the keys (no cell is kept)
        total = already = 0
        for c in iter_cells(spec, ids):
            if c.in_shard(index, count):
                total += 1
                already += c.key in done
        on_start(total, already)
    cells: Iterator[Cell] = (c for c in iter_cells(spec, ids) if c.in_shard(index, count))
    lock = asyncio.Lock()

    unreachable: dict[str, Any] = {"streak": 0, "stop": None}

    async def next_cell() -> Cell | None:
        async with lock:  # one shared iterator; skipping finished cells costs no work slot
            if unreachable["stop"] is not None:
                return None
            for cell in cells:
                summary.cells += 1
                if cell.key in done:
                    summary.skipped += 1
                    continue
                return cell
            return None

    # Finished rows go to one writer task, which writes whatever has queued up since its last write in one
    # transaction: a row is written as soon as the writer is free (no timer), and under load many rows share
    # one thread hop and one commit instead of one each.
    finished: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=4 * spec.concurrency)

    async def writer() -> None:
        last = False
        while not last:
            batch = [await finished.get()]
            while not finished.empty():
                batch.append(finished.get_nowait())
            last = batch[-1] is None  # the end mark comes after every row (put once the workers are done)
            rows = [r for r in batch if r is not None]
            if rows:
                await asyncio.to_thread(db.write_many, rows)
            for written in rows:
                summary.ran += 1
                summary.failed += written["status"] != "ok"
                summary.tokens += written["b_total"] or 0
                unreachable["streak"] = unreachable["streak"] + 1 if written.get("unreachable") else 0
                if stop_after_unreachable and unreachable["streak"] >= stop_after_unreachable:
                    unreachable["stop"] = unreachable["stop"] or written
                if on_cell is not None:
                    on_cell(written)

    async def worker() -> None:
        assert runner is not None
        while (cell := await next_cell()) is not None:
            await finished.put(await runner.run(cell, problems[cell.dataset][cell.item_id]))

    async def work() -> None:
        if executor is not None:
            await executor.run(next_cell, lambda c: problems[c.dataset][c.item_id], finished.put,
                               lambda c, reason: lost_row(c, spec, problems[c.dataset][c.item_id], reason))
            return
        try:
            async with asyncio.TaskGroup() as group:  # a worker that raises (a bug) stops the others
                for _ in range(spec.concurrency):
                    group.create_task(worker())
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None

    # Everything alive now (imported modules, the loaded problems, clients) lives as long as the sweep: keep it
    # out of the collector's full passes, which otherwise walk it all and stall the event loop for tens of
    # milliseconds at a time (every cell in flight waits). Undone when the sweep ends.
    gc.freeze()
    writing = asyncio.create_task(writer())
    working = asyncio.create_task(work())
    try:
        await asyncio.wait({writing, working}, return_when=asyncio.FIRST_COMPLETED)
        if writing.done():  # the writer stops early only by failing (the database): stop the workers
            working.cancel()
            writing.result()
        await working
    finally:
        if not working.done():
            working.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await working
        if not writing.done():
            await finished.put(None)  # every row already finished is written before the sweep returns
            await writing
        gc.unfreeze()
        if runner is not None:
            summary.grader_timeouts = runner.grader.timeouts
            await runner.aclose()
        if executor is not None:
            await executor.close()
        for store in handbooks.values():
            await store.close()
        db.close()
    summary.wall_s = time.perf_counter() - started
    stopped = unreachable["stop"]
    if stopped is not None:
        raise BackendUnreachable(
            f"{stopped['backend']} could not be reached for {stop_after_unreachable} cells in a row (last: "
            f"{stopped['error']}); the sweep stopped. {summary.ran - summary.failed} cells finished in this run "
            f"and every row is saved in {db_path}; once the backend is up, `agentkit sweep resume` reruns the "
            "failed cells and the rest", cause=CONNECTION_REFUSED, summary=summary)
    return summary



async def _open_handbooks(spec: SweepSpec, paths: list[str], where: dict[str, str] | None = None
                          ) -> dict[str, BehaviorStore]:
    """The handbooks the methods' ``params.store`` name (``paths``: ``require_handbooks`` found them all), each
    opened once for the sweep (from ``where[path]`` when given: a worker's snapshot of it)."""
    from agentkit.memory import QdrantBehaviorStore, embedder_from_spec

    stores: dict[str, BehaviorStore] = {}
    embedder = None
    for path in paths:  # each once: paths has no repeats
        if is_service_url(path):  # a handbook service: it embeds with its own store's embedder
            stores[path] = service_handbook(path)
            continue
        embedder = embedder or embedder_from_spec(spec.embedder)  # one model, shared by every handbook
        source = (where or {}).get(path, path)
        stores[path] = await QdrantBehaviorStore(path=source, embedder=embedder, create=False).open()
    return stores


def service_handbook(url: str) -> BehaviorStore:
    """A handbook service (``agentkit serve``) named by a method's ``params.store``, with ``$AGENTKIT_TOKEN``."""
    import os

    from agentkit.memory import HandbookClient

    token = os.environ.get("AGENTKIT_TOKEN")
    if not token:
        raise ConfigError(f"the handbook {url} is a service URL: set $AGENTKIT_TOKEN to its token (printed by "
                          "`agentkit serve`)")
    return HandbookClient(url, token=token)


async def provenance_splits(handbook: BehaviorStore) -> list[str]:
    """The dataset splits the handbook's active behaviors were curated from (``Provenance.dataset``)."""
    return sorted({p.dataset for b in await handbook.list_behaviors() for p in b.provenance if p.dataset})


def split_warnings(spec: SweepSpec, evaluated: dict[str, set[str]], splits: dict[str, list[str]]) -> list[str]:
    """One line per method whose handbook holds behaviors curated from a split the spec evaluates (``evaluated``:
    spec dataset -> the ``Problem.dataset`` splits it loads; ``splits``: store -> its provenance splits), saying
    whether the split guard keeps them out of the prompts."""
    lines = []
    for method in spec.methods:
        store = method.params.get("store")
        if not isinstance(store, str) or store not in splits:
            continue
        for dataset, names in evaluated.items():
            for split in sorted(names & set(splits[store])):
                on = split_guarded(method.params.get("exclude_split"), method.params.get("handbook_mode"), split)
                lines.append(f"handbook {store} ({method.key}) holds behaviors curated from {split!r}, which this "
                             f"sweep evaluates ({dataset}): " + (
                                 "the split guard keeps them out of the prompts (exclude_split)" if on else
                                 "they can reach the prompts (exclude_split is off): results on this split are not "
                                 "held out from the handbook's sources"))
    return lines


def handbook_info(store: str, handbook: BehaviorStore) -> dict[str, Any]:
    """What a row records of the handbook its cell used: the store, the embedder of its vectors, and what building
    it cost (``curation_cost``), so that tokens spent building a handbook sit next to the tokens it saves."""
    embedder = getattr(handbook, "embedder", None)
    return {"store": store, "embedder": getattr(embedder, "name", None), "dim": getattr(embedder, "dim", None),
            "curation": curation_cost(Path(store) / "curation.jsonl")}


def curation_cost(log: Path) -> dict[str, int] | None:
    """The curations logged in a handbook's ``curation.jsonl`` and their tokens and calls (None: no log, e.g. a
    handbook imported or served from a URL)."""
    if not log.is_file():
        return None
    cost = {"curations": 0, "calls": 0, "input_tokens": 0, "output_tokens": 0}
    with log.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                entry = json.loads(line)
                values = {k: int(entry.get(k) or 0) for k in ("calls", "input_tokens", "output_tokens")}
            except (ValueError, TypeError, AttributeError):
                continue  # a line cut by a crash
            cost["curations"] += 1
            for key, value in values.items():
                cost[key] += value
    return cost


def cell_trace(problem: Problem, ledger: Ledger, result: MethodResult | None = None) -> dict[str, Any]:
    """What ``agentkit view`` shows of a cell's run: the problem, every call (role, stage, round, branch,
    input and output tokens, latency, finish reason, accepted, final, reasoning tokens of its output, the
    temperature it was sent with, and for a replicated backend the replica that answered), and for a finished run its final text, the behaviors retrieved and cited,
    and the trace fields of the method's record (PDR/SR's drafts and workspaces)."""
    trace: dict[str, Any] = {"problem": problem.text, "calls": [
        [r.role, r.stage, r.round, r.branch, r.input_tokens, r.output_tokens, round(r.latency_s, 3),
         r.finish_reason, int(r.accepted), int(r.final), r.reasoning_tokens, r.temperature,
         *([r.replica] if r.replica else [])] for r in ledger.records]}
    if result is None:
        return trace
    trace.update(text=result.text, behaviors=list(result.solution.behaviors), cited=list(result.solution.cited))
    if result.record is not None:
        trace.update(result.record.trace())
    return trace


def method_sampling(method: MethodEntry, temperature: float) -> dict[str, Any]:
    """The temperatures a method's calls really use: the spec's, and where a method raises its drafts' or
    samples' (PDR, SR, self-consistency: ``min_temperature``), ``draft_temperature``."""
    values = {"temperature": temperature, **method.params}
    params = get_method(method.name).params(**values)
    out: dict[str, Any] = {"temperature": params.temperature}
    floor = getattr(params, "min_temperature", None)
    if isinstance(floor, (int, float)):
        out["draft_temperature"] = max(params.temperature, floor)
    return out


async def _run_one(cell: Cell, problem: Problem, method: MethodEntry, sampling: dict[str, Any], backend: Backend,
                   gate: asyncio.Semaphore, spec: SweepSpec, grader: MathVerifyGrader,
                   handbooks: dict[str, BehaviorStore], infos: dict[str, dict[str, Any]], bus: Bus,
                   dataset: DatasetEntry, identity: dict[str, Any]) -> dict[str, Any]:
    """One cell's row, in a trace of its own when tracing is on (``agentkit.cell``, the root of its method run,
    steps and calls)."""
    with tracing.span("agentkit.cell", lambda: {
            "agentkit.cell.key": cell.key, "openinference.span.kind": "CHAIN", "agentkit.sweep": spec.name, "agentkit.dataset": cell.dataset,
            "agentkit.item_id": cell.item_id, "agentkit.method": cell.method, "agentkit.backend": cell.backend,
            "agentkit.budget": cell.budget, "agentkit.budget_kind": cell.budget_kind, "agentkit.seed": cell.seed},
            root=True) as current:
        row = await _cell_row(cell, problem, method, sampling, backend, gate, spec, grader, handbooks, infos, bus,
                              dataset, identity)
        tracing.set_attributes(current, lambda: {
            "agentkit.status": row["status"], "agentkit.error": row.get("error"), "agentkit.correct": row.get("correct"),
            "agentkit.b_seq": row.get("b_seq"), "agentkit.calls": row.get("calls"),
            "gen_ai.usage.input_tokens": row.get("input_tokens"), "gen_ai.usage.output_tokens": row.get("output_tokens")})
        return row


async def _cell_row(cell: Cell, problem: Problem, method: MethodEntry, sampling: dict[str, Any], backend: Backend,
                    gate: asyncio.Semaphore, spec: SweepSpec, grader: MathVerifyGrader,
                    handbooks: dict[str, BehaviorStore], infos: dict[str, dict[str, Any]], bus: Bus,
                    dataset: DatasetEntry, identity: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {**_cell_fields(cell, spec, method, problem), "backend_info": identity,
                           "grader": grader.version, "sampling": {**sampling, "seed": cell.seed}}
    store = method.params.get("store")
    if isinstance(store, str) and store in infos:
        row["handbook"] = infos[store]
    started = time.perf_counter()
    problem = problem.with_(run_id=f"{cell.key}")
    spent = Ledger(run_id=cell.key)
    try:
        async with gate:
            out = await run_cell(problem, backend, method, cell.budget, cell.seed, temperature=spec.temperature,
                                 handbooks=handbooks, bus=bus, ledger=spent)
    except AgentkitError as exc:
        _log.warning("cell failed", dataset=cell.dataset, item=cell.item_id, method=cell.method, error=str(exc))
        figures = spent.summary()  # a failed cell keeps what it spent before it failed
        return {**row, "status": "failed", "error": f"{type(exc).__name__}: {exc}", "unreachable": is_unreachable(exc),
                "b_seq": figures["B_seq"],
                "b_total": figures["B_total"], "input_tokens": figures["input_tokens"],
                "output_tokens": figures["output_tokens"], "calls": figures["calls"],
                "reasoning_tokens": figures["reasoning_tokens"],
                "sampling": {**row["sampling"], "sent": spent.temperatures()},
                "latency_s": time.perf_counter() - started,
                "trace": cell_trace(problem, spent) if spec.store_traces else None}
    ledger = out.ledger
    figures = ledger.summary()
    finish = out.solution.finish_reason
    if spec.lenient_answers:
        answer, how = out.answer, "lenient"
        grade = await grader.grade(answer, problem.reference, extracted=True) \
            if problem.reference is not None else None
    else:
        answer, how, grade = await grader.grade_output(out.text, problem.reference, finish_reason=finish,
                                                       final_number=dataset.numeric)
    return {
        **row, "status": "ok", "error": None, "answer": answer, "extraction": how, "finish_reason": finish,
        "details": (out.record.diagnostics() or None) if out.record is not None else None,
        "correct": None if grade is None else int(grade.correct),
        "grade_status": None if grade is None else grade.status,
        "b_seq": figures.get("B_seq"), "b_total": figures.get("B_total"),
        "input_tokens": figures.get("input_tokens"), "output_tokens": figures.get("output_tokens"),
        "answer_output_tokens": figures.get("answer_output_tokens"), "calls": figures.get("calls"),
        "reasoning_tokens": figures.get("reasoning_tokens"),
        "sampling": {**row["sampling"], "sent": ledger.temperatures()},
        "latency_s": time.perf_counter() - started,
        "trace": cell_trace(problem, ledger, out) if spec.store_traces else None,
    }
