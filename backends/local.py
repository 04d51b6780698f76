"""``Local``: the embedded default backend. No API key, no download, no GPU needed.

It assembles a packaged GGUF model (``backends/_models.py``), serves it in-process with xllamacpp (llama.cpp's
own C++ server engine: ``slots`` parallel sequences with continuous batching) on 127.0.0.1 at a free port,
and talks to it through ``OpenAICompatible`` -- so the code path exercised locally is the one used against
vLLM or OpenAI. The server starts on first use (or ``await backend.start()``) and stops on ``aclose()``.

llama.cpp's server miscounts usage for ``n > 1`` (it reports one choice's tokens), so ``supports_n`` is
false and ``n`` choices become ``n`` concurrent requests that share the slots.
"""

from __future__ import annotations

import asyncio
import gc
import os
from pathlib import Path
from typing import Any

from agentkit.errors import ConfigError, ModelNotAvailable
from agentkit.log import get_logger

from ._models import gguf_sha256, resolve_model
from .base import Backend, ChatRequest, Completion, Endpoint
from .openai_compat import OpenAICompatible

__all__ = ["Local", "LocalServer"]

_log = get_logger(__name__)


class LocalServer:
    """A GGUF model served by xllamacpp on 127.0.0.1 at a free port; synchronous and thread-safe.

    ``Local`` runs one of these; use it directly to serve a model to other clients or processes
    (``base_url`` is an OpenAI-compatible endpoint). Starting blocks while the model loads (about a second
    for the 0.5B model); ``close()`` stops the server and frees the model.
    """

    def __init__(self, path: str | Path, *, model: str | None = None, slots: int = 4, ctx_per_slot: int = 4096,
                 threads: int | None = None, n_gpu_layers: int = 0, verbose: bool = False) -> None:
        try:
            import xllamacpp
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise ModelNotAvailable(f"xllamacpp is not installed ({exc}); pip install xllamacpp") from None
        self.path = Path(path)
        self.model = model or self.path.stem
        params = xllamacpp.CommonParams()
        params.model.path = str(self.path)
        params.model_alias = self.model
        params.n_parallel = slots
        params.n_ctx = slots * ctx_per_slot  # llama.cpp splits n_ctx evenly over the slots
        params.cpuparams.n_threads = threads or os.cpu_count() or 2
        params.cpuparams_batch.n_threads = threads or os.cpu_count() or 2
        params.n_gpu_layers = n_gpu_layers
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # a free port
        if not verbose:
            params.verbosity = -1
        try:
            self._server: Any = xllamacpp.Server(params)
        except Exception as exc:
            raise ModelNotAvailable(f"could not load {self.path} with xllamacpp: {exc}") from exc
        self.base_url = str(self._server.listening_address).rstrip("/") + "/v1"
        _log.info("local model serving", model=self.model, url=self.base_url, slots=slots)

    def close(self) -> None:
        """Stop the server and free the model. Idempotent."""
        # Dropping the last reference stops xllamacpp's HTTP server (its destructor joins its threads).
        self._server = None
        gc.collect()

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Local(Backend):
    """A GGUF model served in-process by xllamacpp and reached over HTTP on 127.0.0.1.

    Args:
        model: a packaged model name (``qwen2.5-0.5b``, ``qwen2.5-1.5b``), a ``.gguf`` path, or None for
            ``$AGENTKIT_MODEL_PATH`` or the default model.
        slots: parallel sequences the server decodes together (continuous batching).
        ctx_per_slot: context tokens available to each slot (prompt + output).
        threads: CPU threads (default: all cores).
        n_gpu_layers: layers to offload when xllamacpp was built with a GPU backend (the PyPI wheel is CPU).
        timeout: seconds per request before it counts as hung.
        verbose: let llama.cpp print its own log to stderr (off: it is very chatty).
    """

    supports_n = False

    def __init__(
        self,
        model: str | None = None,
        *,
        slots: int = 4,
        ctx_per_slot: int = 4096,
        threads: int | None = None,
        n_gpu_layers: int = 0,
        timeout: float = 600.0,
        verbose: bool = False,
    ) -> None:
        if slots < 1 or ctx_per_slot < 256:
            raise ConfigError(f"Local needs slots >= 1 and ctx_per_slot >= 256, got {slots} and {ctx_per_slot}")
        self._model_spec = model
        self.slots = slots
        self.ctx_per_slot = ctx_per_slot
        self.threads = threads or os.cpu_count() or 2
        self.n_gpu_layers = n_gpu_layers
        self.timeout = timeout
        self.verbose = verbose
        self.model = model or "local"
        self.name = f"local:{self.model}"
        self.path: Path | None = None
        self._server: LocalServer | None = None
        self._client: OpenAICompatible | None = None
        self._lock = asyncio.Lock()

    @property
    def base_url(self) -> str | None:
        """The OpenAI-compatible endpoint (``http://127.0.0.1:PORT/v1``) once started."""
        return self._client.base_url if self._client is not None else None

    async def start(self) -> Local:
        """Assemble the model if needed and start the server. Idempotent."""
        async with self._lock:
            if self._client is None:
                name, path = await asyncio.to_thread(resolve_model, self._model_spec)
                self.model, self.path, self.name = name, path, f"local:{name}"
                self._server = await asyncio.to_thread(
                    LocalServer, path, model=name, slots=self.slots, ctx_per_slot=self.ctx_per_slot,
                    threads=self.threads, n_gpu_layers=self.n_gpu_layers, verbose=self.verbose,
                )
                self._client = OpenAICompatible(
                    name, base_url=self._server.base_url, api_key="local", timeout=self.timeout,
                    supports_n=False, name=self.name,
                )
        return self

    def describe(self) -> dict[str, Any]:
        import xllamacpp

        return {
            **super().describe(), "path": str(self.path) if self.path else None, "slots": self.slots,
            "ctx_per_slot": self.ctx_per_slot, "xllamacpp": getattr(xllamacpp, "__version__", "unknown"),
        }

    async def complete(self, request: ChatRequest) -> list[Completion]:
        if self._client is None:
            await self.start()
        assert self._client is not None
        completions = await self._client.complete(request)
        # llama.cpp reports its own label for the model; report the name agentkit resolved.
        return [c.model_copy(update={"model": self.model}) for c in completions]

    async def identity(self) -> dict[str, Any]:
        """The model file's path and sha256 (the server started, so the packaged model is resolved)."""
        try:
            await self.start()
            assert self.path is not None
            return {**self.describe(), "sha256": await asyncio.to_thread(gguf_sha256, self.path)}
        except Exception as exc:  # reported in the row, never fatal here: the first cell fails with the reason
            return {**self.describe(), "identity_error": f"{type(exc).__name__}: {exc}"}

    async def endpoint(self) -> Endpoint | None:
        """The in-process llama.cpp server's endpoint (started first)."""
        await self.start()
        assert self._client is not None
        return await self._client.endpoint()

    async def count_prompt_tokens(self, request: ChatRequest) -> int | None:
        """The prompt's tokens as llama.cpp's server counts them (its ``/apply-template`` and ``/tokenize``)."""
        if self._client is None:
            await self.start()
        assert self._client is not None
        return await self._client.count_prompt_tokens(request)

    async def aclose(self) -> None:
        async with self._lock:
            client, server = self._client, self._server
            self._client, self._server = None, None
        if client is not None:
            await client.aclose()
        if server is not None:
            await asyncio.to_thread(server.close)
