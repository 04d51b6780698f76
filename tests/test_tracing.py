"""OpenTelemetry traces: the span tree of a PDR run, a sweep and a proxy request (the SDK's in-memory exporter, in
a process of its own, since a tracer provider is set once per process), and a real OTLP/HTTP exchange: the
``agentkit --otel`` command exports to a receiver on 127.0.0.1 that decodes the protocol's protobuf, and sends
nothing without ``--otel``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agentkit import tracing
from agentkit.testing import Reply, ScriptedServer, prompt_kind

pytest.importorskip("opentelemetry.sdk", reason="the tracing tests need agentkit[otel] (in the dev extras)")

SPEC = """
name = "traced"
concurrency = 2
budgets = [900]
seeds = [0]

[[datasets]]
name = "gsm8k"
limit = 2

[[methods]]
name = "pdr"
params = {{ rounds = 2, drafts = 2, kappa = 64 }}

[[backends]]
spec = "openai-compatible:{url}?model=scripted&retries=1"
concurrency = 4
"""

IN_MEMORY = textwrap.dedent('''
    import asyncio, json, sys
    from pathlib import Path
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    import aiohttp
    from agentkit.backends import backend_from_spec
    from agentkit.faces.proxy import Proxy, create_proxy_app, run_proxy_runner
    from agentkit.messages import Problem
    from agentkit.registry import get_method
    from agentkit.sweep import load_spec, run_sweep
    from agentkit.sweep.db import ResultsDB
    from agentkit.testing import Reply, ScriptedServer, prompt_kind

    def script(body):
        return Reply("Both drafts get 3.") if prompt_kind(body) == "summary" else Reply("2 + 1 = 3, so \\\\boxed{3}")

    def dump():
        out = []
        for s in exporter.get_finished_spans():
            out.append({"name": s.name, "trace": format(s.context.trace_id, "032x"), "id": format(s.context.span_id, "016x"),
                        "parent": format(s.parent.span_id, "016x") if s.parent else None, "kind": s.kind.name,
                        "attributes": dict(s.attributes or {})})
        exporter.clear()
        return out

    async def main(tmp):
        out = {}
        async with ScriptedServer(script) as upstream:
            backend = backend_from_spec(f"openai-compatible:{upstream.base_url}?model=scripted&retries=1")
            result = await get_method("pdr").solve(Problem(problem_id="p1", text="What is 2 + 1?"), backend,
                                                   params={"rounds": 2, "drafts": 2, "kappa": 64})
            out["pdr"] = {"spans": dump(), "ledger": result.ledger.summary()}
            spec_path = Path(tmp) / "spec.toml"
            spec_path.write_text(sys.argv[2].format(url=upstream.base_url))
            await run_sweep(load_spec(spec_path), Path(tmp) / "r.sqlite")
            db = ResultsDB(Path(tmp) / "r.sqlite")
            out["sweep"] = {"spans": dump(), "rows": [{k: r[k] for k in ("key", "input_tokens", "output_tokens", "calls")}
                                                      for r in db.rows()]}
            db.close()
            proxy = Proxy(backend, token="t")
            runner, url = await run_proxy_runner(create_proxy_app(proxy, close_backend=False))
            caller = "4bf92f3577b34da6a3ce929d0e0e4736"
            async with aiohttp.ClientSession() as http, http.post(f"{url}/v1/chat/completions", json={
                    "model": "pdr/scripted", "messages": [{"role": "user", "content": "What is 2 + 1?"}],
                    "agentkit": {"params": {"rounds": 2, "drafts": 2, "kappa": 64}}},
                    headers={"Authorization": "Bearer t", "traceparent": f"00-{caller}-00f067aa0ba902b7-01"}) as r:
                assert r.status == 200, await r.text()
            await runner.cleanup()
            out["proxy"] = {"spans": dump(), "caller": caller}
            await backend.aclose()
        print(json.dumps(out))

    asyncio.run(main(sys.argv[1]))
''')


def _children(spans: list[dict[str, Any]], parent: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in spans if s["parent"] == parent["id"]]


def _descends(spans: list[dict[str, Any]], span: dict[str, Any], ancestor: dict[str, Any]) -> bool:
    by_id = {s["id"]: s for s in spans}
    current: dict[str, Any] | None = span
    while current is not None:
        if current["parent"] == ancestor["id"]:
            return True
        current = by_id.get(current["parent"]) if current["parent"] else None
    return False


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("traced")
    run = subprocess.run([sys.executable, "-c", IN_MEMORY, str(tmp), SPEC], capture_output=True, text=True,
                         timeout=600, env={**os.environ, "AGENTKIT_LOG_LEVEL": "warning"})
    assert run.returncode == 0, run.stderr[-4000:]
    return dict(json.loads(run.stdout))


def test_a_pdr_run_is_one_tree_with_genai_client_spans(traced: dict[str, Any]) -> None:
    spans, ledger = traced["pdr"]["spans"], traced["pdr"]["ledger"]
    assert len({s["trace"] for s in spans}) == 1
    [method] = [s for s in spans if s["name"] == "agentkit.method pdr"]
    assert method["parent"] is None and method["attributes"]["agentkit.method"] == "pdr"
    chats = [s for s in spans if s["name"].startswith("chat ")]
    assert len(chats) == ledger["calls"] == method["attributes"]["agentkit.calls"]
    for chat in chats:
        attributes = chat["attributes"]
        assert chat["kind"] == "CLIENT" and _descends(spans, chat, method)
        assert attributes["gen_ai.operation.name"] == "chat" and attributes["gen_ai.request.model"] == "scripted"
        for name in ("gen_ai.request.max_tokens", "gen_ai.request.temperature", "gen_ai.usage.input_tokens",
                     "gen_ai.usage.output_tokens", "gen_ai.response.finish_reasons", "agentkit.round",
                     "agentkit.branch", "agentkit.b_seq", "agentkit.role", "agentkit.stage"):
            assert name in attributes, (name, attributes)
        assert "gen_ai.input.messages" not in attributes  # content only when opted in
    assert sum(c["attributes"]["gen_ai.usage.input_tokens"] for c in chats) == ledger["input_tokens"]
    assert sum(c["attributes"]["gen_ai.usage.output_tokens"] for c in chats) == ledger["output_tokens"]
    assert method["attributes"]["gen_ai.usage.output_tokens"] == ledger["output_tokens"]
    steps = {s["name"] for s in spans if s["name"].startswith("agentkit.step ")}
    assert {"agentkit.step refiner refine_request", "agentkit.step distiller distill_request"} <= steps, steps
    assert {c["attributes"]["agentkit.round"] for c in chats} == {1, 2}
    assert all(_descends(spans, s, method) for s in spans if s is not method)  # one tree under the run


def test_a_sweep_is_one_trace_per_cell_with_the_rows_tokens(traced: dict[str, Any]) -> None:
    spans, rows = traced["sweep"]["spans"], traced["sweep"]["rows"]
    cells = [s for s in spans if s["name"] == "agentkit.cell"]
    assert len(cells) == len(rows) == 2 and len({c["trace"] for c in cells}) == 2
    for cell in cells:
        assert cell["parent"] is None
        row = next(r for r in rows if r["key"] == cell["attributes"]["agentkit.cell.key"])
        tree = [s for s in spans if s["trace"] == cell["trace"]]
        [method] = [s for s in tree if s["name"] == "agentkit.method pdr"]
        assert method["parent"] == cell["id"]
        chats = [s for s in tree if s["name"].startswith("chat ")]
        assert len(chats) == row["calls"]
        assert sum(c["attributes"]["gen_ai.usage.input_tokens"] for c in chats) == row["input_tokens"]
        assert sum(c["attributes"]["gen_ai.usage.output_tokens"] for c in chats) == row["output_tokens"]
        assert cell["attributes"]["gen_ai.usage.output_tokens"] == row["output_tokens"]


def test_a_proxy_request_joins_the_callers_trace(traced: dict[str, Any]) -> None:
    spans, caller = traced["proxy"]["spans"], traced["proxy"]["caller"]
    [server] = [s for s in spans if s["kind"] == "SERVER"]
    assert server["trace"] == caller and server["parent"] == "00f067aa0ba902b7"
    assert server["name"] == "POST /v1/chat/completions"
    assert server["attributes"]["http.response.status_code"] == 200
    [method] = [s for s in spans if s["name"] == "agentkit.method pdr"]
    assert _descends(spans, method, server) and all(s["trace"] == caller for s in spans)


def test_tracing_is_off_without_a_provider() -> None:
    assert not tracing.active()  # this test process configured no provider
    assert tracing.capture() is None and tracing.extracted({"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}) \
        is None
    with tracing.span("x") as current:
        assert current is None


class Receiver:
    """An OTLP/HTTP trace receiver on 127.0.0.1: decodes each export (protobuf) into spans."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.exports = 0

    async def handle(self, request: web.Request) -> web.Response:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        self.exports += 1
        for resource in message.resource_spans:
            service = next((a.value.string_value for a in resource.resource.attributes if a.key == "service.name"), "")
            for scope in resource.scope_spans:
                for s in scope.spans:
                    attributes = {}
                    for a in s.attributes:
                        value = a.value
                        kind = value.WhichOneof("value")
                        attributes[a.key] = getattr(value, kind) if kind != "array_value" else [
                            getattr(v, v.WhichOneof("value")) for v in value.array_value.values]
                    self.spans.append({"name": s.name, "trace": s.trace_id.hex(), "id": s.span_id.hex(),
                                       "parent": s.parent_span_id.hex() or None, "attributes": attributes,
                                       "service": service})
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/v1/traces", found.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield found, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def script(body: dict[str, Any]) -> Reply:
    return Reply("Both drafts get 3.") if prompt_kind(body) == "summary" else Reply("2 + 1 = 3, so \\boxed{3}")


