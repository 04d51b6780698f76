"""What the HTTP faces share (the handbook service, the proxy, the viewer, the MCP server over HTTP): the bearer
token check, a generated token, and starting an aiohttp application on a host and port with a clear error."""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web

from agentkit.errors import ConfigError

__all__ = ["bearer_ok", "generate_token", "start_site"]


def generate_token() -> str:
    return secrets.token_urlsafe(32)


def bearer_ok(authorization: str | bytes, token: str) -> bool:
    """Whether an ``Authorization`` header (as text, or the raw bytes an ASGI scope holds) carries
    ``Bearer <token>``, compared in constant time."""
    given = authorization if isinstance(authorization, bytes) else authorization.encode()
    return given.startswith(b"Bearer ") and hmac.compare_digest(given[7:], token.encode())


async def start_site(app: web.Application, host: str, port: int, *, handler_cancellation: bool = False
                     ) -> tuple[web.AppRunner, str]:
    """Start ``app`` at ``host:port`` (0: a free port); returns the runner and ``http://host:port``. A port out of
    range or one that cannot be listened on is a ``ConfigError`` saying so."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be 0-65535 (0 picks a free port), got {port}")
    runner = web.AppRunner(app, access_log=None, handler_cancellation=handler_cancellation)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound_host, bound_port = runner.addresses[0][:2]
    return runner, f"http://{bound_host}:{bound_port}"
