"""Nothing acknowledged is lost, and a crashed store opens again: kill -9 between usage events, a store killed
while being created, two processes creating one store at once. Real processes, real Qdrant Edge."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentkit.errors import StoreLocked
from agentkit.memory import Behavior, MiniLMEmbedder, QdrantBehaviorStore

RECORDER = """
import asyncio, sys
from agentkit.memory import Behavior, QdrantBehaviorStore
async def main(path):
    store = await QdrantBehaviorStore(path=path, usage_batch=64).open()
    await store.add(Behavior(name="behavior_counted", instruction="count every use"))
    print("ready", flush=True)
    n = 0
    while True:
        await store.record_usage("behavior_counted", "cited")
        n += 1
        print(n, flush=True)  # acknowledged: record_usage returned
asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.parametrize("kill_after", [10, 137, 700])
def test_acknowledged_usage_survives_kill_9(tmp_path: Path, kill_after: int) -> None:
    path = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-c", RECORDER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    acked = 0
    while acked < kill_after:
        acked = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)  # mid-stream: buffered batches of 64 were not applied yet
    proc.wait(timeout=30)
    acked = max([acked] + [int(line) for line in proc.stdout.read().split()])
    proc.stdout.close()

    async def stored() -> int:
        async with QdrantBehaviorStore(path=path, embedder=MiniLMEmbedder()) as store:
            return (await store.get("behavior_counted")).stats.cited

    first = asyncio.run(stored())
    assert acked <= first <= acked + 1  # every acknowledged event; at most the one in flight besides
    assert asyncio.run(stored()) == first  # the journal is replayed exactly once


async def test_a_directory_that_is_not_a_store_is_refused_and_left_alone(tmp_path: Path,
                                                                          embedder: MiniLMEmbedder) -> None:
    """A directory with files but no store configuration (a user's folder, or what an agentkit older than atomic
    creation left half-made) is refused, for reading and for writing, and nothing in it or beside it moves."""
    from agentkit.errors import StoreError, StoreNotFound

    path = tmp_path / "store"
    (path / "segments").mkdir(parents=True)
    (path / "notes.txt").write_text("mine")
    before = _tree(tmp_path)
    for create in (True, False):
        with pytest.raises(StoreError, match="not a handbook store") as caught:
            await QdrantBehaviorStore(path=path, embedder=embedder, create=create).open()
        assert not isinstance(caught.value, StoreNotFound)
    assert _tree(tmp_path) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StoreNotFound, match="no handbook store"):  # a reader creates nothing
        await QdrantBehaviorStore(path=empty, embedder=embedder, create=False).open()
    with pytest.raises(StoreNotFound):
        await QdrantBehaviorStore(path=tmp_path / "absent", embedder=embedder, create=False).open()
    assert _tree(tmp_path) == {**before, "empty": "dir"}
    async with QdrantBehaviorStore(path=empty, embedder=embedder) as store:  # a writer may fill an empty one
        await store.add(Behavior(name="behavior_in_empty", instruction="created in an empty directory"))
    async with QdrantBehaviorStore(path=empty, embedder=embedder, create=False) as store:
        assert await store.count() == 1


def _tree(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with its content (files) or "dir"."""
    return {str(p.relative_to(folder)): ("dir" if p.is_dir() else p.read_bytes().hex())
            for p in sorted(folder.rglob("*"))}


CREATOR = """
import asyncio, sys, time
from agentkit.errors import StoreLocked
from agentkit.memory import Behavior, QdrantBehaviorStore
async def main(path, name):
    try:
        async with QdrantBehaviorStore(path=path) as store:
            await store.add(Behavior(name=name, instruction="created concurrently"), dedup=False)
            time.sleep(0.5)
        print("ok")
    except StoreLocked as exc:
        print("locked", exc)
asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_two_processes_creating_one_store(tmp_path: Path) -> None:
    path = tmp_path / "fresh"
    procs = [subprocess.Popen([sys.executable, "-c", CREATOR, str(path), f"behavior_from_{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    verdicts = sorted(o[0].split()[0] for o in outs)
    assert verdicts in (["locked", "ok"], ["ok", "ok"]), outs  # the loser is told clearly, or ran after
    locked = [o[0] for o in outs if o[0].startswith("locked")]
    assert all("open in another process" in message for message in locked)
    assert not [p for p in tmp_path.iterdir() if ".creating-" in p.name]  # no temporary directory left

    async def names() -> set[str]:
        async with QdrantBehaviorStore(path=path, embedder=MiniLMEmbedder()) as store:
            return {b.name for b in await store.list_behaviors()}

    assert len(asyncio.run(names())) == verdicts.count("ok")


def test_kill_9_during_creation_leaves_nothing_half_made(tmp_path: Path) -> None:
    """Killed at random moments while creating: the path is either absent or a whole store."""
    for delay in (0.05, 0.15, 0.3, 0.6):
        path = tmp_path / f"s{delay}"
        proc = subprocess.Popen([sys.executable, "-c", CREATOR, str(path), "behavior_x"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait(timeout=30)
        assert not path.exists() or (path / "edge_config.json").exists() or not any(path.iterdir())

        async def reopen(p: Path = path) -> int:
            async with QdrantBehaviorStore(path=p, embedder=MiniLMEmbedder()) as store:
                return await store.count()

        assert asyncio.run(reopen()) in (0, 1)
        # the creation folder of a process killed mid-creation is removed at the next open
        assert not [p for p in tmp_path.iterdir() if ".creating-" in p.name], list(tmp_path.iterdir())


def test_a_creation_folder_of_a_live_process_is_left(tmp_path: Path) -> None:
    """Only a creation whose process is gone is cleaned: one that another process is running is not touched,
    and a folder that merely resembles one (no process id, recent) stays too."""
    live = tmp_path / f".s.creating-{os.getpid()}-0123456789ab"
    live.mkdir()
    dead = tmp_path / ".s.creating-999999999-0123456789ab"  # no such process
    dead.mkdir()
    (dead / "wal").mkdir()
    unknown = tmp_path / ".s.creating-0123456789ab"
    unknown.mkdir()

    async def open_it() -> None:
        async with QdrantBehaviorStore(path=tmp_path / "s", embedder=MiniLMEmbedder()):
            pass

    asyncio.run(open_it())
    assert live.exists() and unknown.exists() and not dead.exists()


def test_a_file_is_not_a_store(tmp_path: Path) -> None:
    from agentkit.errors import StoreError

    file = tmp_path / "file"
    file.write_text("x")

    async def open_it() -> None:
        await QdrantBehaviorStore(path=file, embedder=MiniLMEmbedder()).open()

    with pytest.raises(StoreError, match="is a file"):
        asyncio.run(open_it())
    assert StoreLocked.__mro__  # (imported for the subprocess's message above)
