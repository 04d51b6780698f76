"""Middleware: backends that wrap another backend and add one behaviour each.

- ``Retrying``: retries transient failures (429, 408/409, 5xx, timeouts, connection resets, malformed
  replies) with exponential backoff and jitter, honouring the server's ``Retry-After``, bounded both in attempts and in total
  time; other 4xx fail at once with the server's message. The final error names the last cause.
- ``Limited``: a ``ConcurrencyLimit`` (at most N calls in flight) and/or a ``RateLimit`` (requests and
  tokens per minute). The limit objects are passed in explicitly and may be **shared** by several
  backends; nothing reads an environment variable, so a limit never silently fails to apply (graphiti
  #1398 read its limit from the environment at import and ran 200 calls at once).
- ``Cached``: an on-disk response cache (``ResponseCache``, SQLite) keyed by the full request *and* its
  ``CallContext`` (run, role, round, branch, sample). Only successful, non-empty replies are stored; a hit
  returns the original usage flagged ``cached=True``.

``with_middleware(backend, ...)`` stacks them in the order that makes sense: cache outermost (a hit costs
nothing), then retry (a backoff sleep holds no concurrency slot), then limits, then the backend.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentkit.errors import CONNECTION_REFUSED, BackendError, BackendUnavailable, ConfigError, MalformedResponse
from agentkit.ledger import estimate_prompt_tokens
from agentkit.log import get_logger

from .base import Backend, ChatRequest, Completion, Endpoint

__all__ = [
    "Cached",
    "ConcurrencyLimit",
    "Limited",
    "RateLimit",
    "ResponseCache",
    "RetryPolicy",
    "Retrying",
    "Wrapper",
    "with_middleware",
]

_log = get_logger(__name__)


class Wrapper(Backend):
    """A backend that delegates to ``inner``; subclasses override ``complete``. Does nothing on its own."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    @property
    def model(self) -> str:  # type: ignore[override]
        return self.inner.model

    @property
    def supports_n(self) -> bool:  # type: ignore[override]
        return self.inner.supports_n

    async def complete(self, request: ChatRequest) -> list[Completion]:
        return await self.inner.complete(request)

    async def count_prompt_tokens(self, request: ChatRequest) -> int | None:
        return await self.inner.count_prompt_tokens(request)

    async def identity(self) -> dict[str, Any]:
        return await self.inner.identity()

    async def endpoint(self) -> Endpoint | None:
        return await self.inner.endpoint()

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def unwrap(self) -> Backend:
        """The innermost backend under every wrapper."""
        inner = self.inner
        while isinstance(inner, Wrapper):
            inner = inner.inner
        return inner


