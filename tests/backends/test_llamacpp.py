"""``LlamaCpp`` (llama-cpp-python in-process) against the same packaged GGUF file.

CI installs the ``llama-cpp`` extra, so there these tests must run: a missing llama_cpp fails under CI
instead of skipping."""

from __future__ import annotations

import asyncio
import importlib.util
import os
from pathlib import Path

import pytest

from agentkit.backends import LlamaCpp, backend_from_spec
from agentkit.errors import ConfigError

pytestmark = [pytest.mark.model, pytest.mark.llamacpp]

if importlib.util.find_spec("llama_cpp") is None and not os.environ.get("CI"):
    pytest.skip("llama-cpp-python is not installed (pip install 'agentkit[llama-cpp]')", allow_module_level=True)

PROMPT = [{"role": "system", "content": "Answer with one number."},
          {"role": "user", "content": "What is 12 + 30?"}]


async def test_llamacpp_reproducible_usage_and_a_pool_of_contexts(model_file: Path) -> None:
    backend = LlamaCpp(str(model_file), contexts=2, n_ctx=1024)
    try:
        [first] = await backend.chat(PROMPT, max_tokens=16, temperature=0, seed=3)
        [second] = await backend.chat(PROMPT, max_tokens=16, temperature=0, seed=3)
        assert first.text == second.text and "42" in first.text
        assert first.input_tokens > 10 and first.output_tokens > 0 and first.model == model_file.stem
        # Three calls at once over two contexts: all complete, never more than two instances.
        replies = await asyncio.gather(*(backend.chat(PROMPT, max_tokens=8, temperature=0.7, seed=i)
                                         for i in range(3)))
        assert all(r[0].output_tokens > 0 for r in replies)
        assert len(backend._instances) == 2
        drafts = await backend.chat(PROMPT, max_tokens=8, temperature=0.7, seed=1, n=2)
        assert [d.index for d in drafts] == [0, 1]
        assert backend.describe()["contexts"] == 2
    finally:
        await backend.aclose()


async def test_llamacpp_from_spec(model_file: Path) -> None:
    backend = backend_from_spec(f"llamacpp:{model_file}?contexts=1&n_ctx=512&n_gpu_layers=0")
    try:
        [reply] = await backend.chat(PROMPT, max_tokens=8, seed=0)
        assert reply.output_tokens > 0
    finally:
        await backend.aclose()
    with pytest.raises(ConfigError, match="contexts must be at least 1"):
        LlamaCpp(str(model_file), contexts=0)
