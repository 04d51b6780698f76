"""``Replicated``: one logical model served by several replicas (vLLM, SGLang or llama.cpp servers, one URL each).

A call goes to the replica with the **fewest requests in flight** (ties: the one that has waited longest for a
call), at most ``per_replica`` in flight on each (None: no cap). **Every call of one run stays on one replica**
(the ``CallContext.run_id`` of a sweep cell or a method run): PDR's rounds and the problem's shared prefix then
hit that replica's prefix cache, and a run's calls are not spread over servers whose sampling differs. The
affinity holds while the replica is healthy; the map keeps the most recent 65,536 runs.

A replica that fails a call with a connection error or a 5xx is **ejected for ``cooldown`` seconds** and the call
is retried at once on another healthy replica (the run's affinity moves with it); a 4xx is the request's fault
and is raised as it is. With every replica ejected, the call waits for the first to come back (at most
``cooldown``) and tries it; if that fails too the error is raised (the ``Retrying`` middleware around this
backend then applies its policy). Each completion names the replica that produced it (``Completion.replica``),
so every call of a trace says where it ran.

A single router URL (vLLM's internal data parallelism, vllm-router, SGLang's router) needs none of this: it is a
plain backend.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from agentkit.errors import BackendError, ConfigError
from agentkit.log import get_logger

from .base import Backend, ChatRequest, Completion, Endpoint

__all__ = ["Replica", "Replicated"]

_log = get_logger(__name__)
AFFINITY_SIZE = 65_536


class Replica:
    """One replica's state: its backend, its label (the URL), calls in flight and served, when it may serve again."""

    def __init__(self, backend: Backend, label: str) -> None:
        self.backend, self.label = backend, label
        self.in_flight = 0
        self.served = 0
        self.failed = 0
        self.ejected_until = 0.0
        self.last_start = 0.0

    def healthy(self, now: float) -> bool:
        return now >= self.ejected_until


def _ejects(exc: BaseException) -> bool:
    """Whether a failure says the replica (not the request) is at fault: no connection, a timeout, a 5xx."""
    if not isinstance(exc, BackendError):
        return False
    status = exc.status
    return status is None or status >= 500


