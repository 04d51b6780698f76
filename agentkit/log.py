"""Logging: structlog loggers for the library, configuration for applications.

Library modules call ``get_logger(__name__)``, which returns a lazy structlog logger and **never configures
anything**: an application's structlog (or its default) decides where library logs go. Applications that want
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


def get_logger(name: str, **initial: Any) -> Any:
    """A lazy structlog logger bound to ``module=name``; it uses whatever configuration is in force when it
    first logs (this function configures nothing)."""
    return structlog.get_logger(module=name, **initial)


class _StderrLogger:
    """Writes each rendered line to the *current* ``sys.stderr`` (looked up per line, not captured once:
    pytest and other tools swap it, and module-level loggers outlive the swap)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = msg
