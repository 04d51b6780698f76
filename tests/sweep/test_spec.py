from __future__ import annotations

from pathlib import Path

import pytest

from agentkit.backends import (
    Cached,
    ConcurrencyLimit,
    Limited,
    Local,
    OpenAICompatible,
    Retrying,
    backend_from_spec,
    parse_spec,
)
from agentkit.errors import ConfigError


def test_parse_spec() -> None:
    assert parse_spec("vllm:http://h:8000/v1?model=M&concurrency=8") == (
        "vllm", "http://h:8000/v1", {"model": "M", "concurrency": "8"})
    assert parse_spec("local") == ("local", "", {})
    assert parse_spec("llamacpp:/m.gguf?n_gpu_layers=-1&contexts=4")[2] == {"n_gpu_layers": "-1", "contexts": "4"}


def test_specs_build_the_right_backends(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    openai = backend_from_spec("openai:gpt-4o-mini")
    assert isinstance(openai, Retrying) and isinstance(openai.inner, OpenAICompatible)
    assert openai.model == "gpt-4o-mini" and openai.supports_n and openai.unwrap().base_url is None

    vllm = backend_from_spec(f"vllm:http://127.0.0.1:9/v1?model=Qwen/Q&concurrency=8&rpm=60&cache={tmp_path}/c.db")
    assert isinstance(vllm, Cached) and isinstance(vllm.inner.inner, Limited)  # type: ignore[attr-defined]
    limited = vllm.inner.inner  # type: ignore[attr-defined]
    assert limited.concurrency.max_concurrent == 8 and limited.rate.rpm == 60
    assert vllm.unwrap().supports_n and vllm.model == "Qwen/Q"

    server = backend_from_spec("openai-compatible:http://127.0.0.1:9/v1?model=m&retries=1")
    assert isinstance(server, Retrying) and server.policy.attempts == 1 and not server.supports_n

    local = backend_from_spec("local:qwen2.5-1.5b?slots=8&ctx=2048")
    assert isinstance(local.unwrap(), Local) and local.unwrap().slots == 8  # type: ignore[attr-defined]

    shared = ConcurrencyLimit(4)
    a = backend_from_spec("local", concurrency=shared)
    b = backend_from_spec("vllm:http://127.0.0.1:9/v1?model=m", concurrency=shared)
    assert a.inner.concurrency is b.inner.concurrency is shared  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty backend spec"),
        ("gpt4", "unknown backend"),
        ("openai:", "names no model"),
        ("vllm:http://h/v1", "add `\\?model=NAME`"),
        ("vllm:h:8000?model=m", "needs an endpoint URL"),
        ("local?slots=x", "slots must be a int"),
        ("local?bogus=1", "unknown parameter"),
        ("local?retries=0", "retries must be at least 1"),
        ("vllm:http://h/v1?model=m&model=n", "gives 'model' twice"),
        ("vllm:http://h/v1?model=m&supports_n=maybe", "supports_n must be true or false"),
    ],
)
def test_bad_specs_are_config_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        backend_from_spec(spec)


def test_openai_without_a_key_says_which_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"\$OPENAI_API_KEY"):
        backend_from_spec("openai:gpt-4o-mini")
