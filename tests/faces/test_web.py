"""The face layer (``agentkit.faces.web``): the HTTP faces share one bearer check with a path policy, one listen and
port check, and one error mapper per wire shape (agentkit's ``{"error": ...}``; the proxy keeps OpenAI's).

Real HTTP on 127.0.0.1: the handbook service, the proxy and the viewer answer a missing token, an unknown route, a
wrong method and a bug the same way within their shape, never with aiohttp's text pages or a traceback.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from agentkit.errors import ConfigError
from agentkit.faces.proxy import Proxy, create_proxy_app
from agentkit.faces.service import create_app
from agentkit.faces.web import (
    UNAUTHORIZED,
    agentkit_error,
    agentkit_errors,
    face_middleware,
    listen_socket,
    start_site,
)
from agentkit.memory import QdrantBehaviorStore
from agentkit.testing import ScriptedBackend

TOKEN = "t" * 32


async def _serve(app: web.Application) -> AsyncIterator[str]:
    runner, url = await start_site(app, "127.0.0.1", 0)
    try:
        yield url
    finally:
        await runner.cleanup()


@pytest.fixture
async def service(tmp_path: Path, embedder: Any) -> AsyncIterator[str]:
    store = QdrantBehaviorStore(path=tmp_path / "s", embedder=embedder)
    async for url in _serve(create_app(store, token=TOKEN)):
        yield url


@pytest.fixture
async def proxy() -> AsyncIterator[str]:
    async for url in _serve(create_proxy_app(Proxy(ScriptedBackend(), token=TOKEN, model_name="m"))):
        yield url


async def _get(url: str, method: str = "GET", token: str | None = None) -> tuple[int, str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.request(method, url, headers=headers) as r:
        return r.status, r.content_type, await r.json(content_type=None)


async def test_one_bearer_check_and_one_shape_per_face(service: str, proxy: str) -> None:
    # the agentkit shape: the service
    assert await _get(f"{service}/v1/behaviors") == (401, "application/json", {"error": UNAUTHORIZED})
    status, kind, body = await _get(f"{service}/v1/nowhere", token=TOKEN)
    assert (status, kind) == (404, "application/json") and set(body) == {"error"}
    status, kind, body = await _get(f"{service}/v1/behaviors", "DELETE", token=TOKEN)
    assert (status, kind) == (405, "application/json") and set(body) == {"error"}
    # OpenAI's shape on the proxy's wire, with the same message
    status, _, body = await _get(f"{proxy}/v1/models")
    assert status == 401 and body["error"]["message"] == UNAUTHORIZED and body["error"]["code"] == "invalid_api_key"
    status, _, body = await _get(f"{proxy}/v1/nowhere", token=TOKEN)
    assert status == 404 and set(body["error"]) == {"message", "type", "param", "code"}
    # /health is outside both policies
    assert (await _get(f"{service}/health"))[0] == 200 and (await _get(f"{proxy}/health"))[0] == 200


async def test_a_bug_is_a_logged_500_in_the_face_shape() -> None:
    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    app = web.Application(middlewares=[face_middleware(
        token=TOKEN, protected=lambda path: path.startswith("/v1/"),
        unauthorized=lambda: agentkit_error(401, UNAUTHORIZED), errors=agentkit_errors)])
    app.router.add_get("/v1/broken", broken)
    async for url in _serve(app):
        status, kind, body = await _get(f"{url}/v1/broken", token=TOKEN)
        assert (status, kind) == (500, "application/json") and "a bug" not in body["error"]


async def test_one_port_check_and_bind_for_every_face() -> None:
    for port in (-1, 65536):
        with pytest.raises(ConfigError, match="0-65535"):
            listen_socket("127.0.0.1", port)
    taken = listen_socket("127.0.0.1", 0)
    try:
        with pytest.raises(ConfigError, match="cannot listen"):
            listen_socket("127.0.0.1", taken.getsockname()[1])
        with pytest.raises(ConfigError, match="cannot listen"):
            await start_site(web.Application(), "127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()
    sock = listen_socket("127.0.0.1", 0)
    assert sock.type == socket.SOCK_STREAM and sock.getsockname()[1] > 0
    sock.close()


async def test_the_mcp_server_binds_through_the_same_check() -> None:
    from agentkit.faces.mcp_server import serve_http

    with pytest.raises(ConfigError, match="0-65535"):
        await serve_http(None, token=TOKEN, port=70000)  # type: ignore[arg-type]
