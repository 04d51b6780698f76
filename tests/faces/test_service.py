"""The handbook service over real HTTP on 127.0.0.1: auth, limits, validation, the client, and two processes
sharing one embedded store through it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from agentkit.errors import BehaviorNotFound, ConfigError
from agentkit.faces.service import create_app, openapi_spec
from agentkit.memory import Behavior, HandbookClient, MiniLMEmbedder, PrunePolicy, QdrantBehaviorStore

TOKEN = "test-token"


@pytest.fixture
async def service(tmp_path: Path, embedder: MiniLMEmbedder) -> AsyncIterator[str]:
    store = QdrantBehaviorStore(path=tmp_path / "store", embedder=embedder)
    runner = web.AppRunner(create_app(store, token=TOKEN, max_body=4096), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_auth_size_limit_and_validation(service: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{service}/health") as r:
            assert r.status == 200
        async with http.get(f"{service}/openapi.json") as r:
            spec = await r.json()
            assert "/v1/search" in spec["paths"] and spec["components"]["securitySchemes"]["bearer"]
        async with http.post(f"{service}/v1/search", json={"query": "x"}) as r:
            assert r.status == 401
        async with http.post(f"{service}/v1/search", json={"query": "x"},
                             headers={"Authorization": "Bearer wrong"}) as r:
            assert r.status == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with http.post(f"{service}/v1/behaviors", data=b"{" + b" " * 5000 + b"}", headers=auth) as r:
            assert r.status == 413
        bad = {"behavior": {"name": "not valid", "instruction": ""}}
        async with http.post(f"{service}/v1/behaviors", json=bad, headers=auth) as r:
            assert r.status == 422
            body = await r.json()
            fields = {f["field"] for f in body["fields"]}
            assert {"behavior.name", "behavior.instruction"} <= fields
        async with http.post(f"{service}/v1/behaviors", data=b"not json", headers=auth) as r:
            assert r.status == 422
        async with http.get(f"{service}/v1/behaviors/behavior_missing", headers=auth) as r:
            assert r.status == 404
        async with http.get(f"{service}/v1/stats", headers=auth) as r:
            assert (await r.json())["counts"] == {"active": 0, "deprecated": 0, "pruned": 0}  # nothing bad was stored


async def test_client_has_the_store_methods(service: str, tmp_path: Path) -> None:
    async with HandbookClient(service, token=TOKEN) as hb:
        added = await hb.add(Behavior(name="behavior_check_units", instruction="convert every quantity to one unit",
                                      topics=("Units",)))
        assert added.version == 1
        await hb.add(Behavior(name="behavior_work_backwards", instruction="undo each step from the final state"))
        hits = await hb.search("grams and kilograms", k=2)
        assert hits[0].behavior.name == "behavior_check_units" and hits[0].score > hits[1].score
        assert [b.name for b in await hb.by_topic("Units")] == ["behavior_check_units"]
        await hb.update("behavior_check_units", instruction="use one unit", topics=("Units", "Measure"))
        assert [b.version for b in await hb.history("behavior_check_units")] == [1, 2]
        assert (await hb.rollback("behavior_check_units", 1)).instruction == "convert every quantity to one unit"
        await hb.record_usage("behavior_check_units", "cited_wrong", 5)
        await hb.record_usage_many([("behavior_check_units", "cited")] * 5)
        got = await hb.get("behavior_check_units")
        assert (got.stats.cited, got.stats.cited_wrong) == (5, 5)
        decisions = await hb.prune(PrunePolicy(harmful_min_count=3))
        assert [d.name for d in decisions] == ["behavior_check_units"] and await hb.count() == 2
        await hb.prune(PrunePolicy(harmful_min_count=3), dry_run=False)
        assert await hb.count() == 1 and await hb.count(status="pruned") == 1
        await hb.restore("behavior_check_units")
        await hb.deprecate("behavior_work_backwards", "test")
        assert [b.name for b in await hb.list_behaviors(status="deprecated")] == ["behavior_work_backwards"]
        assert await hb.export_jsonl(tmp_path / "x.jsonl") == len((tmp_path / "x.jsonl").read_text().splitlines())
        with pytest.raises(BehaviorNotFound):
            await hb.get("behavior_nope")
        with pytest.raises(ConfigError, match="422"):
            await hb.record_usage("behavior_check_units", "liked")
    with pytest.raises(ConfigError, match="401"):
        async with HandbookClient(service, token="wrong") as bad:
            await bad.count()


WORKER = """
import asyncio, sys
from agentkit.memory import HandbookClient
async def main(url, token, worker):
    async with HandbookClient(url, token=token) as hb:
        for i in range(50):
            await hb.record_usage("behavior_shared", "cited")
        print("done", worker)
asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
"""


def test_two_processes_share_one_store_through_the_service(tmp_path: Path) -> None:
    env = {**os.environ, "AGENTKIT_TOKEN": TOKEN}
    server = subprocess.Popen(
        [sys.executable, "-m", "agentkit", "serve", "--store", str(tmp_path / "store"), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "serving the handbook" in line, server.stderr.read() if server.stderr else line
        url = line.split(" at ")[1].strip()
        add = subprocess.run([sys.executable, "-m", "agentkit", "handbook", "--store", url, "add", "behavior_shared",
                              "share one store between processes"], capture_output=True, text=True, env=env)
        assert add.returncode == 0, add.stderr
        workers = [subprocess.Popen([sys.executable, "-c", WORKER, url, TOKEN, str(w)], stdout=subprocess.PIPE,
                                    text=True) for w in range(2)]
        outputs = [w.communicate(timeout=120)[0] for w in workers]
        assert [w.returncode for w in workers] == [0, 0] and all(o.startswith("done") for o in outputs)
        show = subprocess.run([sys.executable, "-m", "agentkit", "handbook", "--store", url, "--json", "show",
                               "behavior_shared"], capture_output=True, text=True, env=env)
        assert show.returncode == 0, show.stderr
        assert json.loads(show.stdout)["stats"]["cited"] == 100
    finally:
        server.terminate()
        server.communicate(timeout=30)  # waits and closes the pipes
    # The server closed the store cleanly: it opens again in this process, with the counts.
    async def reopen() -> int:
        async with QdrantBehaviorStore(path=tmp_path / "store") as store:
            return (await store.get("behavior_shared")).stats.cited

    assert asyncio.run(reopen()) == 100


def test_openapi_spec_lists_every_route() -> None:
    spec = openapi_spec()
    assert {"/v1/behaviors", "/v1/behaviors/{name}", "/v1/usage", "/v1/prune", "/v1/export"} <= set(spec["paths"])


async def test_import_through_the_service(service: str, tmp_path: Path) -> None:
    async with HandbookClient(service, token=TOKEN) as hb:
        report = await hb.import_behavior_json({"behavior_check_units": "one unit first", "bad name": "x"},
                                               topics=["Units"])
        assert report.imported == ["behavior_check_units"] and "bad name" in report.skipped
        path = tmp_path / "e.jsonl"
        await hb.export_jsonl(path)
        again = await hb.import_jsonl(path)
        assert again.imported == [] and "behavior_check_units" in again.skipped
