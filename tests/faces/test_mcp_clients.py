"""``agentkit mcp`` driven by a client we did not write: the MCP TypeScript SDK (pinned in ``tests/clients``), over
stdio (the command an agent starts) and streamable HTTP, on a real embedded store; and what a client sees when a
second server opens a store that another process holds."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from agentkit import __version__
from agentkit.memory import MiniLMEmbedder, QdrantBehaviorStore

from .test_mcp import seeded

TOKEN = "mcp-client-token"


async def _node(node_clients: Path, *args: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        "node", str(node_clients / "mcp_handbook.mjs"), *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=node_clients)
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0, err.decode()[-2000:]
    return json.loads(out)  # type: ignore[no-any-return]


def check_session(got: dict[str, Any]) -> None:
    assert got["server"] == {"name": "agentkit-handbook", "version": __version__}
    for name, schema in got["tools"].items():  # every argument described, unknown ones refused by the schema
        assert schema.get("additionalProperties") is False, name
        assert all(p.get("description") for p in schema.get("properties", {}).values()), (name, schema)
    assert got["tools"]["get_behavior"]["properties"]["name"]["pattern"] == "^behavior_[a-z0-9_]+$"
    hits = got["search"]["ok"]
    hits = hits.get("result", hits) if isinstance(hits, dict) else hits
    assert [set(h) for h in hits] == [{"name", "instruction", "score"}] * 2  # compact: details on request
    assert hits[0]["name"] == "behavior_check_units"
    detailed = got["detailed"]["ok"]
    detailed = detailed.get("result", detailed) if isinstance(detailed, dict) else detailed
    assert {"topics", "version", "stats"} <= set(detailed[0])
    # Errors: one plain sentence, no pydantic URL, naming what was wrong.
    for key, words in (("unknown_argument", "takes no argument 'kk'"), ("bad_k", "k should be greater than"),
                       ("bad_name", "name should match pattern"), ("missing", "behavior_nope")):
        message = got[key]["error"]
        assert words in message and "http" not in message and "\n" not in message.strip(), (key, message)
    assert got["added"]["ok"]["name"] == "behavior_guess_and_check"


async def test_the_typescript_sdk_over_stdio(tmp_path: Path, embedder: MiniLMEmbedder, node_clients: Path) -> None:
    path = await seeded(tmp_path, embedder)
    check_session(await _node(node_clients, "stdio", sys.executable, str(path)))


async def test_the_typescript_sdk_over_http(tmp_path: Path, embedder: MiniLMEmbedder, node_clients: Path) -> None:
    path = await seeded(tmp_path, embedder)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentkit", "mcp", "--store", str(path), "--http", "--port", "0", "--token", TOKEN,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
        check_session(await _node(node_clients, "http", line.rsplit(" at ", 1)[1].strip(), TOKEN))
    finally:
        proc.terminate()
        await proc.wait()


async def test_a_second_server_on_a_held_store_tells_the_client_why(tmp_path: Path, embedder: MiniLMEmbedder,
                                                                     node_clients: Path) -> None:
    """The embedded store has one owner process: a second ``agentkit mcp`` on it answers the client's
    ``initialize`` with an error naming the lock and the way to share a handbook, then exits 2 with that line on
    stderr (the client used to see only "connection closed")."""
    path = await seeded(tmp_path, embedder)
    async with QdrantBehaviorStore(path=path, embedder=embedder):  # this process holds the store
        got = await _node(node_clients, "locked", sys.executable, str(path))
        assert "connected" not in got
        assert "open in another process" in got["refused"] and "agentkit serve" in got["refused"], got
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agentkit", "mcp", "--store", str(path), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        request = {"jsonrpc": "2.0", "id": 7, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
        out, err = await asyncio.wait_for(proc.communicate(json.dumps(request).encode() + b"\n"), 120)
        reply = json.loads(out)
        assert reply["id"] == 7 and "open in another process" in reply["error"]["message"]
        assert proc.returncode == 2 and len(err.decode().strip().splitlines()) == 1, err.decode()


async def test_two_agents_share_one_handbook_through_the_service(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    """The README's way for two agents to share a handbook: one ``agentkit serve`` owns the store, and each agent's
    ``agentkit mcp --store URL`` reaches it; what one agent adds, the other finds."""
    import os

    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    from .test_mcp import data

    path = await seeded(tmp_path, embedder)
    service = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentkit", "serve", "--store", str(path), "--port", "0", "--token", TOKEN,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert service.stdout is not None
        url = (await asyncio.wait_for(service.stdout.readline(), 120)).decode().rsplit(" at ", 1)[1].strip()
        agent = StdioServerParameters(command=sys.executable, env=dict(os.environ), args=[
            "-m", "agentkit", "mcp", "--store", url, "--store-token", TOKEN])
        async with stdio_client(agent) as (r1, w1), ClientSession(r1, w1) as first, \
                stdio_client(agent) as (r2, w2), ClientSession(r2, w2) as second:
            await asyncio.wait_for(asyncio.gather(first.initialize(), second.initialize()), 120)
            await first.call_tool("add_behavior", {"name": "behavior_guess_and_check",
                                                   "instruction": "Guess a value, check it, and adjust."})
            hits = data(await second.call_tool("search_behaviors", {"query": "guess a value and check it", "k": 1}))
            assert hits[0]["name"] == "behavior_guess_and_check"
    finally:
        service.terminate()
        await service.wait()
