"""Re-run the probes of the second hardening review (issue 29) against the agentkit this interpreter imports, as a
hostile or careless caller would, and print their figures as JSON. Run it on two trees to compare (the same
interpreter, ``PYTHONPATH`` pointing at the other tree's package):

    python benchmarks/probes/face_hardening.py                       # this checkout
    PYTHONPATH=/tmp/before_tree python benchmarks/probes/face_hardening.py --out before.json

Probes (each in its own server process, real HTTP on 127.0.0.1, a scripted upstream for the proxy):

- ``proxy_drafts_3000``: one PDR request with ``drafts: 3000`` (max_tokens 16): status, upstream calls, tokens;
- ``proxy_largest_allowed``: 16 rounds of 64 drafts (the largest the limits let through): status, calls, the
  proxy's peak RSS before and after (VmHWM);
- ``handbook_stats_on_a_folder``: ``agentkit handbook --store d stats`` on a folder with a user's file: exit
  code, and whether anything under the parent changed;
- ``mcp_sessions``: 4,000 ``initialize`` requests that never close (16 at a time): statuses, RSS before/after;
- ``viewer``: a request with ``Host: evil.com``, a table missing optional columns, a row whose budget is
  ``'abc'``, a database named ``h#1.sqlite``;
- ``service_conformance``: schemathesis ``--checks all`` (40 examples per operation, seed 1, the suite's config):
  unique failures.

``drafts: 1000000`` is not re-run: before the limits it took the machine (7.7 GB, /health unanswered 80 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "probe-token"


def _status(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _start(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "agentkit", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 180)).decode()
    match = re.search(r"(http://[0-9.]+:[0-9]+[^\s]*)", line)
    if match is None:
        raise RuntimeError(f"no URL in {line!r}")
    return proc, match.group(1)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


async def probe_proxy() -> dict[str, Any]:
    from agentkit.testing import Reply, ScriptedServer, prompt_kind

    def script(body: dict[str, Any]) -> Reply:
        return Reply("Both get 3.") if prompt_kind(body) == "summary" else Reply("2 + 1 = 3, so \\boxed{3}")

    out: dict[str, Any] = {}
    async with ScriptedServer(script) as upstream:
        proc, url = await _start("proxy", "--backend", f"openai-compatible:{upstream.base_url}?model=scripted&retries=1",
                                 "--token", TOKEN, "--port", "0")
        base = url.removesuffix("/v1")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        try:
            async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=600)) as http:
                for name, params in (("proxy_drafts_3000", {"drafts": 3000}),
                                     ("proxy_largest_allowed", {"rounds": 16, "drafts": 64})):
                    upstream.requests.clear()
                    billed = upstream.billed
                    idle = _status(proc.pid, "VmHWM")
                    started = time.monotonic()
                    async with http.post(f"{base}/v1/chat/completions", json={
                            "model": "pdr/scripted", "max_tokens": 16, "agentkit": {"params": params},
                            "messages": [{"role": "user", "content": "What is 2 + 1?"}]}) as r:
                        await r.read()
                        status = r.status
                    out[name] = {"status": status, "upstream_calls": len(upstream.requests),
                                 "upstream_tokens": upstream.billed - billed,
                                 "seconds": round(time.monotonic() - started, 2),
                                 "peak_rss_mb": [round(idle), round(_status(proc.pid, "VmHWM"))]}
        finally:
            await _stop(proc)
    return out


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def probe_handbook(tmp: Path) -> dict[str, Any]:
    parent = tmp / "hb"
    (parent / "d").mkdir(parents=True)
    (parent / "d" / "f").write_text("a user's file")
    before = _tree(parent)
    run = subprocess.run([sys.executable, "-m", "agentkit", "handbook", "--store", str(parent / "d"), "stats"],
                         capture_output=True, text=True, timeout=300)
    after = _tree(parent)
    return {"handbook_stats_on_a_folder": {"exit": run.returncode, "changed": before != after,
                                           "entries_after": after[:6], "stderr": run.stderr.strip()[:200]}}


async def probe_mcp(tmp: Path) -> dict[str, Any]:
    proc, url = await _start("mcp", "--store", str(tmp / "mcp-store"), "--http", "--port", "0", "--token", TOKEN)
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json, text/event-stream",
               "Content-Type": "application/json"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}}}
    codes: dict[int, int] = {}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=b'{"jsonrpc":"2.0","id":1,"method":"\xff"}', headers=headers) as r:
                bad_utf8 = r.status
            before = _status(proc.pid, "VmRSS")
            gate = asyncio.Semaphore(16)
            started = time.monotonic()

            async def one() -> None:
                async with gate, http.post(url, json=init, headers=headers) as r:
                    await r.read()
                    codes[r.status] = codes.get(r.status, 0) + 1

            await asyncio.gather(*(one() for _ in range(4000)))
            seconds = time.monotonic() - started
            after = _status(proc.pid, "VmRSS")
    finally:
        await _stop(proc)
    return {"mcp_sessions": {"statuses": dict(sorted(codes.items())), "rss_mb": [round(before), round(after)],
                             "seconds": round(seconds, 1), "invalid_utf8_status": bad_utf8}}


async def probe_viewer(tmp: Path) -> dict[str, Any]:
    source = ROOT / "benchmarks" / "results" / "math500_local15b.sqlite"
    out: dict[str, Any] = {}
    folder = tmp / "view"
    folder.mkdir()
    shutil.copy(source, folder / "h#1.sqlite")
    proc, url = await _start("view", str(folder / "h#1.sqlite"), "--port", "0")
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url.split("?")[0] + "api/cells", headers={"Host": "evil.com"}) as r:
                out["viewer_host_evil"] = r.status
    finally:
        await _stop(proc)
    out["viewer_name_h#1_extra_files"] = sorted(p.name for p in folder.iterdir()
                                                if not p.name.startswith("h#1.sqlite"))
    minimal = folder / "minimal.sqlite"
    conn = sqlite3.connect(minimal)
    conn.execute("CREATE TABLE results (key TEXT, status TEXT, method TEXT, item_id TEXT)")
    conn.execute("INSERT INTO results VALUES (?, 'ok', 'm', 'i')", ("a" * 32,))
    conn.commit()
    conn.close()
    bad = folder / "bad.sqlite"
    shutil.copy(source, bad)
    conn = sqlite3.connect(bad)
    conn.execute("UPDATE results SET budget = 'abc' WHERE rowid = 1")
    conn.commit()
    conn.close()
    for name, db in (("viewer_missing_columns", minimal), ("viewer_budget_abc", bad)):
        try:
            proc, url = await _start("view", str(db), "--port", "0")
        except RuntimeError as exc:
            out[name] = f"did not start: {exc}"[:120]
            continue
        try:
            async with aiohttp.ClientSession() as http, http.get(url.split("?")[0] + "api/summary") as r:
                out[name] = r.status
        finally:
            await _stop(proc)
    return out


async def probe_service(tmp: Path) -> dict[str, Any]:
    proc, url = await _start("serve", "--store", str(tmp / "svc-store"), "--port", "0", "--token", TOKEN,
                             "--max-body", "65536")
    try:
        run = await asyncio.to_thread(subprocess.run, [
            sys.executable, "-m", "schemathesis.cli", "--config-file", str(ROOT / "tests" / "data" / "schemathesis.toml"),
            "run", f"{url}/openapi.json", "--checks", "all", "-H", f"Authorization: Bearer {TOKEN}",
            "--max-examples", "40", "--seed", "1", "--no-color"], capture_output=True, text=True, timeout=900,
            cwd=tmp)
    finally:
        await _stop(proc)
    kinds = dict(re.findall(r"❌ (ST\d+ [^:]+): (\d+)", run.stdout))
    summary = [line.strip() for line in run.stdout.splitlines() if "generated" in line]
    return {"service_conformance": {"failures_by_check": kinds, "summary": summary[-1] if summary else ""}}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")
    parser.add_argument("--only", default=None, help="comma-separated: proxy, handbook, mcp, viewer, service")
    args = parser.parse_args()
    import agentkit

    chosen = set((args.only or "proxy,handbook,mcp,viewer,service").split(","))
    figures: dict[str, Any] = {"agentkit": str(Path(agentkit.__file__).parent)}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "proxy" in chosen:
            figures.update(await probe_proxy())
        if "handbook" in chosen:
            figures.update(probe_handbook(work))
        if "mcp" in chosen:
            figures.update(await probe_mcp(work))
        if "viewer" in chosen:
            figures.update(await probe_viewer(work))
        if "service" in chosen:
            figures.update(await probe_service(work))
    text = json.dumps(figures, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        await asyncio.to_thread(Path(args.out).write_text, text + "\n")


if __name__ == "__main__":
    os.environ.setdefault("AGENTKIT_LOG_LEVEL", "warning")
    asyncio.run(main())
