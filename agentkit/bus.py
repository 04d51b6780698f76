"""The in-process asyncio event bus: the only way roles talk to each other.

- ``subscribe(MessageType, handler, predicate=..., run_id=...)`` registers a handler for a message type and
  its subclasses (``Message`` itself matches everything); with ``run_id``, only that run's messages (found by
  key at publish time, so many concurrent runs on one bus cost each message one dictionary look-up, not a
  predicate call per run). Each subscription owns a **bounded** queue and one
  worker task, so its messages are handled one at a time, in publish order. ``concurrency=N`` gives a
  subscription N workers on its one queue (taken in publish order, handled N at a time) for handlers
  that call a model and should overlap.
- ``publish(message)`` fans the message out to every matching subscription. When a subscriber's queue is
  full, ``publish`` waits: a slow handler slows its publishers (backpressure) instead of growing memory.
- A handler may return a message; the bus publishes it (the usual way to answer).
- A handler that raises does not stop anything: the bus publishes a ``Failure`` whose ``parent_id`` is the
  message that was being handled, logs it, and carries on. (A failure while handling a ``Failure`` is
  logged only, so failures never cascade.)
- ``request(message, ReplyType, timeout=...)`` publishes and waits for the first ``ReplyType`` message whose
  ``parent_id`` is the request's id; a ``Failure`` for it raises ``HandlerFailed`` (whose ``__cause__`` is
  the handler's own exception when the handler ran on this bus).
- ``close()`` refuses new outside publishes, lets handlers finish everything queued (including what they
  publish while finishing), then stops the workers.
- ``Recorder`` writes every message (of one run, or all) to JSON Lines; ``replay`` publishes a recorded
  file again in the same order.

A handler must not wait on a full queue of its own subscription (publishing a message it itself
subscribes to while its queue is full would wait on itself); give such a subscription a larger queue.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from agentkit import tracing
from agentkit.errors import BusClosed, ConfigError, HandlerFailed, RequestTimeout
from agentkit.log import get_logger
from agentkit.messages import Failure, Message, from_json, to_json

__all__ = ["Bus", "Recorder", "Subscription", "read_recording", "replay"]

M = TypeVar("M", bound=Message)
R = TypeVar("R", bound=Message)
Handler = Callable[[Any], "Awaitable[Message | None] | Message | None"]

_log = get_logger(__name__)
# Set inside worker tasks, so that publishes made by handlers are still accepted while the bus drains.
_in_handler: contextvars.ContextVar[bool] = contextvars.ContextVar("agentkit_bus_in_handler", default=False)


@dataclass(frozen=True, eq=False)
class Subscription:
    """A handler registered for a message type (and its subclasses), with an optional predicate."""

    message_type: type[Message]
    handler: Handler
    predicate: Callable[[Any], bool] | None
    name: str
    queue_size: int
    concurrency: int = 1
    run_id: str | None = None
    """Only this run's messages (None: every run's)."""

    def matches(self, message: Message) -> bool:
        """Whether this subscription receives ``message``."""
        return (isinstance(message, self.message_type) and (self.run_id is None or message.run_id == self.run_id)
                and (self.predicate is None or self.predicate(message)))


@dataclass(eq=False)
class _Worker:
    sub: Subscription
    queue: asyncio.Queue[tuple[Message, Any]]
    """Each message with the trace context it was published in (None when tracing is off)."""
    is_async: bool
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


@dataclass(eq=False)
class _Waiter:
    reply_type: type[Message]
    future: asyncio.Future[Message] = field(repr=False)


class Bus:
    """In-process publish/subscribe with bounded queues, request/reply and failure isolation.

    Example::

        async with Bus() as bus:
            async def solve(req: SolveRequest) -> Solution:
                return req.derive(Solution, problem_id=req.problem.problem_id, text="4", answer="4")
            bus.subscribe(SolveRequest, solve)
            solution = await bus.request(SolveRequest(problem=p), Solution, timeout=10)
    """

    def __init__(self, *, queue_size: int = 1024, name: str = "bus") -> None:
        if queue_size < 1:
            raise ConfigError(f"queue_size must be at least 1, got {queue_size}")
        self.name = name
        self.queue_size = queue_size
        self._workers: list[_Worker] = []
        self._routes: dict[type[Message], list[_Worker]] = {}
        """Subscriptions for every run, by message type (built on first use, cleared on (un)subscribe)."""
        self._run_workers: dict[str, list[_Worker]] = {}
        """Subscriptions for one run, by run id."""
        self._waiters: dict[str, _Waiter] = {}
        self._closing = False
        self._closed = False
        self.published = 0
        """Messages published so far (including replies and failures the bus published itself)."""
        self.failures = 0
        """Handler exceptions so far."""

    # -- subscriptions -----------------------------------------------------------------------------
    def subscribe(
        self,
        message_type: type[M],
        handler: Callable[[M], Awaitable[Message | None] | Message | None],
        *,
        predicate: Callable[[M], bool] | None = None,
        name: str | None = None,
        queue_size: int | None = None,
        concurrency: int = 1,
        run_id: str | None = None,
    ) -> Subscription:
        """Register ``handler`` for ``message_type`` (and subclasses); it runs in its own worker task(s).
        With ``run_id``, it receives only messages of that run."""
        if self._closing:
            raise BusClosed(f"bus {self.name!r} is closed; create a new Bus to subscribe")
        if not (isinstance(message_type, type) and issubclass(message_type, Message)):
            raise ConfigError(f"subscribe() needs a Message subclass, got {message_type!r}")
        size = self.queue_size if queue_size is None else queue_size
        if size < 1:
            raise ConfigError(f"queue_size must be at least 1, got {size}")
        if concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
        label = name or getattr(handler, "__qualname__", None) or repr(handler)
        sub = Subscription(message_type, handler, predicate, label, size, concurrency, run_id)
        is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)  # noqa: B004 (an async __call__ on an object)
        )
        worker = _Worker(sub, asyncio.Queue(maxsize=size), is_async)
        loop = asyncio.get_running_loop()
        worker.tasks = [loop.create_task(self._run(worker), name=f"bus:{label}:{i}") for i in range(concurrency)]
        self._workers.append(worker)
        if run_id is None:
            self._routes.clear()
        else:
            self._run_workers.setdefault(run_id, []).append(worker)
        return sub

    async def unsubscribe(self, subscription: Subscription, *, drain: bool = True) -> None:
        """Stop delivering to ``subscription`` after it has handled what is already queued for it; with
        ``drain=False``, at once: its handlers in progress are cancelled and what is queued is dropped (a run
        that was cancelled or failed abandons its own work, model calls in flight included)."""
        for worker in self._workers:
            if worker.sub is subscription:
                self._workers.remove(worker)
                run_id = subscription.run_id
                if run_id is None:
                    self._routes.clear()
                else:
                    run_workers = self._run_workers[run_id]
                    run_workers.remove(worker)
                    if not run_workers:
                        del self._run_workers[run_id]
                if drain:
                    await worker.queue.join()
                await self._stop(worker)
                return

    def _route(self, message_type: type[Message]) -> list[_Worker]:
        workers = self._routes.get(message_type)
        if workers is None:
            workers = [w for w in self._workers
                       if w.sub.run_id is None and issubclass(message_type, w.sub.message_type)]
            self._routes[message_type] = workers
        return workers

    # -- publishing --------------------------------------------------------------------------------
    async def publish(self, message: Message) -> None:
        """Deliver ``message`` to every matching subscription, waiting where a queue is full."""
        if self._closed or (self._closing and not _in_handler.get()):
            raise BusClosed(f"bus {self.name!r} is closed; publish before close() or use a new Bus")
        if not isinstance(message, Message):
            raise ConfigError(f"publish() needs a Message, got {type(message).__name__}")
        self.published += 1
        if self._waiters and message.parent_id is not None:
            self._resolve_waiter(message)
        workers = self._route(type(message))
        context = tracing.capture()  # the publisher's trace context travels with the message
        run_workers = self._run_workers.get(message.run_id) if self._run_workers else None
        if run_workers:
            workers = workers + [w for w in run_workers if isinstance(message, w.sub.message_type)]
        for worker in workers:
            predicate = worker.sub.predicate
            if predicate is not None and not predicate(message):
                continue
            try:
                worker.queue.put_nowait((message, context))
            except asyncio.QueueFull:
                await worker.queue.put((message, context))  # backpressure: wait for the slow subscriber

    def _resolve_waiter(self, message: Message) -> None:
        assert message.parent_id is not None
        waiter = self._waiters.get(message.parent_id)
        if waiter is None or waiter.future.done():
            return
        if isinstance(message, waiter.reply_type):
            waiter.future.set_result(message)
        elif isinstance(message, Failure):
            waiter.future.set_exception(
                HandlerFailed(f"handler {message.handler!r} failed: {message.error_type}: {message.error}", message)
            )

    async def request(self, message: Message, reply_type: type[R], *, timeout: float) -> R:
        """Publish ``message`` and wait for its reply: the first ``reply_type`` with ``parent_id == message.id``.

        Raises:
            RequestTimeout: no reply within ``timeout`` seconds.
            HandlerFailed: a handler raised while handling ``message``.
        """
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiters[message.id] = _Waiter(reply_type, future)
        try:
            await self.publish(message)
            try:
                reply = await asyncio.wait_for(future, timeout)
            except TimeoutError:
                raise RequestTimeout(
                    f"no {reply_type.__name__} answered {type(message).__name__} {message.id} within {timeout} s; "
                    f"is a handler subscribed to {type(message).__name__} and does it reply with derive()?"
                ) from None
        finally:
            self._waiters.pop(message.id, None)
        assert isinstance(reply, reply_type)
        return reply

    # -- workers -----------------------------------------------------------------------------------
    async def _run(self, worker: _Worker) -> None:
        _in_handler.set(True)
        sub, queue = worker.sub, worker.queue
        while True:
            message, context = await queue.get()
            try:
                if context is None:  # tracing off: no span, nothing attached
                    await self._handle(worker, message)
                else:
                    with tracing.attached(context), tracing.span(  # a low-cardinality name: the role, not its run
                            f"agentkit.step {sub.name.partition('[')[0]} {message.kind}",
                            {"agentkit.handler": sub.name, "openinference.span.kind": "AGENT"}):
                        await self._handle(worker, message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                _log.warning(
                    "handler failed", bus=self.name, handler=sub.name, kind=message.kind,
                    message_id=message.id, error=f"{type(exc).__name__}: {exc}",
                )
                if not isinstance(message, Failure):
                    failure = message.derive(
                        Failure, sender=f"bus:{self.name}", error_type=type(exc).__name__, error=str(exc),
                        handler=sub.name, failed_kind=message.kind,
                    )
                    waiter = self._waiters.get(message.id)
                    if waiter is not None and not waiter.future.done():
                        # In-process, the requester also gets the exception itself (``HandlerFailed.__cause__``).
                        error = HandlerFailed(f"handler {sub.name!r} failed: {type(exc).__name__}: {exc}", failure)
                        error.__cause__ = exc
                        waiter.future.set_exception(error)
                    try:
                        await self.publish(failure)
                    except BusClosed:
                        pass
            finally:
                queue.task_done()

    async def _handle(self, worker: _Worker, message: Message) -> None:
        """Run the subscription's handler on ``message`` and publish the message it returns."""
        result = worker.sub.handler(message)
        if worker.is_async:
            result = await result  # type: ignore[misc]
        elif result is not None and inspect.isawaitable(result):  # a plain function returning None: done
            result = await result
        if isinstance(result, Message):
            await self.publish(result)

    @staticmethod
    async def _stop(worker: _Worker) -> None:
        for task in worker.tasks:
            task.cancel()
        for task in worker.tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass

    # -- lifecycle ---------------------------------------------------------------------------------
    async def drain(self) -> None:
        """Wait until every queue is empty and every handler idle (work published meanwhile included)."""
        while any(w.queue._unfinished_tasks for w in self._workers):  # type: ignore[attr-defined]
            await asyncio.gather(*(w.queue.join() for w in list(self._workers)))

    async def close(self, *, drain: bool = True) -> None:
        """Refuse new outside publishes, finish all queued work (``drain=False``: cancel it), then stop every
        worker. Idempotent."""
        if self._closed:
            return
        self._closing = True
        try:
            if drain:
                await self.drain()
        finally:
            self._closed = True
            for worker in self._workers:
                await self._stop(worker)
            for waiter in self._waiters.values():
                if not waiter.future.done():
                    waiter.future.set_exception(BusClosed(f"bus {self.name!r} closed before a reply came"))

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(w.sub for w in self._workers)

    async def __aenter__(self) -> Bus:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Recorder:
    """Writes every message published on a bus (optionally of one run) to a JSON Lines file, in order.

    Use as ``recorder = Recorder(path).attach(bus)`` and ``await recorder.close()`` after the bus closed (or
    as an async context manager around the run). Lines are buffered and flushed on close.
    """

    def __init__(self, path: str | Path, *, run_id: str | None = None, queue_size: int = 65536) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self.queue_size = queue_size
        self.count = 0
        self._fh: IO[str] | None = None
        self._sub: Subscription | None = None
        self._bus: Bus | None = None

    def attach(self, bus: Bus) -> Recorder:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8")
        self._bus = bus
        self._sub = bus.subscribe(Message, self._write, name="recorder", queue_size=self.queue_size,
                                  run_id=self.run_id)
        return self

    def _write(self, message: Message) -> None:
        # A buffered write of one short line: memory-speed, so it is fine on the event loop.
        assert self._fh is not None
        self._fh.write(to_json(message) + "\n")
        self.count += 1

    async def close(self) -> None:
        if self._bus is not None and self._sub is not None and not self._bus.closed:
            await self._bus.unsubscribe(self._sub)
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    async def __aenter__(self) -> Recorder:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def read_recording(path: str | Path, *, run_id: str | None = None) -> list[Message]:
    """The messages of a recording, in order (optionally only one run's)."""
    messages: list[Message] = []
    with Path(path).open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                message = from_json(line)
            except ConfigError as exc:
                raise ConfigError(f"{path}:{number}: {exc}") from exc
            if run_id is None or message.run_id == run_id:
                messages.append(message)
    return messages


async def replay(path: str | Path, bus: Bus, *, run_id: str | None = None,
                 kinds: Iterable[str] | None = None) -> int:
    """Publish the messages of a recording on ``bus`` again, in recorded order; returns how many.

    ``kinds`` limits the replay to some message kinds (for example only the requests, so that live
    handlers produce fresh replies).
    """
    messages = await asyncio.to_thread(read_recording, path, run_id=run_id)
    wanted = None if kinds is None else set(kinds)
    count = 0
    for message in messages:
        if wanted is None or message.kind in wanted:
            await bus.publish(message)
            count += 1
    return count
