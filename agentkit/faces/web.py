"""The face layer: what the HTTP faces share (the handbook service, the OpenAI proxy, the viewer, the MCP server
over HTTP).

- ``face_middleware``: one aiohttp middleware per face that checks the bearer token on the paths its policy
  protects and maps every failure through the face's error mapper, so a handler never answers with a
  traceback: a face's own errors in its own shape, anything unexpected logged and answered 500 in that shape;
- ``agentkit_error`` / ``agentkit_errors``: agentkit's one error shape (``{"error": message, ...}``), used by
  every face except the proxy, which keeps OpenAI's shape on its wire;
- ``json_response``: JSON with anything unusual (datetimes, paths) as text; ``read_json``: a request body as
  JSON, or one ``BodyError`` saying why not (not UTF-8, not JSON, nested too deeply);
- ``foreign_host``: the DNS-rebinding guard of a loopback-bound face (``face_middleware(local_only=True)``: the
  viewer): another ``Host`` is 421, another page's ``Origin`` 403;
- ``listen_socket`` / ``start_site``: a port checked (0-65535; 0 picks a free one) and bound, or one
  ``ConfigError`` saying why not; the MCP server binds through the same check;
- ``bearer_ok`` / ``generate_token``: the constant-time token check (also for ASGI scopes) and a fresh token.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import ValidationError

from agentkit import tracing
from agentkit.errors import AgentkitError, ConfigError, LimitExceeded, validation_problems
from agentkit.log import get_logger

__all__ = [
    "LOOPBACK",
    "TOKEN_COOKIE",
    "UNAUTHORIZED",
    "BodyError",
    "ErrorMapper",
    "FaceError",
    "agentkit_error",
    "agentkit_errors",
    "api_paths",
    "bearer_ok",
    "face_middleware",
    "foreign_host",
    "generate_token",
    "http_error",
    "json_response",
    "listen_socket",
    "read_json",
    "start_site",
]

_log = get_logger(__name__)

UNAUTHORIZED = "missing or wrong bearer token (Authorization: Bearer <token>)"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorMapper = Callable[[BaseException], web.StreamResponse | None]
"""A face's error mapper: the response for an exception a handler raised, or None to let it through (aiohttp's
own success-like exceptions)."""


class FaceError(Exception):
    """An error a handler answers with in agentkit's shape: ``status``, the message and extra fields."""

    def __init__(self, status: int, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.fields = status, message, fields


def generate_token() -> str:
    return secrets.token_urlsafe(32)


def bearer_ok(authorization: str | bytes, token: str) -> bool:
    """Whether an ``Authorization`` header (as text, or the raw bytes an ASGI scope holds) carries
    ``Bearer <token>``, compared in constant time."""
    given = authorization if isinstance(authorization, bytes) else authorization.encode()
    return given.startswith(b"Bearer ") and hmac.compare_digest(given[7:], token.encode())


class BodyError(ValueError):
    """A request body that is not UTF-8 JSON (``read_json``), with the reason in one line."""


def read_json(raw: bytes) -> Any:
    """A request body as JSON: bytes that are not UTF-8, text that is not JSON and JSON nested too deeply for the
    parser are one ``BodyError`` each (never an exception a face would answer with 500); an empty body is
    ``{}``."""
    if not raw:
        return {}
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BodyError(f"the body is not UTF-8 (byte {exc.start})") from None
    except RecursionError:
        raise BodyError("the body's JSON is nested too deeply") from None
    except ValueError as exc:
        raise BodyError(f"the body is not JSON: {exc}") from None


def json_response(data: Any, status: int = 200) -> web.Response:
    """``data`` as JSON (values JSON does not know, such as datetimes, as their text)."""
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


def agentkit_error(status: int, message: str, **fields: Any) -> web.Response:
    """agentkit's error shape: ``{"error": message, **fields}`` with ``status``."""
    return json_response({"error": message, **fields}, status)


def http_error(exc: web.HTTPException) -> tuple[int, str] | None:
    """aiohttp's own failure (no such route, method not allowed, body too large) as a status and a message for a
    face's error shape; None for its success-like exceptions (redirects), which go through."""
    if exc.status < 400:
        return None
    return exc.status, "the request body is too large" if exc.status == 413 else exc.reason or "error"


def api_paths(path: str) -> bool:
    """The path policy of the service and the proxy: the token guards ``/v1/``; ``/health`` and the rest are open."""
    return path.startswith("/v1/")


def agentkit_errors(exc: BaseException) -> web.StreamResponse | None:
    """The mapping every agentkit-shaped face shares: a ``FaceError`` as it says, invalid input 422 (naming its
    fields), a ``ConfigError`` 422,
    another ``AgentkitError`` 503 (a backend or store that cannot answer now), aiohttp's own 4xx (no such
    route, method not allowed, body too large) in the same shape, anything else 500 (logged: a bug)."""
    if isinstance(exc, FaceError):
        return agentkit_error(exc.status, exc.message, **exc.fields)
    if isinstance(exc, ValidationError):
        return agentkit_error(422, "invalid input", fields=[{"field": f, "reason": r}
                                                            for f, r in validation_problems(exc, root="body")])
    if isinstance(exc, LimitExceeded):
        return agentkit_error(422, str(exc), fields=[{"field": exc.param, "reason": "over the limit of one run"}])
    if isinstance(exc, ConfigError):
        return agentkit_error(422, str(exc), fields=[])
    if isinstance(exc, AgentkitError):
        return agentkit_error(503, str(exc))
    if isinstance(exc, web.HTTPException):
        failed = http_error(exc)
        if failed is None:
            return None
        response = agentkit_error(*failed)
        if "Allow" in exc.headers:  # a 405 says which methods the path has
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    _log.exception("request failed", error=repr(exc))
    return agentkit_error(500, "internal error (logged by the server)")


LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")
"""The names a client on this machine reaches a loopback-bound face by."""


def _is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")


def foreign_host(request: web.Request) -> web.StreamResponse | None:
    """The DNS-rebinding guard of a face bound to a loopback address (the viewer; the MCP server's SDK applies
    the same rule): a ``Host`` that is not this machine's loopback name and the bound port is 421, an ``Origin``
    other than such a page's is 403; None when the request may go on (or the face listens beyond this machine,
    where its token protects it)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
    if not sockname or not _is_loopback(str(sockname[0])):
        return None
    port = int(sockname[1])
    allowed = {f"{name}:{port}" for name in LOOPBACK if name != "::1"}
    if port == 80:
        allowed |= {name for name in LOOPBACK if name != "::1"}
    host = request.headers.get("Host", "")
    if host not in allowed:
        return agentkit_error(421, f"this server answers only on this machine (Host {host!r} is not "
                                   f"127.0.0.1:{port} or localhost:{port})")
    origin = request.headers.get("Origin")
    if origin is not None and origin.removeprefix("http://") not in allowed:
        return agentkit_error(403, f"requests from pages of other origins ({origin!r}) are refused")
    return None


TOKEN_COOKIE = "agentkit_token"
"""The cookie a browser face (the viewer) keeps its token in, set from the ``?token=`` of the printed URL."""


def face_middleware(*, errors: ErrorMapper, token: str | None = None, protected: Callable[[str], bool] = api_paths,
                    unauthorized: Callable[[], web.StreamResponse] | None = None, local_only: bool = False,
                    browser: bool = False) -> Any:
    """A face's one middleware (one layer: each aiohttp middleware costs a call frame per request): with
    ``local_only``, the DNS-rebinding guard (``foreign_host``) first; with a ``token``, a request to a path
    ``protected`` says needs the bearer token (``unauthorized()`` answers one without; by default in agentkit's
    shape), or, for a ``browser`` face, the token in its cookie or a ``?token=`` query (which sets the cookie,
    HttpOnly and SameSite=Strict); then every exception of the handler goes through ``errors``."""
    refuse = unauthorized or (lambda: agentkit_error(401, UNAUTHORIZED))

    def authorized(request: web.Request) -> tuple[bool, bool]:
        """(authorized, whether to set the cookie)."""
        assert token is not None
        if bearer_ok(request.headers.get("Authorization", ""), token):
            return True, False
        if browser:
            cookie = request.cookies.get(TOKEN_COOKIE, "")
            if cookie and hmac.compare_digest(cookie.encode(), token.encode()):
                return True, False
            query = request.query.get("token", "")
            if query and hmac.compare_digest(query.encode(), token.encode()):
                return True, True
        return False, False

    @web.middleware
    async def face(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not tracing.active():
            return await serve(request, handler)
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else request.path
        with tracing.span(f"{request.method} {route}", {
                "http.request.method": request.method, "url.path": request.path, "http.route": route},
                kind="SERVER", parent=tracing.extracted(request.headers)) as current:
            response = await serve(request, handler)
            tracing.set_attributes(current, {"http.response.status_code": response.status})
            return response

    async def serve(request: web.Request, handler: Handler) -> web.StreamResponse:
        if local_only and (refused := foreign_host(request)) is not None:
            return refused
        remember = False
        if token is not None and protected(request.path):
            ok, remember = authorized(request)
            if not ok:
                return refuse()
        try:
            response = await handler(request)
        except Exception as exc:
            mapped = errors(exc)
            if mapped is None:
                raise
            return mapped
        if remember and not response.prepared:
            response.set_cookie(TOKEN_COOKIE, token or "", httponly=True, samesite="Strict", path="/")
        return response

    return face


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening socket at ``host:port`` (0: a free port); a port out of range or one that cannot be listened on
    is a ``ConfigError`` saying so."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be 0-65535 (0 picks a free port), got {port}")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    return sock


class _MalformedRequests(logging.Filter):
    """aiohttp logs a request it could not parse (a client's malformed HTTP, already answered 400) as an error
    with a traceback; it is the client's mistake: one warning line, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and (exc.code or 400) < 500:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args = "malformed HTTP request refused (%s): %s", (exc.code,
                                                                                   " ".join(exc.message.split())[:200])
            record.exc_info, record.exc_text = None, None
        return True


def quiet_malformed_requests() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _MalformedRequests) for f in server_log.filters):
        server_log.addFilter(_MalformedRequests())


async def start_site(app: web.Application, host: str, port: int, *, handler_cancellation: bool = False
                     ) -> tuple[web.AppRunner, str]:
    """Start ``app`` at ``host:port`` (``listen_socket``); returns the runner and ``http://host:port``. A client's
    malformed HTTP is logged as one warning line (``quiet_malformed_requests``)."""
    quiet_malformed_requests()
    sock = listen_socket(host, port)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=handler_cancellation)
    try:
        await runner.setup()
        await web.SockSite(runner, sock).start()
    except BaseException:
        sock.close()
        await runner.cleanup()
        raise
    bound_host, bound_port = sock.getsockname()[:2]
    return runner, f"http://{bound_host}:{bound_port}"
