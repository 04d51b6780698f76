"""The behavior handbook as a Model Context Protocol server (the official ``mcp`` SDK), for any MCP agent.

``agentkit mcp --store PATH|URL [--read-only] [--http --port P --token T]`` serves it over stdio (the default:
an agent starts the command itself) or streamable HTTP (``/mcp`` on 127.0.0.1, every request with
``Authorization: Bearer <token>``). Tools:

- ``search_behaviors(query, k=5, topic=None)``: the behaviors closest to a query (embedding search; with
  ``topic``, among that topic's), each with its score.
- ``get_behavior(name)``: one behavior, its instruction, topics, version, status, usage and provenance.
- ``list_topics()``: every topic of the active behaviors with how many behaviors it has.
- ``add_behavior(name, instruction, topics=[], category="strategy")``: add a behavior (a ``pitfall`` is what to
  avoid), validated like the store's own ``add`` (a
  ``behavior_`` name, bounded text) and merged into a near-duplicate if there is one; the stored behavior.
- ``record_usage(name, event)``: count a usage event (retrieved, cited, cited_correct, cited_wrong).

``--read-only`` leaves the two writing tools out. A tool called with invalid arguments, an unknown behavior or
anything the store refuses answers an MCP error result (``isError``) whose text says what was wrong; the server
keeps running. Agent configuration (Claude Desktop, Cursor and others read the same shape)::

    {"mcpServers": {"handbook": {"command": "agentkit", "args": ["mcp", "--store", "/path/to/handbook"]}}}
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Annotated, Any, Literal

from mcp.server.fastmcp import FastMCP
from pydantic import Field

from agentkit._behavior import MAX_INSTRUCTION_CHARS, MAX_NAME_CHARS, USAGE_EVENTS, Behavior, is_behavior_name
from agentkit.errors import AgentkitError, ConfigError
from agentkit.faces.web import UNAUTHORIZED, bearer_ok, listen_socket
from agentkit.memory.store import BehaviorStore

__all__ = ["TOOLS", "WRITE_TOOLS", "create_server", "serve_http", "serve_stdio"]

TOOLS = ("search_behaviors", "get_behavior", "list_topics", "add_behavior", "record_usage")
WRITE_TOOLS = ("add_behavior", "record_usage")


def _dump(behavior: Behavior) -> dict[str, Any]:
    return behavior.model_dump(mode="json")


def _name(name: str) -> str:
    if not is_behavior_name(name):
        raise ValueError(f"no behavior named {name!r}: names match behavior_[a-z0-9_]+ (at most {MAX_NAME_CHARS} "
                         "characters)")
    return name


def create_server(store: BehaviorStore, *, read_only: bool = False, name: str = "agentkit-handbook",
                  host: str = "127.0.0.1", port: int = 0) -> FastMCP:
    """A ``FastMCP`` server whose tools read (and, unless ``read_only``, write) ``store``; the store stays the
    caller's to open and close."""
    server = FastMCP(name, instructions=(
        "A handbook of behaviors: named, reusable problem-solving procedures (behavior_name: instruction). Search "
        "it before solving, cite behaviors by name when you use them" + ("" if read_only else
                                                                       ", and record what you cited") + "."),
        host=host, port=port, log_level="WARNING")

    async def call(coro: Any) -> Any:
        try:
            return await coro
        except AgentkitError as exc:  # the store's own refusal, as the tool's error text
            raise ValueError(str(exc)) from None

    @server.tool(description="The behaviors closest to a query (embedding similarity), each with its score; "
                             "with topic, only behaviors of that topic.")
    async def search_behaviors(
            query: Annotated[str, Field(min_length=1, max_length=4000, description="what you are solving")],
            k: Annotated[int, Field(ge=1, le=100, description="how many behaviors")] = 5,
            topic: Annotated[str | None, Field(max_length=200, description="restrict to one topic")] = None,
    ) -> list[dict[str, Any]]:
        hits = await call(store.search(query, k, topics=[topic] if topic else None))
        return [{"score": round(hit.score, 4), **_dump(hit.behavior)} for hit in hits]

    @server.tool(description="One behavior by name: instruction, topics, version, status, usage, provenance.")
    async def get_behavior(name: Annotated[str, Field(max_length=MAX_NAME_CHARS + 32)]) -> dict[str, Any]:
        return _dump(await call(store.get(_name(name))))

    @server.tool(description="Every topic of the active behaviors, with how many behaviors each has.")
    async def list_topics() -> dict[str, int]:
        behaviors = await call(store.list_behaviors(status="active"))
        return dict(sorted(Counter(t for b in behaviors for t in b.topics).items()))

    if not read_only:
        @server.tool(description="Add a behavior (merged into a near-duplicate if there is one); returns what "
                                 "the handbook stored. name: behavior_ then lowercase letters, digits, underscores.")
        async def add_behavior(
                name: Annotated[str, Field(max_length=MAX_NAME_CHARS + 32)],
                instruction: Annotated[str, Field(min_length=1, max_length=MAX_INSTRUCTION_CHARS)],
                topics: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]],
                                  Field(max_length=32)] | None = None,
                category: Literal["strategy", "pitfall"] = "strategy",
        ) -> dict[str, Any]:
            behavior = Behavior(name=_name(name), instruction=instruction, topics=tuple(topics or ()),
                                category=category)
            return _dump(await call(store.add(behavior)))

        @server.tool(description="Count one usage event for a behavior: retrieved, cited, cited_correct or "
                                 "cited_wrong.")
        async def record_usage(name: Annotated[str, Field(max_length=MAX_NAME_CHARS + 32)],
                               event: Literal["retrieved", "cited", "cited_correct", "cited_wrong"]
                               ) -> dict[str, Any]:
            assert event in USAGE_EVENTS
            await call(store.get(_name(name)))  # an unknown name is an error, not a silent no-op
            await call(store.record_usage(name, event))
            await call(store.flush_usage())
            return {"name": name, "event": event, "recorded": 1}

    return server


async def serve_stdio(store: BehaviorStore, *, read_only: bool = False) -> None:
    """Serve ``store`` over stdin/stdout until the client closes them."""
    await create_server(store, read_only=read_only).run_stdio_async()


class _Bearer:
    """ASGI middleware: every request needs ``Authorization: Bearer <token>`` (401 otherwise)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not bearer_ok(given, self.token):
                body = json.dumps({"error": UNAUTHORIZED}).encode()
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


async def serve_http(store: BehaviorStore, *, token: str, host: str = "127.0.0.1", port: int = 8766,
                     read_only: bool = False, on_ready: Any = None) -> None:
    """Serve ``store`` over streamable HTTP at ``http://host:port/mcp`` with a bearer token; ``on_ready(url)`` is
    called once it listens."""
    import uvicorn

    if not token:
        raise ConfigError("the MCP server over HTTP needs a bearer token")
    sock = listen_socket(host, port)  # the faces' one port check and bind
    try:
        app = _Bearer(create_server(store, read_only=read_only, host=host, port=port).streamable_http_app(), token)
    except BaseException:
        sock.close()
        raise
    bound = sock.getsockname()
    web = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    if on_ready is not None:
        on_ready(f"http://{bound[0]}:{bound[1]}/mcp")
    await web.serve(sockets=[sock])
