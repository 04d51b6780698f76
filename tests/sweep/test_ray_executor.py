"""``agentkit sweep run --executor ray``: whole cells on Ray async actors, the driver the only writer. A local Ray,
a local multi-node cluster (``ray.cluster_utils.Cluster``: a head and worker nodes, object stores capped) with a
node removed abruptly mid-sweep, the rows equal to a local run's, and the bad inputs (one line, exit 2)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agentkit.sweep import load_spec, run_sweep

ray = pytest.importorskip("ray")

from agentkit.sweep.ray_executor import RayExecutor  # noqa: E402
from agentkit.testing import Reply, ScriptedServer  # noqa: E402

SPEC = """
name = "ray"
concurrency = 8
budgets = [600]
seeds = {seeds}

[[datasets]]
name = "gsm8k"
limit = 10

[[methods]]
name = "long-cot"

[[methods]]
name = "pdr"
params = {{ rounds = 2, drafts = 2, kappa = 64 }}

[[backends]]
spec = "openai-compatible:{url}?model=scripted&retries=1"
concurrency = 8
"""
STORE_MB = 100 << 20


def reply(body: dict[str, Any]) -> Reply:
    return Reply("adding it up gives \\boxed{18}")


def table(db: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT key, status, answer, correct, b_seq, b_total, calls FROM results ORDER BY key"
                            ).fetchall()
    finally:
        conn.close()


@pytest.fixture
def no_ray() -> Any:
    yield
    if ray.is_initialized():
        ray.shutdown()


async def test_a_local_ray_runs_the_sweep_as_the_local_executor_does(tmp_path: Path, no_ray: None) -> None:
    async with ScriptedServer(reply, latency=0.02) as server:
        (tmp_path / "spec.toml").write_text(SPEC.format(url=server.base_url, seeds="[0, 1]"))
        spec = load_spec(tmp_path / "spec.toml")
        executor = RayExecutor(workers=2)
        summary = await run_sweep(spec, tmp_path / "ray.sqlite", executor=executor)
        assert (summary.ran, summary.failed) == (40, 0) and not ray.is_initialized()  # the local Ray stopped
        await run_sweep(spec, tmp_path / "local.sqlite")
    assert table(tmp_path / "ray.sqlite") == table(tmp_path / "local.sqlite")
    assert len({n["pid"] for n in executor.nodes}) == 2
    default = RayExecutor()  # one worker per node: one on this machine
    async with ScriptedServer(reply) as server:
        (tmp_path / "spec.toml").write_text(SPEC.format(url=server.base_url, seeds="[0]"))
        await run_sweep(load_spec(tmp_path / "spec.toml"), tmp_path / "one.sqlite", executor=default)
    assert len(default.nodes) == 1 and default.cells_per_worker == 8


async def test_a_node_removed_mid_sweep_loses_no_cell(tmp_path: Path, no_ray: None) -> None:
    """A head (no CPU for workers) and three one-CPU nodes, two workers; once 60 rows are written the node of one
    worker is removed abruptly: its cells in flight go back to the queue, Ray restarts the worker on the free
    node, and every cell is in the database exactly once, its row equal to a local run's."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": STORE_MB,
                                                            "include_dashboard": False})
    nodes = [cluster.add_node(num_cpus=1, object_store_memory=STORE_MB) for _ in range(3)]
    cluster.wait_for_nodes()
    try:
        async with ScriptedServer(reply, latency=0.1) as server:
            (tmp_path / "spec.toml").write_text(SPEC.format(url=server.base_url, seeds="[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"))
            spec = load_spec(tmp_path / "spec.toml")  # 10 items x 2 methods x 10 seeds: 200 cells
            executor = RayExecutor(cluster.address, workers=2, cells_per_worker=4)
            written: list[float] = []
            removed: dict[str, Any] = {}

            def on_cell(row: dict[str, Any]) -> None:
                written.append(time.monotonic())
                if len(written) == 60 and not removed:
                    target = next(n for n in nodes if n.node_id == executor.nodes[0]["node"])
                    removed["at"] = time.monotonic()
                    cluster.remove_node(target, allow_graceful=False)  # abrupt: its processes are killed

            summary = await run_sweep(spec, tmp_path / "ray.sqlite", executor=executor, on_cell=on_cell)
            assert removed and summary.ran == 200, summary
            await run_sweep(spec, tmp_path / "local.sqlite")
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
    rows = table(tmp_path / "ray.sqlite")
    assert len(rows) == len({r[0] for r in rows}) == 200  # every key once, no duplicate
    assert {r[1] for r in rows} == {"ok"} and executor.lost == 0
    assert executor.requeued >= 1  # the removed worker's cells in flight ran again elsewhere
    assert rows == table(tmp_path / "local.sqlite")


