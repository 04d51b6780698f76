"""``agentkit mcp``: the handbook as an MCP server, driven by the official SDK's own client over stdio (the
command an agent starts) and streamable HTTP, on a real embedded store."""

from __future__ import annotations

import asyncio
import io
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

from agentkit.memory import Behavior, MiniLMEmbedder, QdrantBehaviorStore

SEED = {
    "behavior_check_units": ("Write the unit beside every quantity and check the units of the answer.", ("Algebra",)),
    "behavior_work_backwards": ("Start from what is asked and work backwards to what is given.", ("Algebra",)),
    "behavior_draw_the_triangle": ("Sketch the triangle and label every side and angle you know.", ("Geometry",)),
}


async def seeded(tmp_path: Path, embedder: MiniLMEmbedder) -> Path:
    path = tmp_path / "hb"
    async with QdrantBehaviorStore(path=path, embedder=embedder) as store:
        for name, (instruction, topics) in SEED.items():
            await store.add(Behavior(name=name, instruction=instruction, topics=topics), dedup=False)
    return path  # closed: the server process owns the store from here


def data(result: Any) -> Any:
    assert not result.isError, result.content
    if result.structuredContent is not None:
        content = result.structuredContent
        return content.get("result", content) if set(content) == {"result"} else content
    return json.loads(result.content[0].text)


def error_text(result: Any) -> str:
    assert result.isError
    return " ".join(getattr(c, "text", "") for c in result.content)


def params(path: Path, *extra: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "agentkit", "mcp", "--store", str(path),
                                                               *extra], env=dict(os.environ))


