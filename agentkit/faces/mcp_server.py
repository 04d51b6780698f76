"""The behavior handbook as a Model Context Protocol server (the official ``mcp`` SDK), for any MCP agent.

``agentkit mcp --store PATH|URL [--read-only] [--http --port P --token T]`` serves it over stdio (the default:
an agent starts the command itself) or streamable HTTP (``/mcp`` on 127.0.0.1, every request with
``Authorization: Bearer <token>``). Tools:

- ``search_behaviors(query, k=5, topic=None, details=False)``: the behaviors closest to a query (embedding
  search; with ``topic``, among that topic's), best first, compact: name, instruction and score (``details``
  adds topics, version, status and usage).
- ``get_behavior(name)``: one behavior, its instruction, topics, version, status, usage and provenance.
- ``list_topics()``: every topic of the active behaviors with how many behaviors it has.
- ``add_behavior(name, instruction, topics=[], category="strategy")``: add a behavior (a ``pitfall`` is what to
  avoid), validated like the store's own ``add`` (a ``behavior_`` name, bounded text) and merged into a
  near-duplicate if there is one; the stored behavior.
- ``record_usage(name, event)``: count a usage event (retrieved, cited, cited_correct, cited_wrong).

Every argument is described in its tool's input schema, with its constraints (the name pattern, ranges), and
the schemas say ``additionalProperties: false``: an argument a tool does not take is refused. An error is one
plain sentence naming the argument (``_HandbookServer``). The embedder is loaded before the server answers
(``warm``), and ``serverInfo.version`` is agentkit's. A stdio server that cannot open its store (another process
holds it) answers the client's ``initialize`` with that reason before it exits (``refuse_handshake``).

Over HTTP at most ``--max-sessions`` sessions are open at once (default 100; a new one past it gets 503) and a
session idle for ``--session-idle`` seconds (default 300) is closed; a body that is not UTF-8 JSON is a JSON-RPC
parse error (400), never a 500; a client that disconnects is not logged as an error.

``--read-only`` leaves the two writing tools out. A tool called with invalid arguments, an unknown behavior or
anything the store refuses answers an MCP error result (``isError``) whose text says what was wrong; the server
keeps running. Agent configuration (Claude Desktop, Cursor and others read the same shape)::

    {"mcpServers": {"handbook": {"command": "agentkit", "args": ["mcp", "--store", "/path/to/handbook"]}}}
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import signal
import threading
import time
import typing
from collections import Counter
from typing import Annotated, Any, Literal

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from pydantic import BaseModel, Field, ValidationError

from agentkit import __version__, tracing
from agentkit._behavior import MAX_INSTRUCTION_CHARS, MAX_NAME_CHARS, NAME_PATTERN, USAGE_EVENTS, Behavior
from agentkit.errors import AgentkitError, ConfigError, validation_problems
from agentkit.faces.web import UNAUTHORIZED, BodyError, bearer_ok, listen_socket, read_json
from agentkit.memory.store import BehaviorStore

__all__ = ["DEFAULT_MAX_SESSIONS", "DEFAULT_SESSION_IDLE_S", "TOOLS", "WRITE_TOOLS", "check_session_limits",
           "create_server", "refuse_handshake", "serve_http", "serve_stdio", "warm"]

TOOLS = ("search_behaviors", "get_behavior", "list_topics", "add_behavior", "record_usage")
WRITE_TOOLS = ("add_behavior", "record_usage")


NAME_SCHEMA_PATTERN = f"^{NAME_PATTERN.pattern}$"
"""A behavior name's pattern as the tools' JSON Schema states it."""
BehaviorName = Annotated[str, Field(
    min_length=len("behavior_") + 1, max_length=MAX_NAME_CHARS, pattern=NAME_SCHEMA_PATTERN,
    description="a behavior's name: behavior_ then lowercase letters, digits and underscores, as search_behaviors "
                "returns it (e.g. behavior_check_units)")]


def _dump(behavior: Behavior) -> dict[str, Any]:
    return behavior.model_dump(mode="json")


async def _answer(coro: Any) -> Any:
    try:
        return await coro
    except AgentkitError as exc:  # the store's own refusal, as the tool's error text
        raise ToolError(str(exc)) from None


class _HandbookServer(FastMCP):
    """``FastMCP`` whose tools refuse unknown arguments (``additionalProperties: false`` in every input schema)
    and say what was wrong with their arguments in one plain sentence (the SDK's text is pydantic's, with a URL
    per error, behind "Error executing tool")."""

    async def list_tools(self) -> list[Any]:
        tools = await super().list_tools()
        for tool in tools:
            tool.inputSchema = {**tool.inputSchema, "additionalProperties": False}
        return tools

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        tool = self._tool_manager.get_tool(name)
        if tool is None:
            raise ToolError(f"there is no tool named {name!r}; the tools are {', '.join(self._tool_names())}")
        fields = tool.fn_metadata.arg_model.model_fields
        known = {f.alias or n for n, f in fields.items()}
        unknown = sorted(set(arguments or {}) - known)
        if unknown:
            raise ToolError(f"{name} takes no argument {', '.join(map(repr, unknown))}; its arguments are "
                            f"{', '.join(sorted(known)) or 'none'}")
        try:
            tool.fn_metadata.arg_model.model_validate(arguments or {})
        except ValidationError as exc:
            raise ToolError(_sentence(name, exc)) from None
        try:
            return await super().call_tool(name, arguments)
        except ToolError as exc:  # the SDK's wrapper around what the tool raised: the tool's own words
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                raise ToolError(_sentence(name, cause)) from None
            raise ToolError(str(cause) if isinstance(cause, ToolError | ValueError) else str(exc)) from None

    def _tool_names(self) -> list[str]:
        return [t.name for t in self._tool_manager.list_tools()]


def _sentence(tool: str, exc: ValidationError) -> str:
    """A validation error as one plain sentence: "search_behaviors: k should be less than or equal to 100."."""
    parts = []
    for field, reason in validation_problems(exc, root="arguments")[:3]:
        reason = reason.strip().rstrip(".").removeprefix("Value error, ")
        if reason == "Field required":
            reason = "is required"
        for lead in ("String ", "Input ", "Value ", "List "):
            if reason.startswith(lead):
                reason = reason[len(lead):]
                break
        parts.append(f"{field} {reason}")
    return f"{tool}: " + "; ".join(parts) + "."


def _caller_context(server: FastMCP) -> Any:
    """Over HTTP, the caller's trace context from its request's ``traceparent`` (the SDK runs a tool in the
    session's task, not the request's, so the context is read from the request itself); None otherwise."""
    try:
        request = getattr(server.get_context().request_context, "request", None)
    except (LookupError, ValueError):
        return None
    headers = getattr(request, "headers", None)
    return tracing.extracted(dict(headers)) if headers is not None else None


def create_server(store: BehaviorStore, *, read_only: bool = False, name: str = "agentkit-handbook",
                  host: str = "127.0.0.1", port: int = 0) -> FastMCP:
    """A ``FastMCP`` server whose tools read (and, unless ``read_only``, write) ``store``; the store stays the
    caller's to open and close."""
    server = _HandbookServer(name, instructions=(
        "A handbook of behaviors: named, reusable problem-solving procedures (behavior_name: instruction). Search "
        "it before solving, cite behaviors by name when you use them" + ("" if read_only else
                                                                       ", and record what you cited") + "."),
        host=host, port=port, log_level="WARNING")
    server._mcp_server.version = __version__  # serverInfo.version: agentkit's, not the SDK's

    async def call(coro: Any, tool: str) -> Any:
        if not tracing.active():
            return await _answer(coro)
        with tracing.span(f"execute_tool {tool}", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool,
                                                            "openinference.span.kind": "TOOL"},
                          kind="SERVER", parent=_caller_context(server)):
            return await _answer(coro)

    @server.tool(description="The behaviors closest to a query (embedding similarity), best first: each one's "
                             "name, instruction and score (0-1, higher is closer). Search before solving a problem "
                             "and apply the instructions that fit. details=true adds topics, version, status and "
                             "usage counts (or ask get_behavior for one).")
    async def search_behaviors(
            query: Annotated[str, Field(min_length=1, max_length=4000,
                                        description="the problem you are solving, or what you need a procedure for")],
            k: Annotated[int, Field(ge=1, le=100, description="how many behaviors to return (1-100)")] = 5,
            topic: Annotated[str | None, Field(min_length=1, max_length=200, description=(
                "only behaviors of this topic (list_topics names them); leave out to search all"))] = None,
            details: Annotated[bool, Field(description="include each behavior's topics, version, status and "
                                                       "usage counts")] = False,
    ) -> list[dict[str, Any]]:
        hits = await call(store.search(query, k, topics=[topic] if topic else None), "search_behaviors")
        if details:
            return [{"score": round(hit.score, 3), **_dump(hit.behavior)} for hit in hits]
        return [{"name": hit.behavior.name, "instruction": hit.behavior.instruction, "score": round(hit.score, 3)}
                for hit in hits]

    @server.tool(description="One behavior by name: its instruction, topics, version, status, usage counts and "
                             "provenance.")
    async def get_behavior(name: BehaviorName) -> dict[str, Any]:
        return _dump(await call(store.get(name), "get_behavior"))

    @server.tool(description="Every topic of the active behaviors, with how many behaviors each has (a topic "
                             "narrows search_behaviors).")
    async def list_topics() -> dict[str, int]:
        behaviors = await call(store.list_behaviors(status="active"), "list_topics")
        return dict(sorted(Counter(t for b in behaviors for t in b.topics).items()))

    if not read_only:
        @server.tool(description="Add a behavior: a reusable procedure you found while solving (merged into a "
                                 "near-duplicate if the handbook has one). Returns what the handbook stored, which "
                                 "may carry another name or a merged instruction.")
        async def add_behavior(
                name: Annotated[str, Field(min_length=len("behavior_") + 1, max_length=MAX_NAME_CHARS,
                                           pattern=NAME_SCHEMA_PATTERN, description=(
                                               "the new behavior's name: behavior_ then lowercase letters, digits "
                                               "and underscores (e.g. behavior_check_units)"))],
                instruction: Annotated[str, Field(min_length=1, max_length=MAX_INSTRUCTION_CHARS, description=(
                    "what to do, in one or two imperative sentences (e.g. 'Write the unit beside every number "
                    "and check that both sides of an equation agree.')"))],
                topics: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]] | None,
                                  Field(max_length=32, description="topics it applies to (e.g. algebra), "
                                                                   "at most 32")] = None,
                category: Annotated[Literal["strategy", "pitfall"], Field(description=(
                    "strategy: what to do; pitfall: a mistake to avoid"))] = "strategy",
        ) -> dict[str, Any]:
            behavior = Behavior(name=name, instruction=instruction, topics=tuple(topics or ()), category=category)
            return _dump(await call(store.add(behavior), "add_behavior"))

        @server.tool(description="Count one usage event for a behavior, so the handbook learns which behaviors "
                                 "help: cited when you used it, cited_correct or cited_wrong once you know whether "
                                 "the answer was right, retrieved when it was only shown to you.")
        async def record_usage(
                name: BehaviorName,
                event: Annotated[Literal["retrieved", "cited", "cited_correct", "cited_wrong"],
                                 Field(description="what happened: retrieved, cited, cited_correct or cited_wrong")],
        ) -> dict[str, Any]:
            assert event in USAGE_EVENTS
            await call(store.get(name), "record_usage")  # an unknown name is an error, not a no-op
            await call(store.record_usage(name, event), "record_usage")
            await call(store.flush_usage(), "record_usage")
            return {"name": name, "event": event, "recorded": 1}

    return server