async def test_agentkit_otel_exports_a_sweep_over_otlp_and_nothing_without_it(
        receiver: tuple[Receiver, str], tmp_path: Path) -> None:
    import sqlite3

    found, endpoint = receiver
    async with ScriptedServer(script) as upstream:
        spec = tmp_path / "spec.toml"
        spec.write_text(SPEC.format(url=upstream.base_url))
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "agentkit-test",
               "AGENTKIT_LOG_LEVEL": "warning"}
        for flags, db in (([], "off.sqlite"), (["--otel"], "on.sqlite")):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agentkit", *flags, "sweep", "run", str(spec), "--db", str(tmp_path / db),
                env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            _, err = await asyncio.wait_for(proc.communicate(), 600)
            assert proc.returncode == 0, err.decode()[-3000:]
            if not flags:
                assert found.exports == 0 and found.spans == []  # tracing off: nothing leaves the process
    conn = sqlite3.connect(tmp_path / "on.sqlite")
    rows = {key: (calls, inp, out) for key, calls, inp, out in
            conn.execute("SELECT key, calls, input_tokens, output_tokens FROM results")}
    conn.close()
    cells = [s for s in found.spans if s["name"] == "agentkit.cell"]
    assert len(cells) == len(rows) == 2 and len({c["trace"] for c in cells}) == 2
    assert {s["service"] for s in found.spans} == {"agentkit-test"}
    for cell in cells:
        calls, inp, out = rows[cell["attributes"]["agentkit.cell.key"]]
        tree = [s for s in found.spans if s["trace"] == cell["trace"]]
        chats = [s for s in tree if s["name"].startswith("chat ")]
        assert len(chats) == calls
        assert sum(c["attributes"]["gen_ai.usage.input_tokens"] for c in chats) == inp
        assert sum(c["attributes"]["gen_ai.usage.output_tokens"] for c in chats) == out
        [method] = [s for s in tree if s["name"] == "agentkit.method pdr"]
        assert method["parent"] == cell["id"]


