"""Sweeps and the command line under faults and careless input: every probe of the hardening review, first
reproduced, now answered by one line and an exit code, a rerun, or the tokens really spent."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentkit.errors import ConfigError
from agentkit.sweep import ResultsDB, load_spec, run_sweep
from agentkit.testing import Fault, Reply, ScriptedServer

SPEC = """
name = "faults"
concurrency = {concurrency}
budgets = [{budgets}]
seeds = [0]
[[datasets]]
name = "gsm8k"
limit = {limit}
[[methods]]
name = "long-cot"
[[methods]]
name = "pdr"
params = {{ rounds = 2, drafts = 2, kappa = 64, variant = "topk" }}
[[backends]]
spec = "openai-compatible:{url}?model=scripted&retries={retries}&timeout=2"
concurrency = {concurrency}
"""


def spec_file(tmp_path: Path, url: str, *, limit: int = 6, retries: int = 1, concurrency: int = 4,
              budgets: str = "1200") -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(url=url, limit=limit, retries=retries, concurrency=concurrency, budgets=budgets))
    return path


def rows(db: Path) -> list[dict[str, Any]]:
    results = ResultsDB(db, create=False)
    try:
        return list(results.rows())
    finally:
        results.close()


def agentkit(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentkit", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("fault_rate", [0.2, 0.4])
async def test_sweep_under_mixed_faults_loses_and_miscounts_nothing(tmp_path: Path, fault_rate: float) -> None:
    """429s, 5xx, dropped connections, malformed JSON and hangs at 20% and 40% of requests: every cell ends ok
    or failed with its error, once, and the rows' tokens are exactly what the server billed."""
    rng = random.Random(fault_rate)
    faults = [Fault.rate_limited(0.01), Fault.http(500), Fault.http(503), Fault.drop(), Fault.malformed(),
              Fault.hang()]

    def script(body: dict[str, Any]) -> Reply | Fault:
        if rng.random() < fault_rate:
            return rng.choice(faults)
        return Reply("step " * rng.randint(3, 40) + "so \\boxed{18}")

    async with ScriptedServer(script) as server:
        spec = load_spec(spec_file(tmp_path, server.base_url, retries=2))
        summary = await run_sweep(spec, tmp_path / "r.sqlite")
    written = rows(tmp_path / "r.sqlite")
    assert summary.ran == len(written) == 12 and len({r["key"] for r in written}) == 12
    assert all(r["status"] == "ok" or (r["status"] == "failed" and r["error"]) for r in written)
    assert sum(r["b_total"] or 0 for r in written) == server.billed  # failed rows included
    assert summary.failed == sum(r["status"] == "failed" for r in written)


async def test_resume_reruns_transient_failures_and_keeps_what_failed_rows_spent(tmp_path: Path) -> None:
    state = {"down": True}

    def script(body: dict[str, Any]) -> Reply | Fault:
        text = body["messages"][-1]["content"]
        if state["down"] and "Workspace" in text:  # round 2 of PDR fails while the server is "down"
            return Fault.http(503, "overloaded")
        return Reply("so \\boxed{18}")

    async with ScriptedServer(script) as server:
        path = spec_file(tmp_path, server.base_url, limit=2, retries=1)
        first = await run_sweep(load_spec(path), tmp_path / "r.sqlite")
        failed = [r for r in rows(tmp_path / "r.sqlite") if r["status"] == "failed"]
        assert first.failed == len(failed) == 2 and all(r["error"].startswith("BackendUnavailable") for r in failed)
        assert all(r["b_total"] > 0 and r["calls"] == 2 for r in failed)  # the two round-1 drafts were billed
        assert sum(r["b_total"] for r in rows(tmp_path / "r.sqlite")) == server.billed
        state["down"] = False
        again = await run_sweep(load_spec(path), tmp_path / "r.sqlite")
        none = await run_sweep(load_spec(path), tmp_path / "r.sqlite")
    assert again.ran == 2 and again.failed == 0 and again.skipped == 2  # only the failed cells ran again
    assert none.ran == 0
    final = rows(tmp_path / "r.sqlite")
    assert len(final) == 4 and all(r["status"] == "ok" for r in final)


