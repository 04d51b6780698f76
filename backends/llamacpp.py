"""``LlamaCpp``: llama-cpp-python in-process, with GPU offload and a pool of model contexts.

A ``llama_cpp.Llama`` object decodes one sequence at a time and is not thread-safe, so N drafts at once
need N contexts: this backend keeps a pool of up to ``contexts`` ``Llama`` instances (created lazily, each
costing about one model's worth of memory on the CPU) and lends one to each call. Every blocking call
(model load, generation) runs in a worker thread, never on the event loop; ctypes releases the GIL, so
the contexts really run in parallel. ``n_gpu_layers=-1`` offloads all layers when llama-cpp-python was
built with CUDA (``CMAKE_ARGS="-DGGML_CUDA=on" pip install llama-cpp-python``).

Install with ``pip install 'agentkit[llama-cpp]'`` (it builds llama.cpp from source: about 6 minutes on 2
cores). ``n > 1`` runs as ``n`` calls over the pool with seeds ``seed + i``.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from agentkit.errors import BackendError, ConfigError, ModelNotAvailable

from ._models import resolve_model
from .base import Backend, ChatRequest, Completion

__all__ = ["LlamaCpp"]


class LlamaCpp(Backend):
    """llama-cpp-python with a pool of ``contexts`` model instances.

    Args:
        model: a ``.gguf`` path or a packaged model name (``qwen2.5-0.5b``).
        contexts: how many calls may decode at once (one ``Llama`` instance each).
        n_gpu_layers: layers to offload to the GPU (-1: all; 0: CPU only).
        n_ctx: context tokens per instance.
        n_threads: CPU threads per instance (default: the cores divided over the contexts).
        chat_format: override the chat template embedded in the GGUF (``chatml``, ...).
    """

    supports_n = False

    def __init__(
        self,
        model: str,
        *,
        contexts: int = 1,
        n_gpu_layers: int = 0,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        chat_format: str | None = None,
        verbose: bool = False,
    ) -> None:
        if contexts < 1:
            raise ConfigError(f"contexts must be at least 1, got {contexts}")
        try:
            import llama_cpp
        except ImportError:
            raise ConfigError(
                "the llamacpp backend needs llama-cpp-python: pip install 'agentkit[llama-cpp]' "
                "(or use the embedded `local` backend, which needs no build)"
            ) from None
        self._llama_cpp = llama_cpp
        self.model_name, self.path = resolve_model(model)
        self.model = self.model_name
        self.name = f"llamacpp:{self.model_name}"
        self.contexts = contexts
        self.n_gpu_layers = n_gpu_layers
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(1, (os.cpu_count() or 2) // contexts)
        self.chat_format = chat_format
        self.verbose = verbose
        self._idle: asyncio.Queue[Any] = asyncio.Queue()
        self._created = 0
        self._create_lock = asyncio.Lock()
        self._instances: list[Any] = []

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(), "path": str(self.path), "contexts": self.contexts,
            "n_gpu_layers": self.n_gpu_layers, "llama_cpp_python": self._llama_cpp.__version__,
        }

    def _load(self, path: Path) -> Any:
        try:
            return self._llama_cpp.Llama(
                model_path=str(path), n_ctx=self.n_ctx, n_gpu_layers=self.n_gpu_layers,
                n_threads=self.n_threads, chat_format=self.chat_format, verbose=self.verbose,
            )
        except Exception as exc:
            raise ModelNotAvailable(f"llama-cpp-python could not load {path}: {exc}") from exc

    async def _acquire(self) -> Any:
        try:
            return self._idle.get_nowait()
        except asyncio.QueueEmpty:
            pass
        async with self._create_lock:
            if self._created < self.contexts:
                instance = await asyncio.to_thread(self._load, self.path)
                self._created += 1
                self._instances.append(instance)
                return instance
        return await self._idle.get()

    async def complete(self, request: ChatRequest) -> list[Completion]:
        if request.n > 1:
            parts = await asyncio.gather(*(self._one(request.for_sample(i)) for i in range(request.n)))
            return [c.model_copy(update={"index": i}) for i, c in enumerate(parts)]
        return [await self._one(request)]

    async def _one(self, request: ChatRequest) -> Completion:
        llama = await self._acquire()
        try:
            started = time.perf_counter()
            kwargs: dict[str, Any] = {
                "messages": request.openai_messages(),
                "max_tokens": request.max_tokens,
                "temperature": request.temperature,
                "stop": list(request.stop) or None,
            }
            if request.top_p is not None:
                kwargs["top_p"] = request.top_p
            if request.seed is not None:
                kwargs["seed"] = request.seed
            try:
                response = await asyncio.to_thread(llama.create_chat_completion, **kwargs)
            except ValueError as exc:  # e.g. the prompt exceeds n_ctx
                raise BackendError(f"{self.name}: {exc}", cause="request rejected") from exc
            latency = time.perf_counter() - started
        finally:
            self._idle.put_nowait(llama)
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "", finish_reason=choice.get("finish_reason") or "",
            input_tokens=int(usage.get("prompt_tokens", 0)), output_tokens=int(usage.get("completion_tokens", 0)),
            latency_s=latency, model=self.model,
        )

    async def aclose(self) -> None:
        instances, self._instances = self._instances, []
        self._idle = asyncio.Queue()
        self._created = 0
        for instance in instances:
            await asyncio.to_thread(instance.close)
