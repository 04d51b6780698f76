"""The OpenAI proxy and the MCP server over HTTP under generated hostile input (hypothesis, bounded): malformed
JSON, invalid UTF-8, wrong types, huge numbers, huge bodies and unknown fields, alone and spliced into valid
requests. Every answer is a 4xx (or a 2xx for what happens to be valid), never a 5xx; both servers still answer a
valid request afterwards. Bounded: AGENTKIT_FUZZ_EXAMPLES x 10 examples per face (default 120)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentkit.memory import Behavior, MiniLMEmbedder, QdrantBehaviorStore
from agentkit.testing import Reply, ScriptedServer, prompt_kind

TOKEN = "fuzz-token"
EXAMPLES = int(os.environ.get("AGENTKIT_FUZZ_EXAMPLES", "12")) * 10
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)
HOSTILE_NUMBERS = st.sampled_from([-1, 0, 2**63, -(2**63) - 1, 10**400, 1e308, -1e308, 0.5, "1", True, None, [], {}])


def _mutate(valid: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    """``valid`` with the field at ``path`` replaced by ``value`` (a missing parent becomes a dict)."""
    out = json.loads(json.dumps(valid))
    target = out
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[path[-1]] = value
    return out


def bodies(valid: dict[str, Any], fields: list[list[str]]) -> st.SearchStrategy[bytes]:
    """Hostile bodies around ``valid``: raw bytes, invalid UTF-8 inside JSON, arbitrary JSON, a valid request
    with one field replaced by anything (hostile numbers included) or an unknown field added, huge strings."""
    as_bytes = st.builds(lambda v: json.dumps(v).encode(), st.just(valid))
    spliced = st.builds(lambda path, value: json.dumps(_mutate(valid, path, value)).encode(),
                        st.sampled_from(fields), JSON_VALUES | HOSTILE_NUMBERS)
    unknown = st.builds(lambda name, value: json.dumps({**valid, name: value}).encode(),
                        st.text(min_size=1, max_size=20), JSON_VALUES)
    bad_utf8 = st.builds(lambda b: json.dumps(valid).encode().replace(b'"', b'"' + b, 1),
                         st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x00", b"\xf4\x90\x80\x80"]))
    huge = st.builds(lambda n: json.dumps(_mutate(valid, fields[0], "x" * n)).encode(),
                     st.sampled_from([10**5, 10**6, 5 * 10**6]))
    return st.one_of(st.binary(max_size=200), bad_utf8, st.builds(lambda v: json.dumps(v).encode(), JSON_VALUES),
                     spliced, unknown, huge, as_bytes, st.just(b"{" * 10_000), st.just(b"[" * 100_000 + b"]"))


class _Background:
    """An event loop in a thread (the servers live there; hypothesis drives them with blocking requests)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def proxy_url() -> Iterator[str]:
    from agentkit.backends import backend_from_spec
    from agentkit.faces.proxy import Proxy, create_proxy_app, run_proxy_runner

    def script(body: dict[str, Any]) -> Reply:
        return Reply("Both get 3.") if prompt_kind(body) == "summary" else Reply("2 + 1 = 3, so \\boxed{3}")

    bg = _Background()
    upstream = bg.run(ScriptedServer(script).start())

    async def start() -> tuple[Any, str]:
        backend = backend_from_spec(f"openai-compatible:{upstream.base_url}?model=scripted&retries=1")
        return await run_proxy_runner(create_proxy_app(Proxy(backend, token=TOKEN), max_body=1 << 20))

    runner, url = bg.run(start())
    try:
        yield url
    finally:
        bg.run(runner.cleanup())
        bg.run(upstream.close())
        bg.stop()


CHAT = {"model": "pdr/scripted", "messages": [{"role": "user", "content": "What is 2 + 1?"}], "max_tokens": 20000,
        "temperature": 0.5, "seed": 1, "agentkit": {"params": {"rounds": 2, "drafts": 2}, "budget": 4000}}