def test_bad_ray_inputs_are_one_line_and_exit_2(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(url="http://127.0.0.1:9/v1", seeds="[0]"))
    for args, words in ((["--executor", "ray", "--ray-address", "127.0.0.1:9"], "no Ray cluster answers"),
                        (["--workers", "2"], "go with --executor ray"),
                        (["--executor", "ray", "--workers", "0"], "--workers must be")):
        started = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "agentkit", "sweep", "run", str(spec), "--db",
                              str(tmp_path / "r.sqlite"), "--no-validate", *args], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 2 and words in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and time.monotonic() - started < 30


async def test_an_online_handbook_is_refused_with_the_ray_executor(tmp_path: Path) -> None:
    from agentkit.errors import ConfigError
    from agentkit.sweep.ray_executor import check_ray_spec

    (tmp_path / "spec.toml").write_text(SPEC.format(url="http://127.0.0.1:9/v1", seeds="[0]").replace(
        'name = "long-cot"', 'name = "bci"\nparams = { store = "hb", handbook_mode = "online" }'))
    with pytest.raises(ConfigError, match="online handbook"):
        check_ray_spec(load_spec(tmp_path / "spec.toml"))
    await asyncio.sleep(0)


@pytest.mark.model
async def test_the_real_model_through_the_ray_executor(tmp_path: Path, no_ray: None) -> None:
    """Two GSM8K problems on the embedded model, the model served inside the Ray worker."""
    (tmp_path / "spec.toml").write_text(
        'name = "ray-local"\nconcurrency = 2\nbudgets = [600]\n[[datasets]]\nname = "gsm8k"\nlimit = 2\n'
        '[[methods]]\nname = "long-cot"\n[[backends]]\nspec = "local:qwen2.5-0.5b?slots=2&ctx=1024"\nconcurrency = 2\n')
    summary = await run_sweep(load_spec(tmp_path / "spec.toml"), tmp_path / "r.sqlite", executor=RayExecutor(workers=1))
    assert (summary.ran, summary.failed) == (2, 0)
    rows = table(tmp_path / "r.sqlite")
    assert all(r[1] == "ok" and r[5] > 0 and r[6] == 1 for r in rows)
    conn = sqlite3.connect(tmp_path / "r.sqlite")
    try:
        [info] = {r[0] for r in conn.execute("SELECT backend_info FROM results")}
    finally:
        conn.close()
    assert "sha256" in info  # the worker resolved the model file it served


async def test_a_killed_driver_resumes_and_leaves_no_ray_behind(tmp_path: Path) -> None:
    """kill -9 of ``agentkit sweep run --executor ray`` (which started a local Ray) mid-sweep: no Ray process
    outlives it, and ``sweep resume`` runs exactly the missing cells (every key once)."""
    import os
    import signal

    def raylets() -> int:
        out = subprocess.run(["pgrep", "-f", "ray/core/src/ray/raylet/raylet"], capture_output=True, text=True)
        return len(out.stdout.split())

    async with ScriptedServer(reply, latency=0.1) as server:
        spec = tmp_path / "spec.toml"
        spec.write_text(SPEC.format(url=server.base_url, seeds="[0, 1, 2, 3, 4]").replace(
            '[[methods]]\nname = "pdr"\nparams = { rounds = 2, drafts = 2, kappa = 64 }\n', ""))
        db = tmp_path / "r.sqlite"
        command = [sys.executable, "-m", "agentkit", "sweep", "run", str(spec), "--db", str(db), "--executor", "ray",
                   "--workers", "2", "--no-validate"]
        before = raylets()
        proc = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.DEVNULL)
        written = 0
        for _ in range(1200):
            await asyncio.sleep(0.1)
            if db.exists():
                try:
                    written = len(table(db))
                except sqlite3.OperationalError:
                    continue
                if written >= 10:
                    break
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        for _ in range(100):  # the local Ray's processes go with their driver
            if raylets() <= before:
                break
            await asyncio.sleep(0.1)
        assert raylets() <= before
        partial = len(table(db))
        assert 10 <= partial < 50
        resumed = await asyncio.create_subprocess_exec(*[*command[:4], "resume", *command[5:]], "--json",
                                                       stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(resumed.communicate(), 300)
    assert resumed.returncode == 0, err.decode()[-2000:]
    rows = table(db)
    assert len(rows) == len({r[0] for r in rows}) == 50 and {r[1] for r in rows} == {"ok"}
    assert b'"ran": ' + str(50 - partial).encode() in out


async def test_a_cluster_without_a_cpu_for_a_worker_is_refused(tmp_path: Path, no_ray: None) -> None:
    from ray.cluster_utils import Cluster

    from agentkit.errors import ConfigError

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": STORE_MB,
                                                            "include_dashboard": False})
    try:
        (tmp_path / "spec.toml").write_text(SPEC.format(url="http://127.0.0.1:9/v1", seeds="[0]"))
        started = time.monotonic()
        with pytest.raises(ConfigError, match="no CPU for a worker"):
            await run_sweep(load_spec(tmp_path / "spec.toml"), tmp_path / "r.sqlite",
                            executor=RayExecutor(cluster.address, workers=1))
        assert time.monotonic() - started < 60 and not ray.is_initialized()  # what started is stopped
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