# ---------------------------------------------------------------------------------------------- retry
class RetryPolicy(BaseModel):
    """How hard ``Retrying`` tries. Both bounds apply: whichever comes first ends the retries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: int = Field(default=6, ge=1)
    """Total attempts, the first included."""
    max_time: float = Field(default=300.0, gt=0)
    """Seconds from the first attempt after which no new attempt starts (sleeps included)."""
    initial_wait: float = Field(default=0.5, ge=0)
    """First backoff in seconds when the server gave no Retry-After; doubles each attempt."""
    max_wait: float = Field(default=30.0, ge=0)
    """Largest backoff between attempts (a longer Retry-After is capped to ``max_retry_after``)."""
    max_retry_after: float = Field(default=120.0, ge=0)
    """Longest Retry-After honoured; a server asking for more is waited on for this long."""
    refused_attempts: int = Field(default=3, ge=1)
    """Attempts when the connection is refused (nothing listens at the address: a wrong port, a server not
    up), so a mistake fails in about a second instead of after the whole backoff."""


def is_transient(exc: BaseException) -> bool:
    """Whether retrying ``exc`` may help."""
    return isinstance(exc, (BackendUnavailable, MalformedResponse))


class Retrying(Wrapper):
    """Retry transient failures of ``inner`` under a ``RetryPolicy``."""

    def __init__(self, inner: Backend, policy: RetryPolicy | None = None,
                 *, sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        super().__init__(inner)
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self.retries = 0
        """Retries made so far (for logs and tests)."""

    def _wait(self, attempt: int, exc: BaseException) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based) raised ``exc``."""
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return float(min(retry_after, self.policy.max_retry_after))
        # Exponential backoff with jitter: initial * 2^(attempt-1), capped, plus up to `initial` at random
        # so that many clients that failed together do not retry together.
        backoff = self.policy.initial_wait * float(2 ** (attempt - 1))
        return min(self.policy.max_wait, backoff) + random.uniform(0, self.policy.initial_wait)

    async def complete(self, request: ChatRequest) -> list[Completion]:
        # A plain loop rather than a retry library: a call that succeeds first time (nearly all of them) costs
        # one try/except here, where tenacity's retry object cost ~40 us of CPU per call, a third of the whole
        # middleware stack's overhead over a bare client (benchmarks/perf/bench_overhead.py).
        policy = self.policy
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self.inner.complete(request)
            except BackendError as exc:
                if not is_transient(exc):
                    raise
                last = exc
            refused = last.cause == CONNECTION_REFUSED
            if attempt >= policy.attempts or (refused and attempt >= policy.refused_attempts):
                break
            wait = self._wait(attempt, last)
            if time.monotonic() - started + wait >= policy.max_time:  # no attempt starts after max_time
                break
            self.retries += 1
            _log.info("retrying", backend=self.name, attempt=attempt, wait_s=round(wait, 3), cause=last.cause)
            await self._sleep(wait)
        elapsed = time.monotonic() - started
        raise BackendUnavailable(
            f"{self.name}: gave up after {attempt} attempt(s) in {elapsed:.1f} s ({last.cause}); last error: {last}",
            cause=last.cause, status=last.status, attempts=attempt,
        ) from last


# ---------------------------------------------------------------------------------------------- limits
class ConcurrencyLimit:
    """At most ``max_concurrent`` calls in flight; share one object between backends to share the limit.

    ``max_queued`` (optional) bounds how many calls may wait; one more raises ``ConfigError`` at once
    rather than queueing without bound.
    """

    def __init__(self, max_concurrent: int, *, max_queued: int | None = None) -> None:
        if max_concurrent < 1:
            raise ConfigError(f"max_concurrent must be at least 1, got {max_concurrent}")
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self._semaphore = asyncio.Semaphore(max_concurrent)
        self.in_flight = 0
        self.waiting = 0
        self.peak = 0
        """Most calls ever in flight at once."""

    async def acquire(self) -> None:
        """Take a slot, waiting while ``max_concurrent`` calls are in flight; pair with ``release()``."""
        semaphore = self._semaphore
        if semaphore.locked():
            if self.max_queued is not None and self.waiting >= self.max_queued:
                raise ConfigError(
                    f"concurrency limit {self.max_concurrent} with max_queued={self.max_queued} is saturated; "
                    "raise max_queued or submit work from a bounded iterator"
                )
            self.waiting += 1
            try:
                await semaphore.acquire()
            finally:
                self.waiting -= 1
        else:
            await semaphore.acquire()  # a free slot: returns without suspending
        self.in_flight += 1
        if self.in_flight > self.peak:
            self.peak = self.in_flight

    def release(self) -> None:
        """Give back a slot taken by ``acquire()``."""
        self.in_flight -= 1
        self._semaphore.release()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """``async with limit.slot():`` around one call (``acquire``/``release`` without the context manager's
        generator are what ``Limited`` uses on its hot path)."""
        await self.acquire()
        try:
            yield
        finally:
            self.release()


