"""``agentkit proxy`` driven by clients we did not write: openai-node (pinned in ``tests/clients``) and litellm
(pinned in the dev extra); openai-python drives ``tests/faces/test_proxy.py``. Each runs a pass-through, a PDR
request (plain and streamed), a refused field and a wrong key, against the scripted upstream."""

from __future__ import annotations

import asyncio
import json
import os
import warnings
from pathlib import Path
from typing import Any

import pytest

from agentkit.backends import backend_from_spec
from agentkit.faces.proxy import Proxy, create_proxy_app, run_proxy_runner
from agentkit.testing import Reply, ScriptedServer, prompt_kind

TOKEN = "client-test-token"


def script(body: dict[str, Any]) -> Reply:
    if prompt_kind(body) == "summary":
        return Reply("Both drafts add 2 and 1 and get 3.")
    return Reply("2 + 1 = 3, so \\boxed{3}")


async def _proxy(upstream: ScriptedServer) -> tuple[Any, str]:
    backend = backend_from_spec(f"openai-compatible:{upstream.base_url}?model=scripted&retries=1")
    runner, url = await run_proxy_runner(create_proxy_app(Proxy(backend, token=TOKEN)))
    return runner, url


async def test_openai_node_uses_the_proxy(node_clients: Path) -> None:
    async with ScriptedServer(script) as upstream:
        runner, url = await _proxy(upstream)
        try:
            proc = await asyncio.create_subprocess_exec(
                "node", str(node_clients / "openai_proxy.mjs"), f"{url}/v1", TOKEN, "scripted",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=node_clients)
            out, err = await asyncio.wait_for(proc.communicate(), 120)
        finally:
            await runner.cleanup()
    assert proc.returncode == 0, err.decode()
    got = json.loads(out)
    assert got["models"][0] == "scripted" and "pdr/scripted" in got["models"] and got["retrieved"] == "pdr/scripted"
    assert got["plain"]["content"] == "2 + 1 = 3, so \\boxed{3}" and got["plain"]["usage"]["completion_tokens"] == 7
    method = got["method"]
    assert method["agentkit"]["answer"] == "3" and method["agentkit"]["calls"] == 4
    assert method["usage"]["completion_tokens"] <= 600
    assert method["usage"]["completion_tokens_details"]["reasoning_tokens"] == method["usage"]["completion_tokens"] - 7
    assert got["stream"]["content"] == method["content"] and got["stream"]["usage"] == method["usage"]
    assert got["refused"] == {"status": 400, "param": "top_p", "code": "unsupported_parameter"}
    assert got["unauthorized"] == {"status": 401, "name": "AuthenticationError"}


# litellm's lazy imports warn (a pydantic ReadOnly notice on one of its own TypedDicts): not ours to fix.
@pytest.mark.filterwarnings("ignore:Items? .*ReadOnly:UserWarning")
async def test_litellm_uses_the_proxy() -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download of the cost map
    with warnings.catch_warnings():  # litellm's own import warns (a pydantic ReadOnly notice): not ours to fix
        warnings.simplefilter("ignore")
        litellm = pytest.importorskip("litellm")
    async with ScriptedServer(script) as upstream:
        runner, url = await _proxy(upstream)
        try:
            common: dict[str, Any] = {"api_base": f"{url}/v1", "api_key": TOKEN, "num_retries": 0,
                                      "messages": [{"role": "user", "content": "What is 2 + 1?"}]}
            plain = await litellm.acompletion(model="openai/scripted", max_tokens=40, **common)
            assert plain.choices[0].message.content == "2 + 1 = 3, so \\boxed{3}"
            assert upstream.requests[-1]["max_tokens"] == 40
            method = await litellm.acompletion(model="openai/pdr/scripted", max_tokens=600,
                                               extra_body={"agentkit": {"params": {"rounds": 2, "drafts": 2,
                                                                                   "kappa": 64}}}, **common)
            assert method.choices[0].message.content == "2 + 1 = 3, so \\boxed{3}"
            assert 0 < method.usage.completion_tokens <= 600
            assert method.usage.completion_tokens_details.reasoning_tokens == method.usage.completion_tokens - 7
            chunks = [c async for c in await litellm.acompletion(
                model="openai/pdr/scripted", stream=True, extra_body={"agentkit": {"params": {"kappa": 64}}},
                **common)]
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
                "2 + 1 = 3, so \\boxed{3}"
            with pytest.raises(litellm.BadRequestError, match="top_p"):
                await litellm.acompletion(model="openai/pdr/scripted", top_p=0.5, **common)
            with pytest.raises(litellm.AuthenticationError):
                await litellm.acompletion(model="openai/scripted", **{**common, "api_key": "wrong"})
        finally:
            await runner.cleanup()