async def test_a_sweep_on_ray_workers_exports_each_cells_trace(receiver: tuple[Receiver, str], tmp_path: Path
                                                                ) -> None:
    """``agentkit --otel sweep run --executor ray``: the workers run the cells and export their traces (the driver's
    ``OTEL_*`` passed to them), one tree per cell with its method and every call."""
    pytest.importorskip("ray")
    import sqlite3

    found, endpoint = receiver
    async with ScriptedServer(script) as upstream:
        spec = tmp_path / "spec.toml"
        spec.write_text(SPEC.format(url=upstream.base_url))
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "agentkit-ray-test"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agentkit", "--otel", "sweep", "run", str(spec), "--db", str(tmp_path / "r.sqlite"),
            "--executor", "ray", "--workers", "2", env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), 600)
        assert proc.returncode == 0, err.decode()[-3000:]
    conn = sqlite3.connect(tmp_path / "r.sqlite")
    calls = dict(conn.execute("SELECT key, calls FROM results").fetchall())
    conn.close()
    cells = [s for s in found.spans if s["name"] == "agentkit.cell"]
    assert sorted(c["attributes"]["agentkit.cell.key"] for c in cells) == sorted(calls)
    assert {s["service"] for s in found.spans} == {"agentkit-ray-test"}
    for cell in cells:
        tree = [s for s in found.spans if s["trace"] == cell["trace"]]
        assert len([s for s in tree if s["name"].startswith("chat ")]) == calls[cell["attributes"]["agentkit.cell.key"]]


