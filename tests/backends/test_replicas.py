"""``Replicated``: one model over several replicas (real HTTP to scripted servers): fewest in flight, one replica per
run, ejection and failover, the spec syntax, and a sweep over two replicas with one stopped mid-sweep."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from agentkit.backends import CallContext, backend_from_spec
from agentkit.backends.replicas import Replicated
from agentkit.errors import BackendRequestError, ConfigError
from agentkit.sweep import ResultsDB, load_spec, run_sweep
from agentkit.sweep.spec import BackendEntry
from agentkit.testing import Fault, Reply, ScriptedServer


def spec_of(*servers: ScriptedServer, extra: str = "") -> str:
    return "openai-compatible:" + ",".join(s.base_url for s in servers) + f"?model=scripted&retries=1{extra}"


async def test_the_faster_replica_serves_more_and_every_call_names_its_replica() -> None:
    async with ScriptedServer(latency=0.05) as fast, ScriptedServer(latency=0.2) as slow:
        backend = backend_from_spec(spec_of(fast, slow, extra="&per_replica=4"))
        try:
            results = await asyncio.gather(*(backend.chat(f"q{i}", context=CallContext(run_id=f"r{i}"))
                                             for i in range(80)))
        finally:
            await backend.aclose()
        replicas = Counter(c.replica for [c] in results)
        assert set(replicas) == {fast.base_url, slow.base_url}
        assert replicas[fast.base_url] > 2 * replicas[slow.base_url], replicas  # 4 x 20/s vs 4 x 5/s
        assert fast.max_in_flight <= 4 and slow.max_in_flight <= 4


async def test_one_run_stays_on_one_replica() -> None:
    async with ScriptedServer() as a, ScriptedServer() as b:
        backend = backend_from_spec(spec_of(a, b))
        try:
            for run in range(6):
                calls = await asyncio.gather(*(backend.chat(f"q{i}", context=CallContext(run_id=f"run{run}", branch=i))
                                               for i in range(5)))
                assert len({c.replica for [c] in calls}) == 1
        finally:
            await backend.aclose()
        assert len(a.requests) and len(b.requests)  # runs spread over both


async def test_a_failed_replica_is_ejected_and_calls_go_on_elsewhere() -> None:
    async with ScriptedServer(latency=0.01) as a:
        b = await ScriptedServer(latency=0.01).start()
        backend = backend_from_spec(spec_of(a, b, extra="&cooldown=0.5"))
        inner = backend.unwrap()  # type: ignore[attr-defined]
        assert isinstance(inner, Replicated)
        try:
            await asyncio.gather(*(backend.chat(f"q{i}", context=CallContext(run_id=f"r{i}")) for i in range(10)))
            port = b.port
            await b.close()  # a replica goes away: its runs move, no call fails
            answered = await asyncio.gather(*(backend.chat(f"p{i}", context=CallContext(run_id=f"r{i}"))
                                              for i in range(10)))
            assert {c.replica for [c] in answered} == {a.base_url}
            assert inner.stats()[b.base_url]["ejected"] and inner.stats()[b.base_url]["failed"] >= 1
            b = await ScriptedServer(latency=0.01).start(port)  # back after the cool-down: it serves again
            await asyncio.sleep(0.6)
            again = await asyncio.gather(*(backend.chat(f"s{i}", context=CallContext(run_id=f"new{i}"))
                                           for i in range(10)))
            assert b.base_url in {c.replica for [c] in again}
            # A refusal (4xx) is the request's fault: raised, not retried elsewhere, nobody ejected.
            a.set_script(lambda body: Fault.http(400, "no"))
            b.set_script(lambda body: Fault.http(400, "no"))
            with pytest.raises(BackendRequestError):
                await backend.chat("bad", context=CallContext(run_id="bad"))
            assert not any(s["ejected"] for s in inner.stats().values())
        finally:
            await backend.aclose()
            await b.close()


def test_the_spec_syntax_and_its_errors() -> None:
    backend = backend_from_spec("vllm:http://a:8000/v1,http://b:8000/v1?model=M&per_replica=16&cooldown=5")
    inner = backend.unwrap()  # type: ignore[attr-defined]
    assert isinstance(inner, Replicated) and inner.per_replica == 16 and inner.cooldown == 5
    assert inner.describe()["replicas"] == ["http://a:8000/v1", "http://b:8000/v1"] and backend.name == "vllm:M"
    for bad, words in (("vllm:http://a:8000/v1,http://a:8000/v1?model=M", "twice"),
                       ("vllm:http://a:8000/v1,b?model=M", "endpoint URL"),
                       ("vllm:http://a:8000/v1?model=M&per_replica=4", "several replica URLs"),
                       ("vllm:http://a:8000/v1,http://b:8000/v1?model=M&per_replica=0", "at least 1")):
        with pytest.raises(ConfigError, match=words):
            backend_from_spec(bad)
    # Cell keys name the logical backend: the spec with its first URL (or the entry's name); replicas never.
    one = BackendEntry(spec="vllm:http://a:8000/v1?model=M")
    assert BackendEntry(spec="vllm:http://a:8000/v1?model=M", replicas=["http://b:8000/v1"]).key == one.key
    assert BackendEntry(spec="vllm:http://a:8000/v1,http://b:8000/v1?model=M").key == one.key
    assert BackendEntry(spec="vllm:http://a:8000/v1?model=M", replicas=["http://b:8000/v1"]).build_spec == \
        "vllm:http://a:8000/v1,http://b:8000/v1?model=M"
    assert BackendEntry(spec="vllm:http://x/v1?model=M", name="qwen-7b").key == "qwen-7b"
    with pytest.raises(ValueError, match="endpoint URLs"):
        BackendEntry(spec="vllm:http://a:8000/v1?model=M", replicas=["b:8000"])


SPEC = """
name = "replicas"
concurrency = 8
budgets = [600]
seeds = [0, 1, 2, 3]

