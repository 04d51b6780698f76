"""The embedded store's index: exact below ``exact_below`` vectors, built in the background beyond it (a child
process on a copy, swapped in) without losing a write or stopping searches, a kill at any point of a build
leaves a complete store, and the server path sends the same index and search settings."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

from agentkit.memory import Behavior, QdrantBehaviorStore
from agentkit.memory._engines import (
    _INDEX_READY,
    HNSW_EF_CONSTRUCT,
    HNSW_M,
    RESCORE_OVERSAMPLING,
    SEARCH_EF,
    EdgeEngine,
)

DIM = 32


class HashEmbedder:
    """Deterministic unit vectors from a text's hash: the index is under test here, not the embedding model
    (the real one is exercised by every other memory test)."""

    name = "hash-32"
    dim = DIM

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return [vector(t).tolist() for t in texts]


def vector(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    v = np.random.default_rng(seed).standard_normal(DIM)
    return v / np.linalg.norm(v)


def behavior(i: int) -> Behavior:
    return Behavior(name=f"behavior_rule_{i}", instruction=f"rule number {i} for problems of kind {i % 13}")


def exact_top(store_texts: dict[str, str], query: np.ndarray, k: int) -> set[str]:
    names = list(store_texts)
    matrix = np.stack([vector(store_texts[n]) for n in names])
    return {names[i] for i in np.argsort(-(matrix @ query))[:k]}


async def test_exact_below_the_line_then_indexed_in_the_background_with_nothing_lost(tmp_path: Path) -> None:
    store = QdrantBehaviorStore(tmp_path / "h", embedder=HashEmbedder(), exact_below=300)
    texts: dict[str, str] = {}
    for i in range(250):  # below the line: no index, and search is exact
        b = await store.add(behavior(i), dedup=False)
        texts[b.name] = b.text
    engine = await store._e()
    assert isinstance(engine, EdgeEngine) and not engine.building and engine.builds == 0
    for q in range(20):
        query = vector(f"query {q}")
        hits = await store.search_vector(query.tolist(), 10)
        assert {h.behavior.name for h in hits} == exact_top(texts, query, 10)
    for i in range(250, 700):  # past it: the store starts its own build and keeps going meanwhile
        b = await store.add(behavior(i), dedup=False)
        texts[b.name] = b.text
    assert engine.building or engine.builds >= 1
    searched = updated = 0
    while engine.building:  # searches and writes while the child process indexes the copy (and, if those
        # writes outgrow exact search again, a second build follows by itself)
        await store.search_vector(vector(f"during {searched}").tolist(), 5)
        if updated < 400:
            await store.update(f"behavior_rule_{updated}", note=f"written during the build ({updated})")
            updated += 1
        searched += 1
        await asyncio.sleep(0.005)
    assert engine.builds >= 1 and engine.unindexed() < 300 and searched > 0
    assert await store.count() == 700
    for i in range(updated):  # every write made during the build was replayed into the built copy
        assert (await store.get(f"behavior_rule_{i}")).note == f"written during the build ({i})"
    recall = 0
    for q in range(30):
        query = vector(f"after {q}")
        recall += len({h.behavior.name for h in await store.search_vector(query.tolist(), 10)}
                      & exact_top(texts, query, 10))
    assert recall / 300 >= 0.95
    await store.close()
    assert not [p.name for p in os.scandir(tmp_path) if p.name.startswith(".h.")]  # no copy left beside it
    async with QdrantBehaviorStore(tmp_path / "h", embedder=HashEmbedder(), exact_below=300) as reopened:
        assert await reopened.count() == 700 and (await reopened._e()).unindexed() < 300
        assert (await reopened.get("behavior_rule_0")).note.startswith("written during the build")


async def test_a_store_written_before_it_is_opened_opens_itself(tmp_path: Path) -> None:
    # Opening replays the usage journal under the writer's lock: a first add() that opened the store from inside
    # that lock used to wait on itself forever.
    store = QdrantBehaviorStore(tmp_path / "h", embedder=HashEmbedder())
    added = await asyncio.wait_for(store.add(behavior(1)), timeout=30)
    await store.record_usage(added.name, "cited")
    await asyncio.wait_for(store.update(added.name, note="second"), timeout=30)
    await store.close()
    again = QdrantBehaviorStore(tmp_path / "h", embedder=HashEmbedder())
    assert (await asyncio.wait_for(again.update(added.name, note="third"), timeout=30)).stats.cited == 1
    await again.close()


async def fill(path: Path, n: int) -> None:
    async with QdrantBehaviorStore(path, embedder=HashEmbedder(), exact_below=10**6) as store:
        for i in range(n):
            await store.add(behavior(i), dedup=False)


async def test_every_state_a_crash_can_leave_a_swap_in_opens_as_a_complete_store(tmp_path: Path) -> None:
    path = tmp_path / "h"
    await fill(path, 40)
    ready = tmp_path / ".h.index-aaaa"
    cases = {
        "killed between the two renames": lambda: (shutil.copytree(path, ready), (ready / _INDEX_READY).touch(),
                                                   os.rename(path, tmp_path / ".h.replaced-bbbb")),
        "killed after moving the old store aside, before the copy was ready": lambda: (
            shutil.copytree(path, ready), os.rename(path, tmp_path / ".h.replaced-bbbb")),
        "killed while the child indexed the copy": lambda: shutil.copytree(path, ready),
    }
    for label, crash in cases.items():
        crash()
        async with QdrantBehaviorStore(path, embedder=HashEmbedder()) as store:
            assert await store.count() == 40, label
            assert (await store.get("behavior_rule_39")).version == 1, label
        assert sorted(os.listdir(tmp_path)) == ["h"], label


SCRIPT = textwrap.dedent("""
    import asyncio, importlib.util, sys
    spec = importlib.util.spec_from_file_location("test_index", {module!r})
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    HashEmbedder = module.HashEmbedder
    from agentkit.memory import QdrantBehaviorStore

    async def main():
        store = QdrantBehaviorStore({path!r}, embedder=HashEmbedder(), exact_below=50)
        await store.open()
        task = asyncio.ensure_future(store.optimize())
        i = 0
        while True:  # writes go on while the index builds; each acknowledged one is printed
            await store.update(f"behavior_rule_{{i % 400}}", note=f"n{{i}}")
            print(i, flush=True)
            i += 1

    asyncio.run(main())
