"""LLM backends and their middleware (installed as ``agentkit.backends``).

One contract (``Backend``, an abstract base class: ``async chat(messages, *, max_tokens, temperature, top_p, seed, stop, n,
context) -> list[Completion]``), three real backends (``OpenAICompatible``, ``Local``, ``LlamaCpp``),
middleware that wraps any of them (``Retrying``, ``Limited``, ``Cached``), and ``backend_from_spec`` to
build a stack from a string such as ``local:qwen2.5-0.5b`` or ``vllm:http://host:8000/v1?model=M``.
Model libraries (xllamacpp, llama-cpp-python) are imported only when a backend starts.
"""

from __future__ import annotations

from ._models import DEFAULT_MODEL, PACKAGED_MODELS, model_path
from .base import Backend, CallContext, ChatMessage, ChatRequest, Completion, Endpoint
from .llamacpp import LlamaCpp
from .local import Local, LocalServer
from .middleware import (
    Cached,
    ConcurrencyLimit,
    Limited,
    RateLimit,
    ResponseCache,
    Retrying,
    RetryPolicy,
    Wrapper,
    with_middleware,
)
from .openai_compat import OpenAICompatible
from .spec import backend_from_spec, parse_spec

__all__ = [
    "DEFAULT_MODEL",
    "PACKAGED_MODELS",
    "Backend",
    "Cached",
    "CallContext",
    "ChatMessage",
    "ChatRequest",
    "Completion",
    "ConcurrencyLimit",
    "Endpoint",
    "Limited",
    "LlamaCpp",
    "Local",
    "LocalServer",
    "OpenAICompatible",
    "RateLimit",
    "ResponseCache",
    "RetryPolicy",
    "Retrying",
    "Wrapper",
    "backend_from_spec",
    "model_path",
    "parse_spec",
    "with_middleware",
]