async def warm(store: BehaviorStore) -> None:
    """Load what the first search needs (the embedder takes seconds to load on first use) before serving, so that
    an agent's first search is as fast as the next. A store that cannot search yet is left to say so then."""
    with contextlib.suppress(AgentkitError):
        await store.search("warm up", 1)


async def serve_stdio(store: BehaviorStore, *, read_only: bool = False) -> None:
    """Serve ``store`` over stdin/stdout until the client closes them (the embedder loaded first)."""
    server = create_server(store, read_only=read_only)
    quiet_disconnects()
    await warm(store)
    await server.run_stdio_async()


def refuse_handshake(reason: str, *, stdin: Any, stdout: Any, wait_s: float = 10.0) -> None:
    """A stdio server that cannot start (its store is locked by another process, missing...) answers the client's
    ``initialize`` with a JSON-RPC error carrying ``reason`` before it exits, so that the agent shows why instead
    of "connection closed". Waits at most ``wait_s`` for the request; anything unreadable is left alone."""
    import selectors

    with selectors.DefaultSelector() as selector:
        try:
            selector.register(stdin, selectors.EVENT_READ)
        except (ValueError, OSError):
            return
        if not selector.select(wait_s):
            return
    try:
        line = stdin.readline(1 << 20)
        request = json.loads(line)
    except (ValueError, OSError):
        return
    if isinstance(request, dict) and request.get("method") == "initialize" and "id" in request:
        stdout.write(json.dumps({"jsonrpc": "2.0", "id": request["id"],
                                 "error": {"code": -32000, "message": reason}}) + "\n")
        stdout.flush()