""")


def test_a_kill_9_during_a_build_loses_no_acknowledged_write(tmp_path: Path) -> None:
    path = tmp_path / "h"
    asyncio.run(fill(path, 400))
    module = str(Path(__file__).resolve())
    for delay in (0.3, 1.5):  # during the copy or the child's build, and (at 400 behaviors) about the swap
        proc = subprocess.Popen([sys.executable, "-c", SCRIPT.format(module=module, path=str(path))],
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
        assert proc.stdout is not None
        acked = int(proc.stdout.readline())  # the store is open and writing
        started = time.monotonic()
        while time.monotonic() - started < delay:
            line = proc.stdout.readline()
            if not line:
                break
            acked = int(line)
        os.killpg(proc.pid, signal.SIGKILL)  # the store's process and its indexing child, mid-build
        proc.wait()
        proc.stdout.close()

        async def check(acked: int) -> None:
            async with QdrantBehaviorStore(path, embedder=HashEmbedder(), exact_below=50) as store:
                assert await store.count() == 400
                # The last update read back as acknowledged is there (or a later one to the same behavior, which
                # the process may have made after the last line this test read).
                note = (await store.get(f"behavior_rule_{acked % 400}")).note
                later = int(note.removeprefix("n"))
                assert later >= acked and later % 400 == acked % 400, (acked, note)

        asyncio.run(check(acked))
        assert not [p for p in tmp_path.iterdir() if p.name != "h"]


class FakeQdrant:
    """Qdrant's REST API, just enough of it for the store to open a collection and search: records what the
    client sends (real HTTP on 127.0.0.1)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        self.requests.append((request.method, request.path, body))
        path, result = request.path, None
        if path == "/":
            return web.json_response({"title": "qdrant", "version": "1.20.0"})
        if path.endswith("/exists"):
            result = {"exists": False}
        elif path.endswith("/points/query"):
            result = {"points": []}
        elif path.endswith("/points") and request.method == "POST":
            result = []
        elif request.method == "PUT" and path.count("/") == 2:
            result = True
        else:
            result = {"operation_id": len(self.requests), "status": "completed"}
        return web.json_response({"result": result, "status": "ok", "time": 0.0})


async def test_the_server_path_sends_the_embedded_stores_index_and_search_settings() -> None:
    fake = FakeQdrant()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        store = QdrantBehaviorStore(url=f"http://127.0.0.1:{port}", embedder=HashEmbedder())
        await store.open()
        assert await store.search_vector(vector("q").tolist(), 3) == []
        await store.close()
        for _ in range(100):  # qdrant-client checks the server's version from a thread of its own: let it finish
            if ("GET", "/", None) in fake.requests:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
    finally:
        await runner.cleanup()
    [create] = [b for m, p, b in fake.requests if m == "PUT" and p == "/collections/behaviors"]
    assert create["hnsw_config"]["m"] == HNSW_M and create["hnsw_config"]["ef_construct"] == HNSW_EF_CONSTRUCT
    assert create["quantization_config"]["scalar"]["type"] == "int8"
    [query] = [b for m, p, b in fake.requests if p.endswith("/points/query")]
    assert query["params"]["hnsw_ef"] == SEARCH_EF
    assert query["params"]["quantization"] == {"ignore": False, "rescore": True,
                                                "oversampling": RESCORE_OVERSAMPLING} or (
        query["params"]["quantization"]["rescore"] is True
        and query["params"]["quantization"]["oversampling"] == RESCORE_OVERSAMPLING)
    assert json.dumps(query["filter"]).count("live") == 1