[[datasets]]
name = "gsm8k"
limit = 10

[[methods]]
name = "long-cot"

[[methods]]
name = "pdr"
params = {{ rounds = 2, drafts = 2, kappa = 64 }}

[[backends]]
spec = "openai-compatible:{first}?model=scripted&retries=2"
concurrency = 8
{replicas}
"""


def rows(db: Path) -> list[tuple[str, str, bytes | None]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT key, status, trace FROM results").fetchall()
    finally:
        conn.close()


async def test_a_sweep_over_two_replicas_loses_no_cell_when_one_stops(tmp_path: Path) -> None:
    """80 cells (long CoT and PDR) over two replicas; one is stopped mid-sweep: every cell finishes ok, once, and
    the calls of a cell name one replica (a cell in flight on the stopped one moves to the other, once)."""
    async with ScriptedServer(lambda _: Reply("so \\boxed{18}"), latency=0.02) as a:
        b = await ScriptedServer(lambda _: Reply("so \\boxed{18}"), latency=0.02).start()
        path = tmp_path / "spec.toml"
        path.write_text(SPEC.format(first=a.base_url, replicas=f'replicas = ["{b.base_url}"]'))
        spec = load_spec(path)

        async def stop_b() -> None:
            for _ in range(3000):  # polled: the server has no hook to wait on
                if len(b.requests) >= 40:
                    break
                await asyncio.sleep(0.01)
            await b.close()

        stopper = asyncio.create_task(stop_b())
        summary = await run_sweep(spec, tmp_path / "r.sqlite")
        await stopper
    assert summary.ran == 80 and summary.failed == 0
    written = rows(tmp_path / "r.sqlite")
    assert len(written) == len({k for k, _, _ in written}) == 80 and {s for _, s, _ in written} == {"ok"}
    db = ResultsDB(tmp_path / "r.sqlite", create=False, readonly=True)
    try:
        served: Counter[str] = Counter()
        moved = 0
        for key, _, _ in written:
            order = [c[12] for c in db.trace(key)["calls"]]  # type: ignore[index]
            if len(set(order)) > 1:  # in flight on b when it stopped: the rest of the cell moved to a, once
                switch = next(i for i, r in enumerate(order) if r != order[0])
                assert order[0] == b.base_url and set(order[switch:]) == {a.base_url}, order
                moved += 1
            served.update(set(order))
    finally:
        db.close()
    assert set(served) == {a.base_url, b.base_url} and moved <= 8  # at most the cells in flight moved


async def test_a_database_written_before_replicas_resumes_with_two_replicas_and_nothing_reruns(tmp_path: Path) -> None:
    async with ScriptedServer(lambda _: Reply("so \\boxed{18}")) as a, \
            ScriptedServer(lambda _: Reply("so \\boxed{18}")) as b:
        path = tmp_path / "spec.toml"
        path.write_text(SPEC.format(first=a.base_url, replicas=""))
        first = await run_sweep(load_spec(path), tmp_path / "r.sqlite")
        assert first.ran == 80
        for replicas in (f'replicas = ["{b.base_url}"]', ""):  # a replica added, then removed again
            path.write_text(SPEC.format(first=a.base_url, replicas=replicas))
            again = await run_sweep(load_spec(path), tmp_path / "r.sqlite")
            assert (again.ran, again.skipped) == (0, 80)
        path.write_text(SPEC.format(first=f"{a.base_url},{b.base_url}", replicas=""))  # the comma form too
        again = await run_sweep(load_spec(path), tmp_path / "r.sqlite")
        assert (again.ran, again.skipped) == (0, 80)
    assert json.loads(json.dumps(len(rows(tmp_path / "r.sqlite")))) == 80