async def test_every_tool_over_stdio_with_errors_as_mcp_errors(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    path = await seeded(tmp_path, embedder)
    async with stdio_client(params(path)) as (read, write), ClientSession(read, write) as session:
        await asyncio.wait_for(session.initialize(), 120)
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert set(tools) == {"search_behaviors", "get_behavior", "list_topics", "add_behavior", "record_usage"}
        assert tools["search_behaviors"].inputSchema["properties"]["k"]["maximum"] == 100

        hits = data(await session.call_tool("search_behaviors", {"query": "what units is the answer in?", "k": 2}))
        assert hits[0]["name"] == "behavior_check_units" and len(hits) == 2 and hits[0]["score"] > 0
        geometry = data(await session.call_tool("search_behaviors", {"query": "units", "k": 5, "topic": "Geometry"}))
        assert [h["name"] for h in geometry] == ["behavior_draw_the_triangle"]
        assert data(await session.call_tool("list_topics", {})) == {"Algebra": 2, "Geometry": 1}
        one = data(await session.call_tool("get_behavior", {"name": "behavior_work_backwards"}))
        assert one["instruction"].startswith("Start from what is asked") and one["version"] == 1

        added = data(await session.call_tool("add_behavior", {
            "name": "behavior_guess_and_check", "instruction": "Guess a value, check it, and adjust.",
            "topics": ["Algebra"]}))
        assert added["name"] == "behavior_guess_and_check" and added["topics"] == ["Algebra"]
        assert data(await session.call_tool("record_usage", {"name": "behavior_guess_and_check", "event": "cited"}))
        cited = data(await session.call_tool("get_behavior", {"name": "behavior_guess_and_check"}))
        assert cited["stats"]["cited"] == 1

        # Hostile and careless calls: an MCP error naming the problem each time, and the server keeps serving.
        assert "no behavior named" in error_text(await session.call_tool("get_behavior", {"name": "behavior_nope"}))
        assert "behavior_" in error_text(await session.call_tool("get_behavior", {"name": "../../etc/passwd"}))
        assert error_text(await session.call_tool("search_behaviors", {"query": "x", "k": 0}))
        assert error_text(await session.call_tool("search_behaviors", {"query": "x", "k": 10**9}))
        assert error_text(await session.call_tool("search_behaviors", {"query": ""}))
        assert error_text(await session.call_tool("add_behavior", {"name": "Not A Name", "instruction": "x"}))
        assert error_text(await session.call_tool("add_behavior", {"name": "behavior_long",
                                                                   "instruction": "y" * 5000}))
        assert error_text(await session.call_tool("record_usage", {"name": "behavior_nope", "event": "cited"}))
        assert error_text(await session.call_tool("record_usage", {"name": "behavior_check_units",
                                                                   "event": "liked"}))
        assert error_text(await session.call_tool("no_such_tool", {}))
        assert data(await session.call_tool("list_topics", {})) == {"Algebra": 3, "Geometry": 1}
    # What the server acknowledged is in the store after it exits.
    async with QdrantBehaviorStore(path=path, embedder=embedder) as store:
        assert (await store.get("behavior_guess_and_check")).stats.cited == 1


async def test_read_only_has_no_writing_tools(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    path = await seeded(tmp_path, embedder)
    async with stdio_client(params(path, "--read-only")) as (read, write), ClientSession(read, write) as session:
        await asyncio.wait_for(session.initialize(), 120)
        names = {t.name for t in (await session.list_tools()).tools}
        assert names == {"search_behaviors", "get_behavior", "list_topics"}
        assert error_text(await session.call_tool("add_behavior", {"name": "behavior_x", "instruction": "y"}))


async def test_streamable_http_needs_the_token(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    import httpx

    path = await seeded(tmp_path, embedder)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentkit", "mcp", "--store", str(path), "--http", "--port", "0", "--token", "t0k",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
        url = line.rsplit(" at ", 1)[1].strip()
        async with httpx.AsyncClient() as client:
            refused = await client.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert refused.status_code == 401
        async with create_mcp_http_client(headers={"Authorization": "Bearer t0k"}) as http, \
                streamable_http_client(url, http_client=http) as (read, write, _), ClientSession(read, write) as session:
            await session.initialize()
            hits = data(await session.call_tool("search_behaviors", {"query": "triangle sides", "k": 1}))
            assert hits[0]["name"] == "behavior_draw_the_triangle"
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


@pytest.mark.parametrize("args", [["--store", "http://127.0.0.1:9/"], ["--http", "--port", "-1"]])
async def test_bad_flags_are_one_line_with_exit_2(tmp_path: Path, args: list[str]) -> None:
    if "--store" not in args:
        args = ["--store", str(tmp_path / "fresh"), *args]
    env = {k: v for k, v in os.environ.items() if k != "AGENTKIT_TOKEN"}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "agentkit", "mcp", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 2, err
    assert err.decode().count("\n") == 1 and err.decode().startswith("agentkit: ")


INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "flood", "version": "1"}}}


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc for the RSS")
async def test_sessions_are_bounded_and_bad_bodies_are_parse_errors(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    """4,000 ``initialize`` requests that never close their session: at most ``--max-sessions`` are open (the
    rest get a 503 that says why, with Retry-After), the server's RSS stays flat, idle sessions close so new
    ones are admitted again; invalid UTF-8 and invalid JSON are JSON-RPC parse errors (400), a wrong token a 401
    with ``WWW-Authenticate``; clients that disconnect mid-stream leave no traceback in the log."""
    import aiohttp

    path = await seeded(tmp_path, embedder)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentkit", "mcp", "--store", str(path), "--http", "--port", "0", "--token", "t0k",
        "--max-sessions", "50", "--session-idle", "3", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    headers = {"Authorization": "Bearer t0k", "Accept": "application/json, text/event-stream",
               "Content-Type": "application/json"}
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
        url = line.rsplit(" at ", 1)[1].strip()
        codes: dict[int, int] = {}
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=b'{"jsonrpc":"2.0","id":1,"method":"\xff\xfe"}', headers=headers) as r:
                assert r.status == 400 and (await r.json())["error"]["code"] == -32700
            async with http.post(url, data=b"{not json", headers=headers) as r:
                assert r.status == 400 and (await r.json())["error"]["code"] == -32700
            async with http.post(url, data=io.BytesIO(b"[" * 2_000_000), headers=headers) as r:
                assert r.status == 413
            async with http.post(url, json=INIT, headers={**headers, "Authorization": "Bearer wrong"}) as r:
                assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
            before = _rss_mb(proc.pid)
            gate = asyncio.Semaphore(16)

            async def initialize() -> None:
                async with gate, http.post(url, json=INIT, headers=headers) as r:
                    body = await r.read()
                    codes[r.status] = codes.get(r.status, 0) + 1
                    if r.status == 503:
                        assert b"maximum of 50 MCP sessions" in body and r.headers["Retry-After"]

            started = time.monotonic()
            await asyncio.gather(*(initialize() for _ in range(4000)))
            elapsed = time.monotonic() - started
            after = _rss_mb(proc.pid)
            # at most 50 open at once: 50 per idle period of 3 s (sessions close as they go idle)
            assert sum(codes.values()) == 4000 and 50 <= codes[200] <= 50 * (math.ceil(elapsed / 3) + 1), codes
            assert codes[503] >= 4000 - 50 * (math.ceil(elapsed / 3) + 1)
            assert after - before < 50, (before, after)
            await asyncio.sleep(4.5)  # every session idle past --session-idle: closed
            async with http.post(url, json=INIT, headers=headers) as r:
                assert r.status == 200
                session = r.headers["mcp-session-id"]
            stream = await http.get(url, headers={**headers, "mcp-session-id": session})
            stream.close()  # gone mid-stream
        print(f"MCP flood: 4,000 sessions asked, {codes}; RSS {before:.0f} -> {after:.0f} MB")
    finally:
        proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    log = err.decode()
    assert "Traceback" not in log and "ClosedResourceError" not in log and "Error" not in log.replace(
        "WARNING", ""), log[-3000:]