DEFAULT_MAX_SESSIONS = 100
"""Open MCP sessions over HTTP at most (a session costs the server ~60 KB until it ends); past it a new one is
refused with 503."""
DEFAULT_SESSION_IDLE_S = 300.0
"""A session with no request for this long is closed (its client starts a new one)."""
MAX_BODY = 1 << 20
"""The largest JSON-RPC request body over HTTP (413 past it)."""
_EXPECTED_DISCONNECTS = ("ClosedResourceError", "BrokenResourceError", "EndOfStream", "ConnectionResetError",
                         "ClientDisconnect", "CancelledError")


class _QuietDisconnects(logging.Filter):
    """Drops the MCP library's log records of a client that went away (an expected end of a session, logged by
    the SDK as an error with a traceback), and lets each of its warnings through once a minute (a flood of
    refused sessions is one line a minute, not one per request)."""

    def __init__(self) -> None:
        super().__init__()
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("mcp"):
            return True
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and type(exc).__name__ in _EXPECTED_DISCONNECTS:
            return False
        template = str(record.msg)
        if exc is None and record.levelno == logging.WARNING:
            now = time.monotonic()
            if now - self._last.get(template, -math.inf) < 60.0:
                return False
            self._last[template] = now
        return True


def quiet_disconnects() -> None:
    """Install ``_QuietDisconnects`` on the root logger's handlers (where the SDK's records end up)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _QuietDisconnects) for f in handler.filters):
            handler.addFilter(_QuietDisconnects())


async def _send_json(send: Any, status: int, payload: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
                     ) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def _parse_error(message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": f"Parse error: {message}"}}


@functools.cache
def _client_methods() -> dict[str, tuple[type[BaseModel], bool]]:
    """Every method a client may send: its SDK model and whether it is a request (else a notification)."""
    from mcp import types

    out: dict[str, tuple[type[BaseModel], bool]] = {}
    for union, is_request in ((types.ClientRequest, True), (types.ClientNotification, False)):
        for model in typing.get_args(union.model_fields["root"].annotation):
            for method in typing.get_args(model.model_fields["method"].annotation):
                out[method] = (model, is_request)
    return out


def _envelope_problem(data: Any) -> dict[str, Any] | None:
    """The JSON-RPC error for a message the SDK would not answer (a request with malformed ``params`` leaves its
    HTTP request waiting forever inside the SDK), or None to pass the message on. Unknown methods go on: the SDK
    answers them with "method not found"."""
    from mcp import types

    try:
        message = types.JSONRPCMessage.model_validate(data).root
    except ValidationError as exc:
        return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid request: " + "; ".join(
            f"{f}: {r}" for f, r in validation_problems(exc, root="message")[:3])}}
    if not isinstance(message, (types.JSONRPCRequest, types.JSONRPCNotification)):
        return None
    known = _client_methods().get(message.method)
    if known is None:
        return None
    model, _ = known
    try:
        model.model_validate({"method": message.method, **({"params": message.params} if message.params else {})})
    except ValidationError as exc:
        rid = message.id if isinstance(message, types.JSONRPCRequest) else None
        reasons = "; ".join(f"{f}: {r}" for f, r in validation_problems(exc, root="params")[:3])
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32602, "message": f"Invalid params: {reasons}"}}
    return None


class _Guard:
    """ASGI middleware in front of the SDK's app: every request needs ``Authorization: Bearer <token>`` (401 with
    ``WWW-Authenticate: Bearer``), and a POST body must be at most ``MAX_BODY`` bytes of UTF-8 JSON (otherwise a
    JSON-RPC parse error, 400, or 413; never a 500 from inside the SDK). The body read here is handed on."""

    def __init__(self, app: Any, token: str, *, max_sessions: int, session_idle_s: float, max_body: int = MAX_BODY
                 ) -> None:
        self.app, self.token, self.max_body = app, token, max_body
        self.max_sessions, self.session_idle_s = max_sessions, session_idle_s

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        if not bearer_ok(given, self.token):
            await _send_json(send, 401, {"error": UNAUTHORIZED},
                             [(b"www-authenticate", b'Bearer realm="agentkit-mcp", error="invalid_token"')])
            return
        if scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away before its request was whole
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _send_json(send, 413, {"jsonrpc": "2.0", "id": None, "error": {
                    "code": -32600, "message": f"the request body is over {self.max_body} bytes"}})
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        try:
            problem = _envelope_problem(read_json(body))
        except BodyError as exc:
            await _send_json(send, 400, _parse_error(str(exc)))
            return
        if problem is not None:
            await _send_json(send, 400, problem)
            return
        delivered = False

        async def replay() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return dict(await receive())

        refused = False

        async def explain(message: dict[str, Any]) -> None:
            """The SDK's refusal of a session past the limit, said plainly and with a Retry-After."""
            nonlocal refused
            if message["type"] == "http.response.start" and message["status"] == 503:
                refused = True
                await _send_json(send, 503, {"jsonrpc": "2.0", "id": None, "error": {
                    "code": -32000, "message": f"the server has its maximum of {self.max_sessions} MCP sessions "
                    f"open; a session idle for {self.session_idle_s:g} s is closed, or a client ends its own "
                    "(DELETE); retry later"}}, [(b"retry-after", b"5")])
                return
            if not refused:
                await send(message)

        await self.app(scope, replay, explain)


