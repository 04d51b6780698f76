"""Logging: structlog loggers for the library, configuration for applications.

Library modules call ``get_logger(__name__)``, which **never configures anything**: an application that
configured structlog gets agentkit's events through it; one that configured only the standard ``logging`` gets
them as records of the ``agentkit.*`` loggers; one that configured neither gets nothing (the ``agentkit`` logger
has a ``NullHandler``), on stdout or stderr. Applications that want
agentkit's default call ``configure_logging()`` once, as the ``agentkit`` command does: a coloured console on a
TTY and JSON lines otherwise (CI, files, pipes), filtered below ``AGENTKIT_LOG_LEVEL`` (default ``warning``),
written to stderr so that ``agentkit ... --json`` keeps stdout clean.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

import structlog

__all__ = ["configure_logging", "get_logger"]

_lock = threading.Lock()
_configured = False


def configure_logging(level: str | int | None = None, *, json: bool | None = None, force: bool = False) -> None:
    """Configure structlog for agentkit.

    Args:
        level: a logging level name or number; default ``$AGENTKIT_LOG_LEVEL`` or ``warning``.
        json: JSON lines (True) or a console renderer (False); default: console only when stderr is a TTY.
        force: reconfigure even if logging was configured before (by us or by the application).
    """
    global _configured
    with _lock:
        if _configured and not force:
            return
        if not force and structlog.is_configured():
            _configured = True
            return
        if level is None:
            level = os.environ.get("AGENTKIT_LOG_LEVEL", "warning")
        if isinstance(level, str):
            number = logging.getLevelName(level.upper())
            level = number if isinstance(number, int) else logging.WARNING
        if json is None:
            json = not sys.stderr.isatty()
        renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
                renderer,
            ],
            wrapper_class=structlog.make_filtering_bound_logger(level),
            logger_factory=lambda *args: _StderrLogger(),
            cache_logger_on_first_use=False,
        )
        _configured = True


logging.getLogger("agentkit").addHandler(logging.NullHandler())  # a library's default: silent until configured

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "warn": logging.WARNING,
           "error": logging.ERROR, "exception": logging.ERROR, "critical": logging.CRITICAL}


class _LibraryLogger:
    """agentkit's logger: structlog when structlog is configured (by ``configure_logging``, as the ``agentkit``
    command does, or by the application), otherwise the standard ``logging`` logger of the same name, under
    ``agentkit`` with a ``NullHandler``, so that a program embedding agentkit sees nothing on stdout or stderr
    until it configures logging (unconfigured structlog would print every event, debug included, to stdout)."""

    __slots__ = ("_initial", "_name", "_std")

    def __init__(self, name: str, initial: dict[str, Any]) -> None:
        self._name, self._initial, self._std = name, initial, logging.getLogger(name)

    def bind(self, **values: Any) -> _LibraryLogger:
        return _LibraryLogger(self._name, {**self._initial, **values})

    def _emit(self, method: str, event: str, fields: dict[str, Any]) -> None:
        if structlog.is_configured():
            getattr(structlog.get_logger(module=self._name, **self._initial), method)(event, **fields)
            return
        level = _LEVELS[method]
        if not self._std.isEnabledFor(level):
            return
        pairs = {**self._initial, **fields}
        text = event + "".join(f" {key}={value!r}" for key, value in pairs.items())
        self._std.log(level, "%s", text, exc_info=method == "exception")

    def debug(self, event: str, **fields: Any) -> None:
        self._emit("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, fields)

    warn = warning

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._emit("exception", event, fields)

    def critical(self, event: str, **fields: Any) -> None:
        self._emit("critical", event, fields)


def get_logger(name: str, **initial: Any) -> Any:
    """agentkit's logger for module ``name`` (see ``_LibraryLogger``): structlog's, bound to ``module=name``, once
    structlog is configured; until then the standard ``logging`` logger ``name``, silent unless the application
    configures logging. This function configures nothing."""
    return _LibraryLogger(name, initial)


class _StderrLogger:
    """Writes each rendered line to the *current* ``sys.stderr`` (looked up per line, not captured once:
    pytest and other tools swap it, and module-level loggers outlive the swap)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = msg
