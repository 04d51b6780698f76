"""Sweeps beyond one machine: whole cells run on Ray async actors, the driver keeps the database.

``agentkit sweep run SPEC --db R.sqlite --executor ray [--ray-address ADDR] [--workers N]`` (the ``agentkit[ray]``
extra). The driver is ``run_sweep``'s own process: the lazy cell iterator, the finished keys read from SQLite,
the progress bar and the **only** writer of the database. Each worker is an async actor (one CPU) that builds its
own backends, grader and handbooks from the spec and runs whole cells (method, grading, trace), returning the
row; the driver does I/O.

Scheduling pulls: each worker has at most ``cells_per_worker`` cells in flight, and a freed slot takes the next
cell, so a slow worker gets fewer cells; nothing is split in advance. A worker or node that dies loses its cells
in flight: they go back to the queue (Ray restarts the actor, on another node if its own is gone); a cell that
loses its worker ``MAX_LOSSES`` times is written as failed (``WorkerLost``, rerun by ``sweep resume``). A killed
driver resumes as any sweep does.

Handbooks reach workers as read-only snapshots: each store directory is copied by the driver and shipped to every
worker, which opens its copy (no worker opens the driver's store). A handbook service URL (``agentkit serve``) is
reached by every worker itself (``$AGENTKIT_TOKEN`` passed on). An ``online`` handbook writes as cells finish, so
it must be a service URL: online mode on a store directory is refused at load with the reason.

When the driver traces (``agentkit --otel``), each worker configures the same OTLP exporter from the driver's
``OTEL_*`` variables (passed in the actor's runtime environment) and exports its cells' traces (a cell is the root
of its own trace, as in a local sweep); the executor flushes them before it stops the workers.

Workers: one per node with a CPU by default (each with its own backends: one local model per machine), or
``--workers N`` spread over the nodes. Without ``--ray-address`` a local Ray starts on this machine (one worker
unless ``--workers``). An
address that does not answer, Ray not installed, or a cluster without a CPU for a worker is one line and exit 2
within seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import tarfile
import tempfile
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agentkit.errors import ConfigError
from agentkit.log import get_logger

from .spec import Cell, SweepSpec, is_service_url

__all__ = ["MAX_LOSSES", "RayExecutor", "check_ray_spec"]

_log = get_logger(__name__)
MAX_LOSSES = 3
"""Times a cell may lose its worker (actor or node death) before it is written as failed."""
START_TIMEOUT_S = 120.0


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'agentkit[ray]'") from None
    return ray


def check_ray_spec(spec: SweepSpec) -> None:
    """What the Ray executor cannot run, refused before anything starts: an ``online`` handbook (it writes to its
    store as cells finish; workers hold read-only snapshots)."""
    for method in spec.methods:
        store = method.params.get("store")
        if method.params.get("handbook_mode") == "online" and isinstance(store, str) and store \
                and not is_service_url(store):
            raise ConfigError(
                f"method {method.key!r} uses an online handbook in the store directory {store}, which writes as "
                "cells finish; with --executor ray workers hold read-only snapshots of a store directory. Serve it "
                "(`agentkit serve --store DIR`) and name its URL as the store (every worker then writes to it), "
                "or use --executor local")


def _reachable(address: str, timeout: float = 3.0) -> None:
    """A ``host:port`` Ray address that answers a TCP connection within ``timeout`` (else a ``ConfigError``)."""
    if address in ("auto", "local") or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return
    except (OSError, ValueError) as exc:
        raise ConfigError(f"no Ray cluster answers at {address} ({exc}); start one with `ray start --head` or leave "
                          "--ray-address out to run a local one") from None


def snapshot(store: str) -> bytes:
    """A handbook store's directory as a gzip tarball (what workers open a read-only copy of)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(store, arcname="hb")
    return buffer.getvalue()


class _CellWorker:
    """The actor: one process that runs whole cells (``ray.remote`` is applied when the executor starts)."""

    def __init__(self, spec_json: str, plugins: list[str], infos: dict[str, Any], snapshots: dict[str, bytes],
                 cells: int, otel: bool = False) -> None:
        self.spec_json, self.plugins, self.infos, self.snapshots, self.cells = spec_json, plugins, infos, snapshots, cells
        self.runner: Any = None
        self.provider: Any = None
        if otel:  # the driver traces: this worker exports its cells' traces (OTEL_* from the driver's environment)
            from agentkit import tracing

            self.provider = tracing.configure_exporter("agentkit")

    async def ready(self) -> dict[str, Any]:
        if self.runner is None:
            from agentkit.registry import load_plugin

            from .runner import CellRunner

            for plugin in self.plugins:
                load_plugin(plugin)
            spec = SweepSpec.model_validate_json(self.spec_json)
            folder = Path(tempfile.mkdtemp(prefix="agentkit-worker-"))
            stores = {}
            for i, (store, blob) in enumerate(self.snapshots.items()):
                target = folder / str(i)
                with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
                    tar.extractall(target, filter="data")
                stores[store] = str(target / "hb")
            for method in spec.methods:  # a handbook service: reached from here
                named = method.params.get("store")
                if isinstance(named, str) and is_service_url(named):
                    stores[named] = named
            self.runner = await CellRunner.open(spec, infos=self.infos, stores=stores, cells=self.cells)
        import ray

        return {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}

    def flush(self) -> bool:
        """Export the spans still batched (before the worker is stopped)."""
        return bool(self.provider.force_flush()) if self.provider is not None else True

    async def run(self, cell_json: str, problem_json: str) -> dict[str, Any]:
        from agentkit.messages import Problem

        await self.ready()
        row: dict[str, Any] = await self.runner.run(Cell.model_validate_json(cell_json),
                                                     Problem.model_validate_json(problem_json))
        return row


