"""The work one request can cause is bounded (``agentkit.registry.LIMITS``), the same for every face: the
method parameters that multiply calls are capped in their models, a run over the limit is refused before its
first call naming what to lower, the largest allowed proxy request is measured (calls and the proxy's peak
RSS, in its own process), and a client that goes away starts no further upstream call."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agentkit.errors import ConfigError, LimitExceeded
from agentkit.methods import METHODS
from agentkit.registry import LIMITS, get_method
from agentkit.sweep.spec import SweepSpec
from agentkit.testing import Reply, ScriptedServer, prompt_kind

TOKEN = "limits-token"
PROBLEM = "What is 2 + 1?"


def script(body: dict[str, Any]) -> Reply:
    return Reply("Both drafts get 3.") if prompt_kind(body) == "summary" else Reply("2 + 1 = 3, so \\boxed{3}")


def test_every_call_multiplier_is_bounded_and_the_largest_settings_are_refused() -> None:
    """Each method's parameters at their model's upper bounds either fit ``LIMITS`` or are refused by
    ``check_limits`` with the parameters to lower; no parameter that multiplies calls is unbounded."""
    for name, method in METHODS.items():
        for field in method.call_fields:
            info = method.params_model.model_fields[field]
            bounded = any(getattr(m, "le", None) is not None for m in info.metadata) or field == "drafts"  # drafts: checked by its validator
            assert bounded, (name, field)
    with pytest.raises(ConfigError, match="drafts per round must be 1-64"):
        get_method("pdr").params(drafts=3000)
    with pytest.raises(ConfigError, match="drafts per round must be 1-64"):
        get_method("pdr").params(drafts=1_000_000)
    with pytest.raises(ConfigError, match="less than or equal to 131072"):
        get_method("long-cot").params(max_tokens=10**9)
    largest = {"self-consistency": {"samples": 256}, "rsa": {"population": 64, "loops": 16},
               "pdr": {"rounds": 16, "drafts": 64}, "self-improve": {"attempts": 64}}
    for name, values in largest.items():
        method = get_method(name)
        params = method.params(**values, max_tokens=16384)
        with pytest.raises(LimitExceeded) as caught:
            method.check_limits(params)
        assert caught.value.param in (*values, "max_tokens"), caught.value
        assert "lower" in str(caught.value)
    rsa = get_method("rsa")
    with pytest.raises(LimitExceeded, match="1088 calls") as caught:
        rsa.check_limits(rsa.params(population=64, loops=16, max_tokens=16))
    assert caught.value.param == "population"
    assert get_method("pdr").calls(get_method("pdr").params(rounds=16, drafts=64)) <= LIMITS.calls


def test_a_spec_over_the_limit_is_refused_at_load() -> None:
    spec = {"datasets": [{"name": "gsm8k", "limit": 1}], "backends": [{"spec": "scripted:x"}], "budgets": [100_000],
            "methods": [{"name": "self-consistency", "params": {"samples": 256}}]}
    with pytest.raises(ValueError, match=r"at budget 100000: .*may generate up to"):
        SweepSpec.model_validate(spec)
    spec["budgets"] = [2048]
    SweepSpec.model_validate(spec)


async def test_the_proxy_refuses_a_request_over_the_limit_before_any_call() -> None:
    from agentkit.backends import backend_from_spec
    from agentkit.faces.proxy import Proxy, create_proxy_app, run_proxy_runner

    async with ScriptedServer(script) as upstream:
        proxy = Proxy(backend_from_spec(f"openai-compatible:{upstream.base_url}?model=scripted"), token=TOKEN)
        runner, url = await run_proxy_runner(create_proxy_app(proxy))
        try:
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
                for params, param in (({"drafts": 3000}, "agentkit.params.drafts"),
                                      ({"drafts": 1_000_000}, "agentkit.params.drafts"),
                                      ({"rounds": 16, "drafts": 64, "max_tokens": 4096}, "max_tokens")):
                    started = time.monotonic()
                    async with session.post(f"{url}/v1/chat/completions", json={
                            "model": "pdr/scripted", "messages": [{"role": "user", "content": PROBLEM}],
                            "agentkit": {"params": params}}) as r:
                        body = await r.json()
                    assert r.status == 400, body
                    assert body["error"]["param"] == param, body
                    assert time.monotonic() - started < 5
            assert upstream.requests == []
        finally:
            await runner.cleanup()


def _hwm_mb(pid: int) -> float:
    """A process's peak resident set (VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def _start_proxy(upstream: ScriptedServer) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(  # noqa: ASYNC220 (started once; the test waits on it in a thread)
        [sys.executable, "-m", "agentkit", "proxy", "--backend",
         f"openai-compatible:{upstream.base_url}?model=scripted&retries=1", "--token", TOKEN, "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = await asyncio.to_thread(proc.stdout.readline)
    assert " at http://" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc, line.split(" at ", 1)[1].split()[0].removesuffix("/v1")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc for the peak RSS")
async def test_the_largest_allowed_proxy_request_stays_bounded() -> None:
    """The largest PDR request the limits allow (16 rounds of 64 drafts: 961 drafts and 15 workspaces) makes
    exactly its planned calls upstream, and the proxy's peak RSS grows by a bounded amount (a run holds its
    drafts, not more)."""
    async with ScriptedServer(script) as upstream:
        proc, url = await _start_proxy(upstream)
        try:
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
                async with session.get(f"{url}/health") as r:
                    assert r.status == 200
                idle = _hwm_mb(proc.pid)
                async with session.post(f"{url}/v1/chat/completions", json={
                        "model": "pdr/scripted", "messages": [{"role": "user", "content": PROBLEM}],
                        "agentkit": {"params": {"rounds": 16, "drafts": 64, "max_tokens": 64}}},
                        timeout=aiohttp.ClientTimeout(total=300)) as r:
                    body = await r.json()
                assert r.status == 200, body
                peak = _hwm_mb(proc.pid)
            pdr = get_method("pdr")
            planned = pdr.calls(pdr.params(rounds=16, drafts=64))
            assert body["agentkit"]["calls"] == len(upstream.requests) == planned == 976
            print(f"largest request: {planned} calls, proxy peak RSS {idle:.0f} -> {peak:.0f} MB")
            assert peak - idle < 400, (idle, peak)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=30)


