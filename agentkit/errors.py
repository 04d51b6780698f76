"""The exceptions agentkit raises, one small tree.

Every message says what went wrong *and what to do about it*. Catch ``AgentkitError`` to catch
everything agentkit raises on purpose; anything else escaping the library is a bug.

```
AgentkitError
├── ConfigError                  a usage mistake: bad spec, bad argument, missing API key
│   ├── ModelNotAvailable        the embedded model (or a GGUF path) is missing or corrupt
│   └── LimitExceeded            a run would cause more calls or tokens than one run may (registry.LIMITS)
├── BackendError                 an LLM call failed
│   ├── BackendRequestError      the server refused the request (4xx other than 429); not retried
│   ├── BackendUnavailable       429 / 5xx / timeout / connection reset / malformed reply, after retries
│   └── MalformedResponse        the server answered 2xx with something that is not a chat completion
├── BudgetExceeded               a token budget has nothing left for the next call
├── StoreError                   the behavior store
│   ├── StoreLocked              another process owns the embedded store (use `agentkit serve` or a URL)
│   ├── StoreNotFound            a reading command was given a path with no store (it creates none)
│   ├── BehaviorNotFound         no behavior (or version) of that name
│   └── EmbedderMismatch         the store's vectors were made by another embedder (name or dimension)
└── BusError                     the event bus
    ├── BusClosed                publish or subscribe after close()
    ├── RequestTimeout           bus.request() got no reply in time
    └── HandlerFailed            bus.request() got a Failure instead of a reply
```
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CONNECTION_REFUSED",
    "AgentkitError",
    "BackendError",
    "BackendRequestError",
    "BackendUnavailable",
    "BehaviorNotFound",
    "BudgetExceeded",
    "BusClosed",
    "BusError",
    "ConfigError",
    "EmbedderMismatch",
    "HandlerFailed",
    "LimitExceeded",
    "MalformedResponse",
    "ModelNotAvailable",
    "RequestTimeout",
    "StoreError",
    "StoreLocked",
    "StoreNotFound",
    "validation_problems",
]


class AgentkitError(Exception):
    """Root of every exception agentkit raises on purpose."""


class ConfigError(AgentkitError):
    """A usage mistake by the caller: fix the argument, spec or environment named in the message."""


class ModelNotAvailable(ConfigError):
    """The requested model file is missing, incomplete or corrupt; the message says how to install it."""


class LimitExceeded(ConfigError):
    """A run would cause more model calls or generated tokens than one run may (``agentkit.registry.LIMITS``);
    ``param`` names the parameter to lower."""

    def __init__(self, message: str, *, param: str = "params") -> None:
        super().__init__(message)
        self.param = param


class BackendError(AgentkitError):
    """An LLM call failed. ``cause`` names what failed in a few words (``"HTTP 500"``, ``"timeout"``);
    ``retry_after`` is the wait in seconds the server asked for, if it did."""

    def __init__(
        self, message: str, *, cause: str = "", status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.cause = cause
        self.status = status
        self.retry_after = retry_after


CONNECTION_REFUSED = "connection error (refused)"
"""The ``cause`` of a ``BackendError`` whose connection was refused: nothing listens at the address (retried
only briefly, see ``RetryPolicy.refused_attempts``)."""


class BackendRequestError(BackendError):
    """The server rejected the request (a 4xx other than 429). Retrying would not help."""


class BackendUnavailable(BackendError):
    """A transient failure that outlived the retry policy (attempts or time); ``attempts`` says how many."""

    def __init__(
        self,
        message: str,
        *,
        cause: str = "",
        status: int | None = None,
        retry_after: float | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message, cause=cause, status=status, retry_after=retry_after)
        self.attempts = attempts


class MalformedResponse(BackendError):
    """The server answered, but not with a usable chat completion (bad JSON, no choices)."""


class BudgetExceeded(AgentkitError):
    """A token budget has no room for another call. Raise the budget or lower the call's needs."""


class BusError(AgentkitError):
    """Something about the event bus itself."""


class BusClosed(BusError):
    """The bus is closed (or closing) and takes no new messages or subscriptions."""


class RequestTimeout(BusError):
    """``Bus.request`` waited ``timeout`` seconds without a reply. Is a handler subscribed to the request?"""


class HandlerFailed(BusError):
    """``Bus.request`` got a ``Failure`` message in reply: the handler raised. ``failure`` holds it."""

    def __init__(self, message: str, failure: object) -> None:
        super().__init__(message)
        self.failure = failure


class StoreError(AgentkitError):
    """Something about the behavior store."""


class StoreLocked(StoreError):
    """The embedded store at this path is open in another process. Embedded Qdrant is single-process: run
    ``agentkit serve --store PATH`` and connect through it (``HandbookClient``), or use a Qdrant server URL."""


class StoreNotFound(StoreError):
    """No store at the path a reading command was given (it does not create one)."""


class BehaviorNotFound(StoreError):
    """No behavior (or no such version) by that name."""


class EmbedderMismatch(StoreError):
    """The store's vectors were made by a different embedder (name or dimension) than the one given."""


def validation_problems(exc: Any, *, root: str = "value") -> list[tuple[str, str]]:
    """(field path, reason) for each problem of a pydantic ``ValidationError`` (``root`` names a problem with
    the whole value). Every place that turns validation errors into messages uses this one reading."""
    return [(".".join(str(p) for p in e["loc"]) or root, str(e["msg"])) for e in exc.errors()]