class RayExecutor:
    """Runs a sweep's cells on Ray actors (see the module doc).

    Args:
        address: a running cluster (``host:port`` of its head, ``auto``, ``ray://...``); None starts a local Ray.
        workers: actors, spread over the nodes (default: one per node with a CPU, pinned to it while it lives; each
            takes one CPU).
        cells_per_worker: cells in flight on one worker (default: the spec's concurrency spread over the workers).
        object_store_mb: the local Ray's object store (a local start only).
    """

    def __init__(self, address: str | None = None, *, workers: int | None = None, cells_per_worker: int | None = None,
                 object_store_mb: int = 100) -> None:
        if workers is not None and not 1 <= workers <= 4096:
            raise ConfigError(f"--workers must be 1-4096, got {workers}")
        if cells_per_worker is not None and not 1 <= cells_per_worker <= 100_000:
            raise ConfigError(f"cells per worker must be 1-100000, got {cells_per_worker}")
        self.address, self.workers, self.cells_per_worker = address, workers, cells_per_worker
        self.object_store_mb = object_store_mb
        self.actors: list[Any] = []
        self.started_ray = False
        self.nodes: list[dict[str, Any]] = []
        """Where each worker started: its node id and process id."""
        self.requeued = 0
        """Cells put back in the queue after their worker died."""
        self.requeued_at: list[float] = []
        """When (``time.monotonic``) each was put back."""
        self.lost = 0
        """Cells written as failed after losing their worker ``MAX_LOSSES`` times."""

    def check(self) -> None:
        """What can be refused before a sweep starts, in seconds: Ray missing, an address that does not answer."""
        _import_ray()
        if self.address is not None:
            _reachable(self.address)

    def _init(self, spec: SweepSpec) -> Any:
        import logging

        self.check()
        ray = _import_ray()  # imported by check(): the module, typed loosely
        if not ray.is_initialized():
            options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR,
                                       "include_dashboard": False, "configure_logging": True}
            if self.address is None:
                cpus = os.cpu_count() or 1
                options.update(num_cpus=max(cpus, self.workers or 0), object_store_memory=self.object_store_mb << 20)
            else:
                options["address"] = self.address
            try:
                ray.init(**options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(f"Ray did not start{f' at {self.address}' if self.address else ''}: {exc}") from None
            self.started_ray = True
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if cpus < 1:
            raise ConfigError("the Ray cluster has no CPU for a worker (each worker takes one)")
        return ray

    async def start(self, spec: SweepSpec, infos: dict[str, Any], stores: list[str]) -> None:
        """Start Ray (or join the cluster) and the workers, each opened (backends, handbook snapshots) and ready;
        on any failure, what was started is stopped again."""
        try:
            await self._start(spec, infos, stores)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.close()
            raise

    async def _start(self, spec: SweepSpec, infos: dict[str, Any], stores: list[str]) -> None:
        check_ray_spec(spec)
        ray = await asyncio.to_thread(self._init, spec)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        # One worker per node with a CPU (each its own backends: a local model per machine), or --workers N
        # placed by Ray's scheduler, spread over the nodes.
        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= 1]
        count = self.workers or max(1, len(nodes))
        per = self.cells_per_worker or max(1, -(-spec.concurrency // count))
        self.cells_per_worker = per
        snapshots = {store: await asyncio.to_thread(snapshot, store) for store in stores if not is_service_url(store)}
        from agentkit import tracing

        otel = tracing.active()
        env = {k: v for k, v in os.environ.items() if k.startswith("OTEL_")} if otel else {}
        if any(is_service_url(s) for s in stores) and os.environ.get("AGENTKIT_TOKEN"):
            env["AGENTKIT_TOKEN"] = os.environ["AGENTKIT_TOKEN"]  # the workers reach the handbook service
        remote = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=0, max_concurrency=max(per, 1) + 4)(
            _CellWorker)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options: dict[str, Any] = {"runtime_env": {"env_vars": env}} if env else {}

        def placed(i: int) -> dict[str, Any]:
            if self.workers is None and i < len(nodes):  # its node, while it lives (soft: a restart goes elsewhere)
                return {**options, "scheduling_strategy": NodeAffinitySchedulingStrategy(nodes[i], soft=True)}
            return {**options, "scheduling_strategy": "SPREAD"}

        self.actors = [remote.options(**placed(i)).remote(spec.model_dump_json(), list(spec.plugins), infos,
                                                          snapshots, per, otel)
                       for i in range(count)]
        try:
            self.nodes = await asyncio.wait_for(asyncio.gather(*(self._await(a.ready.remote()) for a in self.actors)),
                                                START_TIMEOUT_S)
        except TimeoutError:
            raise ConfigError(f"{count} Ray worker(s) did not start within {START_TIMEOUT_S:.0f} s: the cluster has "
                              f"{cpus} CPU(s); lower --workers") from None

    @staticmethod
    async def _await(ref: Any) -> Any:
        return await asyncio.wrap_future(ref.future())

    async def run(self, next_cell: Callable[[], Awaitable[Cell | None]], problem_of: Callable[[Cell], Any],
                  deliver: Callable[[dict[str, Any]], Awaitable[None]], lost_row: Callable[[Cell, str], dict[str, Any]]
                  ) -> None:
        """Run every cell ``next_cell`` hands out on the workers and ``deliver`` each row (pull-based: a freed slot
        takes the next cell). A cell whose worker dies goes back to the queue; after ``MAX_LOSSES`` its row is
        ``lost_row(cell, reason)``."""
        _import_ray()
        from ray import exceptions as rx

        dead = (rx.RayActorError, rx.WorkerCrashedError, rx.NodeDiedError, rx.ObjectLostError,
                getattr(rx, "ActorUnavailableError", rx.RayActorError))
        per = self.cells_per_worker or 1
        load = [0] * len(self.actors)
        pending: dict[asyncio.Future[Any], tuple[Cell, int]] = {}
        reviving: dict[asyncio.Future[Any], int] = {}
        """Workers whose actor died: no cells until Ray has restarted it and it answers ``ready`` again."""
        down_since: float | None = None
        requeue: deque[Cell] = deque()
        losses: Counter[str] = Counter()
        exhausted = False
        loop = asyncio.get_running_loop()
        try:
            while True:
                down = set(reviving.values())
                for i, actor in enumerate(self.actors):
                    while i not in down and load[i] < per:
                        cell = requeue.popleft() if requeue else None
                        if cell is None and not exhausted:
                            cell = await next_cell()
                            exhausted = cell is None
                        if cell is None:
                            break
                        ref = actor.run.remote(cell.model_dump_json(), problem_of(cell).model_dump_json())
                        pending[asyncio.ensure_future(self._await(ref))] = (cell, i)
                        load[i] += 1
                if not pending and (not requeue or not reviving):
                    if requeue:  # cannot happen: a requeued cell has a live or reviving worker to go to
                        raise RuntimeError("cells left with no worker")
                    return
                if not pending:  # every worker is down: wait for one, at most START_TIMEOUT_S
                    down_since = down_since or loop.time()
                    if loop.time() - down_since > START_TIMEOUT_S:
                        raise ConfigError(f"every Ray worker died and none came back within {START_TIMEOUT_S:.0f} s "
                                          f"({len(requeue)} cells not run; finished rows are saved: resume later)")
                else:
                    down_since = None
                done, _ = await asyncio.wait({*pending, *reviving}, timeout=START_TIMEOUT_S,
                                             return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    if future in reviving:
                        i = reviving.pop(future)
                        if future.exception() is not None:  # still dead: ask again (Ray restarts it)
                            reviving[asyncio.ensure_future(self._await(self.actors[i].ready.remote()))] = i
                        continue
                    cell, i = pending.pop(future)
                    load[i] -= 1
                    try:
                        row = future.result()
                    except dead as exc:
                        losses[cell.key] += 1
                        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
                        if i not in reviving.values():
                            reviving[asyncio.ensure_future(self._await(self.actors[i].ready.remote()))] = i
                        if losses[cell.key] < MAX_LOSSES:
                            self.requeued += 1
                            self.requeued_at.append(time.monotonic())
                            _log.warning("cell requeued: its worker died", cell=cell.key, error=reason)
                            requeue.append(cell)
                            continue
                        self.lost += 1
                        row = lost_row(cell, f"WorkerLost: the cell lost its worker {MAX_LOSSES} times; last: {reason}")
                    await deliver(row)
        finally:
            for future in (*pending, *reviving):
                future.cancel()

    async def close(self) -> None:
        ray = _import_ray()
        with contextlib.suppress(Exception):  # a traced sweep: every worker's last spans exported first
            await asyncio.wait_for(asyncio.gather(*(self._await(a.flush.remote()) for a in self.actors),
                                                  return_exceptions=True), 30)
        for actor in self.actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self.actors = []
        if self.started_ray:  # a local Ray stops; a cluster is only disconnected from
            await asyncio.to_thread(ray.shutdown)
            self.started_ray = False