async def test_a_client_that_goes_starts_no_further_upstream_call() -> None:
    """A client gives up on a large PDR request mid-run (its drafts queue behind a concurrency of 4 upstream):
    the run is cancelled, and no upstream call starts after the calls in flight at that moment."""
    from agentkit.backends import backend_from_spec
    from agentkit.faces.proxy import Proxy, create_proxy_app, run_proxy_runner

    async with ScriptedServer(script, latency=0.2) as upstream:
        backend = backend_from_spec(f"openai-compatible:{upstream.base_url}?model=scripted&concurrency=4&retries=1")
        proxy = Proxy(backend, token=TOKEN)
        runner, url = await run_proxy_runner(create_proxy_app(proxy))
        try:
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
                with pytest.raises(asyncio.TimeoutError):
                    async with session.post(f"{url}/v1/chat/completions", json={
                            "model": "pdr/scripted", "messages": [{"role": "user", "content": PROBLEM}],
                            "agentkit": {"params": {"rounds": 2, "drafts": 64}}},
                            timeout=aiohttp.ClientTimeout(total=0.7)) as r:
                        await r.read()
            await asyncio.sleep(0.1)  # the proxy sees the connection close and cancels the run
            at_close = len(upstream.requests)
            await asyncio.sleep(1.0)  # five latencies: a run still going would have started ~20 more calls
            assert 0 < at_close < 64 and len(upstream.requests) == at_close, (at_close, len(upstream.requests))
            assert upstream.in_flight == 0
        finally:
            await runner.cleanup()


def test_limits_are_documented() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert f"{LIMITS.calls:,} calls" in readme and f"{LIMITS.tokens:,} generated tokens" in readme
    assert "LimitExceeded" in readme