def check_session_limits(max_sessions: int, session_idle_s: float) -> None:
    """A ``ConfigError`` for a session limit or idle timeout out of range (checked before anything opens)."""
    if max_sessions < 1 or not 1 <= session_idle_s <= 86_400:
        raise ConfigError(f"--max-sessions must be >= 1 (got {max_sessions}) and --session-idle 1-86400 seconds "
                          f"(got {session_idle_s:g})")


async def serve_http(store: BehaviorStore, *, token: str, host: str = "127.0.0.1", port: int = 8766,
                     read_only: bool = False, on_ready: Any = None, max_sessions: int = DEFAULT_MAX_SESSIONS,
                     session_idle_s: float = DEFAULT_SESSION_IDLE_S) -> None:
    """Serve ``store`` over streamable HTTP at ``http://host:port/mcp`` with a bearer token; ``on_ready(url)`` is
    called once it listens. At most ``max_sessions`` sessions are open at once (a new one past it is refused
    with 503), and a session idle for ``session_idle_s`` seconds is closed."""
    import uvicorn

    if not token:
        raise ConfigError("the MCP server over HTTP needs a bearer token")
    check_session_limits(max_sessions, session_idle_s)
    sock = listen_socket(host, port)  # the faces' one port check and bind
    try:
        server = create_server(store, read_only=read_only, host=host, port=port)
        server.settings.max_sessions = max_sessions
        server.settings.session_idle_timeout = session_idle_s
        app = _Guard(server.streamable_http_app(), token, max_sessions=max_sessions, session_idle_s=session_idle_s)
    except BaseException:
        sock.close()
        raise
    quiet_disconnects()
    await warm(store)
    bound = sock.getsockname()
    web = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5))
    if on_ready is not None:
        on_ready(f"http://{bound[0]}:{bound[1]}/mcp")
    # uvicorn stops gracefully on SIGINT/SIGTERM and then raises the signal again for the handler it found: with
    # Python's defaults that kills the process before the caller's clean-up (closing the store, flushing
    # traces). A handler that only returns lets ``serve_http`` return instead.
    main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        await web.serve(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stopped(signum: int, frame: Any) -> None:
    """The signal uvicorn raises again after its graceful stop: already handled."""