CHAT_FIELDS = [["model"], ["messages"], ["max_tokens"], ["temperature"], ["seed"], ["n"], ["stop"], ["stream"],
               ["top_p"], ["max_completion_tokens"], ["agentkit", "params"], ["agentkit", "budget"],
               ["agentkit", "method"], ["agentkit", "problem_id"], ["agentkit", "params", "drafts"],
               ["agentkit", "params", "rounds"], ["agentkit", "params", "kappa"], ["stream_options"]]


def test_fuzz_the_proxy(proxy_url: str) -> None:
    statuses: dict[int, int] = {}
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    @FUZZ
    @given(body=bodies(CHAT, CHAT_FIELDS))
    def check(body: bytes) -> None:
        try:
            r = requests.post(f"{proxy_url}/v1/chat/completions", data=io.BytesIO(body), headers=headers, timeout=120)
        except requests.RequestException as exc:
            raise AssertionError(f"{type(exc).__name__}: {exc} for {body[:300]!r}") from None
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code < 500, (body[:300], r.text[:500])
        if r.status_code >= 400:
            error = r.json()["error"]  # OpenAI's error shape, always
            assert error["message"] and error["type"]

    check()
    ok = requests.post(f"{proxy_url}/v1/chat/completions", json=CHAT, headers=headers, timeout=120)
    assert ok.status_code == 200, ok.text
    print(f"proxy fuzz: {sum(statuses.values())} requests, statuses {dict(sorted(statuses.items()))}")
    assert sum(statuses.values()) >= EXAMPLES // 2


@pytest.fixture(scope="module")
def mcp_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import subprocess

    path = tmp_path_factory.mktemp("mcp") / "hb"

    async def seed() -> None:
        async with QdrantBehaviorStore(path=path, embedder=MiniLMEmbedder()) as store:
            await store.add(Behavior(name="behavior_check_units", instruction="write the unit beside each number"))

    asyncio.run(seed())
    proc = subprocess.Popen([sys.executable, "-m", "agentkit", "mcp", "--store", str(path), "--http", "--port", "0",
                             "--token", TOKEN], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert " at http://" in line, line
        yield line.rsplit(" at ", 1)[1].strip()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
        assert "Traceback" not in err, err[-3000:]


MCP_HEADERS = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json, text/event-stream",
               "Content-Type": "application/json"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "1"}}}
CALL = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "search_behaviors", "arguments": {"query": "units", "k": 2}}}
CALL_FIELDS = [["params", "arguments"], ["params", "name"], ["params", "arguments", "k"],
               ["params", "arguments", "query"], ["params", "arguments", "topic"], ["id"], ["method"], ["jsonrpc"],
               ["params"]]


def _session(url: str) -> str:
    r = requests.post(url, json=INIT, headers=MCP_HEADERS, timeout=60)
    assert r.status_code == 200, r.text
    session = r.headers["mcp-session-id"]
    requests.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                  headers={**MCP_HEADERS, "mcp-session-id": session}, timeout=60)
    return session


def test_fuzz_the_mcp_http_endpoint(mcp_url: str) -> None:
    statuses: dict[int, int] = {}
    session = _session(mcp_url)

    @FUZZ
    @given(body=bodies(CALL, CALL_FIELDS) | bodies(INIT, [["params"], ["params", "protocolVersion"], ["id"]]),
           in_session=st.booleans())
    def check(body: bytes, in_session: bool) -> None:
        headers = {**MCP_HEADERS, **({"mcp-session-id": session} if in_session else {})}
        try:
            r = requests.post(mcp_url, data=io.BytesIO(body), headers=headers, timeout=30)
        except requests.RequestException as exc:
            raise AssertionError(f"{type(exc).__name__}: {exc} for {body[:300]!r}") from None
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code < 500, (body[:300], r.text[:500])

    check()
    # still serving: a tool call in the session works
    r = requests.post(mcp_url, json=CALL, headers={**MCP_HEADERS, "mcp-session-id": session}, timeout=60)
    assert r.status_code == 200 and "behavior_check_units" in r.text, r.text
    print(f"MCP fuzz: {sum(statuses.values())} requests, statuses {dict(sorted(statuses.items()))}")

