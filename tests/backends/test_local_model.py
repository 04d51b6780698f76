"""The real packaged model, served by xllamacpp, over real HTTP through ``OpenAICompatible``."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest

from agentkit.backends import Local, OpenAICompatible, backend_from_spec
from agentkit.backends.local import LocalServer
from agentkit.errors import ModelNotAvailable

pytestmark = pytest.mark.model

PROMPT = [{"role": "system", "content": "Answer with one number."},
          {"role": "user", "content": "What is 12 + 30?"}]


def client(server: LocalServer) -> OpenAICompatible:
    return OpenAICompatible(server.model, base_url=server.base_url, supports_n=False, timeout=120)


async def test_seeded_greedy_reply_is_reproducible_with_positive_usage(local_server: LocalServer) -> None:
    backend = client(local_server)
    try:
        [first] = await backend.chat(PROMPT, max_tokens=24, temperature=0, seed=7)
        [second] = await backend.chat(PROMPT, max_tokens=24, temperature=0, seed=7)
    finally:
        await backend.aclose()
    assert first.text == second.text and first.text.strip()
    assert "42" in first.text
    assert first.input_tokens > 10 and first.output_tokens > 0
    assert first.finish_reason in {"stop", "length"} and first.latency_s > 0


async def test_four_concurrent_requests_all_complete(local_server: LocalServer) -> None:
    backend = client(local_server)
    try:
        replies = await asyncio.gather(*(
            backend.chat([{"role": "user", "content": f"Name a colour. ({i})"}], max_tokens=12, temperature=0.8,
                         seed=i) for i in range(4)))
        drafts = await backend.chat(PROMPT, max_tokens=12, temperature=0.9, seed=1, n=3)
    finally:
        await backend.aclose()
    assert len(replies) == 4 and all(r[0].output_tokens > 0 and r[0].text.strip() for r in replies)
    assert [d.index for d in drafts] == [0, 1, 2] and all(d.output_tokens > 0 for d in drafts)


async def test_local_backend_starts_answers_and_shuts_down() -> None:
    backend = backend_from_spec("local:qwen2.5-0.5b?slots=2&ctx=1024")
    [completion] = await backend.chat(PROMPT, max_tokens=16, seed=1)
    inner = backend.unwrap()  # type: ignore[attr-defined]
    assert isinstance(inner, Local) and completion.model == "qwen2.5-0.5b"
    assert inner.describe()["slots"] == 2
    url = urlparse(inner.base_url)
    await backend.aclose()
    with pytest.raises(OSError):
        socket.create_connection((url.hostname, url.port), timeout=1).close()
    await backend.aclose()  # idempotent


async def test_missing_or_corrupt_models_are_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTKIT_MODEL_PATH", str(tmp_path / "nothing.gguf"))
    with pytest.raises(ModelNotAvailable, match="does not exist"):
        await Local().start()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(ModelNotAvailable, match="not a GGUF"):
        await Local(str(bad)).start()
    with pytest.raises(ModelNotAvailable, match="unknown packaged model"):
        await Local("qwen9-999b").start()