async def test_an_mcp_tool_call_joins_the_callers_trace(receiver: tuple[Receiver, str], tmp_path: Path,
                                                        embedder: Any) -> None:
    """``agentkit --otel mcp --http``: a tool call whose HTTP request carries a ``traceparent`` is a server span in
    the caller's trace, with the handbook search under it naming the behaviors it found."""
    import aiohttp

    from agentkit.memory import Behavior, QdrantBehaviorStore

    found, endpoint = receiver
    async with QdrantBehaviorStore(path=tmp_path / "hb", embedder=embedder) as store:
        await store.add(Behavior(name="behavior_check_units", instruction="write the unit beside every number"))
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "AGENTKIT_LOG_LEVEL": "warning"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentkit", "--otel", "mcp", "--store", str(tmp_path / "hb"), "--http", "--port", "0",
        "--token", "t", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    caller = "0af7651916cd43dd8448eb211c80319c"
    headers = {"Authorization": "Bearer t", "Accept": "application/json, text/event-stream",
               "Content-Type": "application/json"}
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode().rsplit(" at ", 1)[1].strip()
        async with aiohttp.ClientSession() as http:
            async with http.post(url, headers=headers, json={
                    "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                        "protocolVersion": "2025-06-18", "capabilities": {},
                        "clientInfo": {"name": "t", "version": "1"}}}) as r:
                session = r.headers["mcp-session-id"]
            headers["mcp-session-id"] = session
            async with http.post(url, headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"}):
                pass
            async with http.post(url, headers={**headers, "traceparent": f"00-{caller}-b7ad6b7169203331-01"}, json={
                    "jsonrpc": "2.0", "id": 2, "method": "tools/call",
                    "params": {"name": "search_behaviors", "arguments": {"query": "units", "k": 1}}}) as r:
                assert r.status == 200 and "behavior_check_units" in await r.text()
    finally:
        proc.terminate()  # a clean stop flushes the batch of spans
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert found.spans, err.decode()[-3000:]
    tools = [s for s in found.spans if s["name"] == "execute_tool search_behaviors"]
    assert len(tools) == 1, sorted({s["name"] for s in found.spans})
    [tool] = tools
    assert tool["trace"] == caller and tool["parent"] == "b7ad6b7169203331"
    # The server's own warm-up search at start is a trace of its own; the caller's search sits under its tool span.
    [search] = [s for s in found.spans if s["name"] == "agentkit.handbook.search" and s["trace"] == caller]
    assert search["parent"] == tool["id"] and search["attributes"]["agentkit.behaviors"] == ["behavior_check_units"]