class Replicated(Backend):
    """One logical backend over ``replicas`` (see the module doc).

    Args:
        replicas: the replicas' backends (each a plain backend: no retry middleware inside, so that a failed
            replica is left at once for a healthy one).
        labels: one label per replica (default: each backend's ``base_url`` or name), recorded with every call.
        name, model: the logical backend's label and model name (default: the first replica's).
        per_replica: calls in flight on one replica at most (None: no cap).
        cooldown: seconds a replica that failed stays out.
    """

    def __init__(self, replicas: Sequence[Backend], *, labels: Sequence[str] | None = None, name: str | None = None,
                 model: str | None = None, per_replica: int | None = None, cooldown: float = 10.0) -> None:
        if not replicas:
            raise ConfigError("Replicated needs at least one replica")
        if per_replica is not None and per_replica < 1:
            raise ConfigError(f"per_replica must be at least 1, got {per_replica}")
        if not 0 <= cooldown <= 3600:
            raise ConfigError(f"cooldown must be 0-3600 seconds, got {cooldown}")
        labels = list(labels) if labels is not None else [
            str(getattr(b, "base_url", None) or b.name) for b in replicas]
        if len(labels) != len(replicas):
            raise ConfigError("Replicated needs one label per replica")
        self.replicas = [Replica(b, label) for b, label in zip(replicas, labels, strict=True)]
        self.model = model or replicas[0].model
        self.name = name or replicas[0].name
        self.supports_n = all(b.supports_n for b in replicas)
        self.per_replica = per_replica
        self.cooldown = cooldown
        self._affinity: OrderedDict[str, Replica] = OrderedDict()
        self._changed: asyncio.Condition | None = None

    # -- choosing ---------------------------------------------------------------------------------------------
    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    def _free(self, replica: Replica) -> bool:
        return self.per_replica is None or replica.in_flight < self.per_replica

    def _pick(self, run_id: str, avoid: set[Replica]) -> Replica | None:
        """The replica for the next call of ``run_id``: its own while it is healthy (waiting for a free slot
        there), else the healthy one with the fewest calls in flight; None when none can take it now."""
        now = time.monotonic()
        sticky = self._affinity.get(run_id) if run_id else None
        if sticky is not None and sticky not in avoid and sticky.healthy(now):
            return sticky if self._free(sticky) else None
        open_ = [r for r in self.replicas if r not in avoid and r.healthy(now) and self._free(r)]
        if not open_:
            return None
        return min(open_, key=lambda r: (r.in_flight, r.last_start))

    async def _acquire(self, run_id: str, avoid: set[Replica]) -> Replica:
        changed = self._condition()
        async with changed:
            while True:
                chosen = self._pick(run_id, avoid)
                if chosen is not None:
                    break
                now = time.monotonic()
                live = [r for r in self.replicas if r not in avoid]
                if not live:
                    raise BackendError(f"{self.name}: every replica failed this call", cause="no replica")
                if not any(r.healthy(now) for r in live):  # all ejected: the first back is tried
                    soonest = min(live, key=lambda r: r.ejected_until)
                    try:
                        await asyncio.wait_for(changed.wait(), max(0.0, soonest.ejected_until - now))
                    except TimeoutError:
                        soonest.ejected_until = 0.0
                    continue
                await changed.wait()  # every healthy replica is at its cap (or the run's own one is)
            chosen.in_flight += 1
            chosen.last_start = time.monotonic()
            if run_id:
                self._affinity[run_id] = chosen
                self._affinity.move_to_end(run_id)
                while len(self._affinity) > AFFINITY_SIZE:
                    self._affinity.popitem(last=False)
            return chosen

    async def _release(self, replica: Replica, failed: BaseException | None) -> None:
        changed = self._condition()
        async with changed:
            replica.in_flight -= 1
            if failed is None:
                replica.served += 1
            elif _ejects(failed):
                replica.failed += 1
                replica.ejected_until = time.monotonic() + self.cooldown
                _log.warning("replica ejected", backend=self.name, replica=replica.label, cooldown_s=self.cooldown,
                             error=str(failed))
            changed.notify_all()

    # -- the contract -----------------------------------------------------------------------------------------
    async def complete(self, request: ChatRequest) -> list[Completion]:
        run_id = request.context.run_id if request.context is not None else ""
        tried: set[Replica] = set()
        while True:
            replica = await self._acquire(run_id, tried)
            try:
                completions = await replica.backend.complete(request)
            except BaseException as exc:
                await self._release(replica, exc)
                if not _ejects(exc) or isinstance(exc, asyncio.CancelledError):
                    raise
                tried.add(replica)
                if len(tried) == len(self.replicas):
                    raise
                continue
            await self._release(replica, None)
            return [c.model_copy(update={"replica": replica.label}) for c in completions]

    async def count_prompt_tokens(self, request: ChatRequest) -> int | None:
        now = time.monotonic()
        for replica in sorted(self.replicas, key=lambda r: (not r.healthy(now), r.in_flight)):
            counted = await replica.backend.count_prompt_tokens(request)
            if counted is not None:
                return counted
        return None

    async def endpoint(self) -> Endpoint | None:
        return None  # a relay would pin every request to one replica and bypass the balancing

    def describe(self) -> dict[str, Any]:
        return {"backend": type(self).__name__, "name": self.name, "model": self.model,
                "replicas": [r.label for r in self.replicas], "per_replica": self.per_replica,
                "cooldown_s": self.cooldown}

    async def identity(self) -> dict[str, Any]:
        """``describe()`` with each replica's identity (what each serves: a row names the model that answered)."""
        found = await asyncio.gather(*(r.backend.identity() for r in self.replicas))
        return {**self.describe(), "replica_identities": {r.label: i for r, i in zip(self.replicas, found, strict=True)}}

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per replica: calls served and failed, in flight now, and whether it is ejected."""
        now = time.monotonic()
        return {r.label: {"served": r.served, "failed": r.failed, "in_flight": r.in_flight,
                          "ejected": not r.healthy(now)} for r in self.replicas}

    async def aclose(self) -> None:
        for replica in self.replicas:
            await replica.backend.aclose()