class RateLimit:
    """Requests-per-minute and/or tokens-per-minute limit (token buckets refilled continuously).

    A call reserves one request and an estimate of its tokens (prompt characters / 4 + ``max_tokens``)
    before it starts; when it ends, ``settle`` charges the difference to the real usage, so the bucket
    tracks what the server really counted. Share one object between backends that share a quota.
    """

    def __init__(self, *, requests_per_minute: float | None = None, tokens_per_minute: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        for label, value in (("requests_per_minute", requests_per_minute),
                             ("tokens_per_minute", tokens_per_minute)):
            if value is not None and value <= 0:
                raise ConfigError(f"{label} must be positive, got {value}")
        self.rpm = requests_per_minute
        self.tpm = tokens_per_minute
        self._clock = clock
        self._requests = float(requests_per_minute or 0)
        self._tokens = float(tokens_per_minute or 0)
        self._stamp = clock()
        self._lock = asyncio.Lock()
        self._queued = 0
        """Callers inside the slow path (waiting on the lock or for tokens); while there are any, a new caller
        queues behind them, so the limit stays first come, first served."""
        self.waited_s = 0.0
        """Total seconds calls spent waiting on this limit."""

    def _refill(self) -> None:
        now = self._clock()
        elapsed, self._stamp = now - self._stamp, now
        if self.rpm:
            self._requests = min(self.rpm, self._requests + elapsed * self.rpm / 60.0)
        if self.tpm:
            self._tokens = min(self.tpm, self._tokens + elapsed * self.tpm / 60.0)

    def _delay(self, tokens: float) -> float:
        delay = 0.0
        if self.rpm and self._requests < 1:
            delay = max(delay, (1 - self._requests) * 60.0 / self.rpm)
        if self.tpm:
            need = min(tokens, self.tpm)  # a call larger than the whole bucket waits for a full bucket
            if self._tokens < need:
                delay = max(delay, (need - self._tokens) * 60.0 / self.tpm)
        return delay

    async def acquire(self, tokens: float = 0.0) -> None:
        """Wait until one request and ``tokens`` tokens are available, then take them."""
        if not self._queued:  # nobody waiting: take at once when the buckets hold enough (no lock, no await)
            self._refill()
            if self._delay(tokens) <= 0:
                self._take(tokens)
                return
        self._queued += 1
        try:
            async with self._lock:  # FIFO: callers are served in arrival order
                while True:
                    self._refill()
                    delay = self._delay(tokens)
                    if delay <= 0:
                        break
                    self.waited_s += delay
                    await asyncio.sleep(delay)
                self._take(tokens)
        finally:
            self._queued -= 1

    def _take(self, tokens: float) -> None:
        if self.rpm:
            self._requests -= 1
        if self.tpm:
            self._tokens -= min(tokens, self.tpm)

    def settle(self, estimated: float, actual: float) -> None:
        """Charge the difference between a call's estimated and actual tokens (may go negative: later
        calls then wait longer)."""
        if self.tpm:
            self._tokens -= actual - min(estimated, self.tpm)


def request_tokens(request: ChatRequest) -> int:
    """A conservative pre-call estimate of what a request may cost: its prompt (the ledger's estimator,
    ``agentkit.ledger.estimate_prompt_tokens``) plus the output cap per choice."""
    return estimate_prompt_tokens(request.messages) + (request.max_tokens or 512) * request.n


class Limited(Wrapper):
    """Applies a shared ``ConcurrencyLimit`` and/or ``RateLimit`` to every call of ``inner``."""

    def __init__(self, inner: Backend, *, concurrency: ConcurrencyLimit | None = None,
                 rate: RateLimit | None = None) -> None:
        super().__init__(inner)
        if concurrency is None and rate is None:
            raise ConfigError("Limited needs a ConcurrencyLimit, a RateLimit, or both")
        self.concurrency = concurrency
        self.rate = rate

    async def endpoint(self) -> Endpoint | None:
        return None  # a relay would bypass the limits

    async def complete(self, request: ChatRequest) -> list[Completion]:
        rate, concurrency = self.rate, self.concurrency
        if rate is None:
            assert concurrency is not None
            await concurrency.acquire()
            try:
                return await self.inner.complete(request)
            finally:
                concurrency.release()
        estimate = request_tokens(request)
        await rate.acquire(estimate)
        actual = 0
        try:
            if concurrency is not None:
                await concurrency.acquire()
                try:
                    result = await self.inner.complete(request)
                finally:
                    concurrency.release()
            else:
                result = await self.inner.complete(request)
            actual = sum(c.output_tokens for c in result) + (result[0].input_tokens if result else 0)
            return result
        finally:
            rate.settle(estimate, actual)


# ---------------------------------------------------------------------------------------------- cache
def cache_key(request: ChatRequest, model: str) -> str:
    """SHA-256 over the model, every sampling parameter, the messages and the call context."""
    payload = request.model_dump(mode="json")
    payload["model"] = model
    payload["context"] = payload.get("context") or {}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class ResponseCache:
    """A bounded on-disk cache of replies in one SQLite file (WAL), safe for several processes.

    ``max_entries`` bounds its size: past it, the least recently used entries are evicted.
    """

    def __init__(self, path: str | Path, *, max_entries: int = 200_000) -> None:
        if max_entries < 1:
            raise ConfigError(f"max_entries must be at least 1, got {max_entries}")
        self.path = Path(path)
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, value TEXT NOT NULL, used REAL NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS replies_used ON replies(used)")

    def _get(self, key: str) -> list[Completion] | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM replies WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            self._db.execute("UPDATE replies SET used = ? WHERE key = ?", (time.time(), key))
        return [Completion.model_validate(item) for item in json.loads(row[0])]

    def _put(self, key: str, completions: list[Completion]) -> None:
        value = json.dumps([c.model_dump(mode="json") for c in completions])
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?, ?)", (key, value, time.time()))
            (count,) = self._db.execute("SELECT COUNT(*) FROM replies").fetchone()
            if count > self.max_entries:
                self._db.execute(
                    "DELETE FROM replies WHERE key IN (SELECT key FROM replies ORDER BY used LIMIT ?)",
                    (count - self.max_entries,),
                )

    async def get(self, key: str) -> list[Completion] | None:
        found = await asyncio.to_thread(self._get, key)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    async def put(self, key: str, completions: list[Completion]) -> None:
        await asyncio.to_thread(self._put, key, completions)

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Cached(Wrapper):
    """Serve repeated requests from a ``ResponseCache``.

    A request that is sampled (temperature > 0) with neither a seed nor a ``CallContext`` is never cached:
    nothing would tell its repeats apart, and caching it would turn n samples into one.
    """

    def __init__(self, inner: Backend, cache: ResponseCache) -> None:
        super().__init__(inner)
        self.cache = cache

    async def endpoint(self) -> Endpoint | None:
        return None  # a relay would bypass the cache

    async def complete(self, request: ChatRequest) -> list[Completion]:
        cacheable = not (request.temperature > 0 and request.seed is None and request.context is None)
        if not cacheable:
            return await self.inner.complete(request)
        key = cache_key(request, self.model)
        hit = await self.cache.get(key)
        if hit is not None:
            return [c.model_copy(update={"cached": True}) for c in hit]
        result = await self.inner.complete(request)
        if result and all(c.text.strip() for c in result):
            await self.cache.put(key, result)
        return result


def with_middleware(
    backend: Backend,
    *,
    retry: RetryPolicy | bool | None = True,
    concurrency: ConcurrencyLimit | None = None,
    rate: RateLimit | None = None,
    cache: ResponseCache | None = None,
) -> Backend:
    """Stack middleware on ``backend``: Cached(Retrying(Limited(backend))), each only where asked."""
    stacked = backend
    if concurrency is not None or rate is not None:
        stacked = Limited(stacked, concurrency=concurrency, rate=rate)
    if retry:
        stacked = Retrying(stacked, retry if isinstance(retry, RetryPolicy) else None)
    if cache is not None:
        stacked = Cached(stacked, cache)
    return stacked

