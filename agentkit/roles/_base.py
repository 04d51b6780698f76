"""What every role shares: a backend, an optional run ledger, and attaching to a bus for one run or for all.

A role is an agent that owns its model steps. It can be attached two ways:

- **for one run** (``attach(bus, run_id=...)``, done by a method for the length of its run): it handles only
  that run's requests and charges every call to the run's ``ledger`` (given at construction), so the run's
  ``B_seq`` / ``B_total`` cover everything it spent;
- **for everyone** (``attach(bus)``, done by applications): it handles every request of its type and gives
  each request a ledger of its own.

``attached(bus, run_id, roles)`` is how methods do the first: it attaches the roles to the bus they were given
(or to a bus of their own) and detaches them when the run ends, whatever happens. ``ask(bus, request, Reply)``
is ``bus.request`` that re-raises a handler's own exception (a ``BudgetExceeded``, a ``BackendError``), so a
run on the bus fails exactly as the same steps called directly would.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar, TypeVar

from agentkit.backends.base import Backend
from agentkit.bus import Bus, Subscription
from agentkit.errors import ConfigError, HandlerFailed
from agentkit.ledger import Ledger
from agentkit.messages import Message

__all__ = ["REQUEST_TIMEOUT_S", "Role", "ask", "attached"]

REQUEST_TIMEOUT_S = 3600.0
"""How long a method waits for one role's reply (a long generation on a slow backend)."""

R = TypeVar("R", bound=Message)


class Role:
    """Base of the roles: a backend and, for a role attached to one run, that run's ledger."""

    name: ClassVar[str] = "role"
    request_type: ClassVar[type[Message]] = Message
    """The request this role answers when attached for one run."""
    default_concurrency: ClassVar[int] = 1

    def __init__(self, backend: Backend, *, ledger: Ledger | None = None) -> None:
        self.backend = backend
        self.ledger = ledger
        """The run ledger every call is charged to; None: each request gets its own."""

    def ledger_for(self, request: Message) -> Ledger:
        """The ledger a request's calls go to: the run's, or a fresh one for this request."""
        return self.ledger if self.ledger is not None else Ledger(run_id=request.run_id)

    async def handle(self, request: Any) -> Message:
        raise NotImplementedError

    def subscribe(self, bus: Bus, message_type: type[Message], *, concurrency: int | None = None,
                  run_id: str | None = None, queue_size: int | None = None) -> Subscription:
        """Subscribe ``handle`` to ``message_type``; with ``run_id``, only that run's messages."""
        name = self.name if run_id is None else f"{self.name}[{run_id}]"
        return bus.subscribe(message_type, self.handle, name=name, queue_size=queue_size, run_id=run_id,
                             concurrency=concurrency or self.default_concurrency)

    def attach(self, bus: Bus, *, concurrency: int | None = None, run_id: str | None = None) -> Subscription:
        """Handle ``request_type`` on ``bus`` (only run ``run_id``'s requests when given)."""
        return self.subscribe(bus, self.request_type, concurrency=concurrency, run_id=run_id)


@contextlib.asynccontextmanager
async def attached(bus: Bus | None, run_id: str, roles: Sequence[tuple[Role, int]]) -> AsyncIterator[Bus]:
    """Attach ``roles`` (each with its concurrency) for run ``run_id`` to ``bus``, or to a bus of their own when
    ``bus`` is None; yield the bus; detach them (or close the own bus) when the block ends. A block that ends by
    an exception or a cancellation (a client that went away) cancels the roles' work in progress, model calls
    included, instead of waiting for it.

    Two runs with the same ``run_id`` cannot share a bus (their requests would be indistinguishable): that is a
    ``ConfigError``.
    """
    own = bus is None
    active = Bus(name=f"run:{run_id}") if bus is None else bus
    taken = {s.name for s in active.subscriptions}
    for role, _ in roles:
        if f"{role.name}[{run_id}]" in taken:
            raise ConfigError(f"run {run_id!r} is already running on bus {active.name!r}; give each concurrent run "
                              "its own run_id (Problem.run_id)")
    subscriptions: list[Subscription] = []
    finished = False
    try:
        for role, concurrency in roles:
            subscriptions.append(role.attach(active, concurrency=concurrency, run_id=run_id))
        yield active
        finished = True
    finally:
        if own:
            await active.close(drain=finished)
        else:
            for subscription in subscriptions:
                await active.unsubscribe(subscription, drain=finished)


async def ask(bus: Bus, request: Message, reply_type: type[R], *, timeout: float = REQUEST_TIMEOUT_S) -> R:
    """``bus.request``, re-raising the handler's own exception when it failed on this bus."""
    try:
        return await bus.request(request, reply_type, timeout=timeout)
    except HandlerFailed as exc:
        if isinstance(exc.__cause__, Exception):
            raise exc.__cause__ from None
        raise