BCI_SPEC = """
name = "ray-handbooks"
concurrency = 4
budgets = [600]
seeds = [0, 1]

[[datasets]]
name = "gsm8k"
limit = 4

[[methods]]
name = "bci"
label = "frozen"
params = {{ store = "{frozen}", k = 2 }}

[[methods]]
name = "bci"
label = "online"
params = {{ store = "{online}", k = 2, handbook_mode = "online" }}

[[backends]]
spec = "openai-compatible:{url}?model=scripted&retries=1"
concurrency = 4
"""


async def test_workers_read_a_snapshot_and_write_an_online_handbook_through_its_service(
        tmp_path: Path, no_ray: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A frozen handbook in a store directory reaches the workers as a snapshot (the driver's store is not opened
    by them); an online one is a handbook service, which every worker writes its usage to."""
    import os

    from agentkit.memory import Behavior, HandbookClient, MiniLMEmbedder, QdrantBehaviorStore
    from agentkit.testing import reuse_script

    embedder = MiniLMEmbedder()
    for name in ("frozen", "online"):
        async with QdrantBehaviorStore(path=tmp_path / name, embedder=embedder) as store:
            await store.add(Behavior(name="behavior_add_parts", instruction="Add the parts one at a time."))
    service = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentkit", "serve", "--store", str(tmp_path / "online"), "--port", "0", "--token",
        "tok", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ})
    try:
        assert service.stdout is not None
        url = (await asyncio.wait_for(service.stdout.readline(), 120)).decode().rsplit(" at ", 1)[1].strip()
        monkeypatch.setenv("AGENTKIT_TOKEN", "tok")
        async with ScriptedServer(reuse_script({"behavior_add_parts": "Add the parts one at a time."},
                                               answer="18")) as server:
            (tmp_path / "spec.toml").write_text(BCI_SPEC.format(frozen=tmp_path / "frozen", online=url,
                                                                url=server.base_url))
            summary = await run_sweep(load_spec(tmp_path / "spec.toml"), tmp_path / "r.sqlite",
                                      executor=RayExecutor(workers=2))
        assert (summary.ran, summary.failed) == (16, 0)
        client = HandbookClient(url, token="tok")
        online = await client.get("behavior_add_parts")
        await client.close()
        assert online.stats.cited == 8  # every online cell's citation reached the service, from the workers
    finally:
        service.terminate()
        await service.wait()
    async with QdrantBehaviorStore(path=tmp_path / "frozen", embedder=embedder) as store:
        assert (await store.get("behavior_add_parts")).stats.cited == 0  # frozen: usage in the rows, not the store
    from agentkit.sweep import ResultsDB

    db = ResultsDB(tmp_path / "r.sqlite", create=False, readonly=True)
    try:
        frozen = [r["key"] for r in db.rows() if r["method"] == "frozen"]
        assert len(frozen) == 8
        assert all(db.trace(k)["behaviors"] == ["behavior_add_parts"] for k in frozen)  # type: ignore[index]
    finally:
        db.close()


def test_without_ray_installed_the_executor_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentkit.errors import ConfigError

    monkeypatch.setitem(sys.modules, "ray", None)  # an import of ray fails as it does where it is not installed
    with pytest.raises(ConfigError, match=r"pip install 'agentkit\[ray\]'"):
        RayExecutor().check()