async def test_non_transient_failures_rerun_only_when_asked(tmp_path: Path) -> None:
    async with ScriptedServer(lambda body: Fault.http(400, "refused")) as server:
        path = spec_file(tmp_path, server.base_url, limit=1)
        await run_sweep(load_spec(path), tmp_path / "r.sqlite")
        assert (await run_sweep(load_spec(path), tmp_path / "r.sqlite")).ran == 0
        assert (await run_sweep(load_spec(path), tmp_path / "r.sqlite", retry="all")).ran == 2


def test_repeated_grid_entries_are_rejected_at_load(tmp_path: Path) -> None:
    path = spec_file(tmp_path, "http://127.0.0.1:9/v1", budgets="1200, 1200")
    with pytest.raises(ConfigError, match="budgets lists 1200 more than once"):
        load_spec(path)


def test_a_sweep_that_fails_entirely_exits_non_zero_and_quickly(tmp_path: Path) -> None:
    path = spec_file(tmp_path, "http://127.0.0.1:9/v1", limit=1, retries=6)  # nothing listens on port 9
    out = agentkit("sweep", "run", str(path), "--db", str(tmp_path / "r.sqlite"))
    assert out.returncode == 1 and "2 of 2 cells run failed" in out.stderr and "Traceback" not in out.stderr
    assert all(r["error"].startswith("BackendUnavailable") and "refused" in r["error"]
               for r in rows(tmp_path / "r.sqlite"))


def test_cli_input_mistakes_are_one_line_with_exit_2(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("just text\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    spec = spec_file(tmp_path, "http://127.0.0.1:9/v1", limit=1)
    bci_spec = tmp_path / "bci.toml"
    bci_spec.write_text(f'budgets = [1200]\n[[datasets]]\nname = "gsm8k"\nlimit = 1\n[[methods]]\nname = "bci"\n'
                        f'params = {{ store = "{text}" }}\n[[backends]]\nspec = "openai-compatible:http://127.0.0.1:9/v1?model=m"\n')
    missing_spec = tmp_path / "missing.toml"
    missing_spec.write_text(bci_spec.read_text().replace(str(text), str(tmp_path / "not-built")))
    probes = [
        (("handbook", "--store", str(text), "stats"), "is a file"),
        (("serve", "--store", str(text), "--port", "0", "--token", "t"), "is a file"),
        (("sweep", "run", str(bci_spec), "--db", str(tmp_path / "b.sqlite")), "is a file"),
        (("sweep", "run", str(missing_spec), "--db", str(tmp_path / "m.sqlite")), "no handbook at"),
        (("sweep", "run", str(spec), "--db", str(text)), "not a sweep results database"),
        (("sweep", "run", str(spec), "--db", str(folder)), "is a directory"),
        (("sweep", "merge", str(text), str(tmp_path / "missing.sqlite")), "no results database"),
        (("sweep", "merge", str(tmp_path / "out.sqlite"), str(tmp_path / "missing.sqlite")), "no results database"),
        (("sweep", "report", str(tmp_path / "missing.sqlite"), "--out", str(tmp_path / "rep")), "no results database"),
        (("handbook", "--store", str(tmp_path / "hb"), "prune", "--stale-after-days", "1e9"), "stale_after_days"),
        (("handbook", "--store", str(tmp_path / "hb"), "import", str(tmp_path / "missing.jsonl")), "no file"),
        (("handbook", "--store", str(tmp_path / "hb"), "import", str(text)), "not a valid handbook export"),
        (("handbook", "--store", str(tmp_path / "hb"), "export", str(folder)), "folder"),
        (("handbook", "--store", "http://127.0.0.1:9", "--token", "t", "show", "../stats"), "no behavior named"),
        (("solve", "--method", "nope"), "invalid choice"),
        (("solve", "--method", "pdr", "--param", "rounds=-1", "--limit", "1"), "rounds"),
    ]
    for args, reason in probes:
        out = agentkit(*args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr and reason in out.stderr, (args, out.stderr)
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\xff\xfe\x00garbage")
    out = agentkit("handbook", "--store", str(tmp_path / "hb"), "import", str(garbage))
    assert out.returncode == 2 and "not UTF-8" in out.stderr
    assert not (tmp_path / "out.sqlite").exists() and not (tmp_path / "missing.sqlite").exists()
    assert sqlite3.connect  # (the merge above created nothing at the missing paths)
