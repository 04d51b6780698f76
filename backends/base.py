"""The backend contract: one async ``chat`` call that every LLM backend and middleware implements.

``await backend.chat(messages, max_tokens=..., temperature=..., top_p=..., seed=..., stop=..., n=...,
context=...)`` returns ``n`` ``Completion`` objects (text, finish reason, input/output tokens, latency,
model, whether it came from the cache).

Internally ``chat`` validates its arguments into a ``ChatRequest`` (a frozen pydantic model, so bad input
is a ``ConfigError`` with the field named, not a traceback from deep inside an HTTP client) and calls
``complete(request)``. Backends implement ``complete``; middleware (``backends/middleware.py``) wraps
another backend and overrides ``complete`` too, so retry, limits and cache compose in any order.

``CallContext`` says *which* call this is in a pipeline run (run, role, round, branch, sample). The
response cache keys on it, so M parallel drafts of one round never collapse into one cached answer
(lm-evaluation-harness #3046), and the ledger files the call under it.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentkit.errors import ConfigError, validation_problems

__all__ = [
    "Backend",
    "CallContext",
    "ChatMessage",
    "ChatRequest",
    "Completion",
    "Endpoint",
    "split_reasoning",
]


class ChatMessage(BaseModel):
    """One chat turn."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class CallContext(BaseModel):
    """Where a call sits in a pipeline run. Two calls that differ here are different requests."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str = ""
    role: str = ""
    """The role making the call (``student``, ``distiller``, ...)."""
    round: int = 0
    """Sequential round (PDR/SR) or step."""
    branch: int = 0
    """Parallel branch within the round (draft index)."""
    sample: int = 0
    """Repeated sample index (pass@k, seeds) for otherwise identical calls."""
    step: str = ""
    """What the call does within its role: the prompt template it renders (``long_cot``, ``bci``,
    ``strategist_reflect``, ``pdr_summary``, ...). Test scripts choose replies by role and step."""


class ChatRequest(BaseModel):
    """A validated chat request: the unit that middleware sees, caches and retries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    messages: tuple[ChatMessage, ...] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=5.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = None
    stop: tuple[str, ...] = ()
    n: int = Field(default=1, ge=1, le=256)
    context: CallContext | None = None

    def openai_messages(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.content} for m in self.messages]

    def for_sample(self, index: int) -> ChatRequest:
        """The single-choice request for choice ``index`` of an ``n``-choice request (seed offset by index,
        context sample offset by index), used when a backend cannot do ``n > 1`` in one call."""
        context = self.context or CallContext()
        return self.model_copy(
            update={
                "n": 1,
                "seed": None if self.seed is None else self.seed + index,
                "context": context.model_copy(update={"sample": context.sample + index}),
            }
        )


class Completion(BaseModel):
    """One generated choice and what it cost."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    finish_reason: str
    """``stop``, ``length`` (hit max_tokens), or what the server said."""
    input_tokens: int
    output_tokens: int
    latency_s: float
    """Wall time of the call that produced it (for a cached reply: of the original call)."""
    model: str
    index: int = 0
    """Choice index within its request."""
    cached: bool = False
    """Served from the response cache; tokens and latency are the original call's."""
    usage_estimated: bool = False
    """Output tokens were apportioned from a request total (n > 1), not reported per choice."""
    reasoning: str = ""
    """The model's reasoning, when the server returns it apart from the answer (``reasoning_content`` /
    ``reasoning``, vLLM's reasoning parsers) or inline in a ``<think>...</think>`` block; ``text`` is then the
    final text alone, which answers are extracted from."""
    reasoning_tokens: int = 0
    """Reasoning tokens as the server reported them (``completion_tokens_details.reasoning_tokens``); they are
    part of ``output_tokens``, as servers bill them."""
    replica: str = ""
    """Which replica of a replicated backend produced it (``Replicated``: its URL); empty for a single server."""


def split_reasoning(text: str) -> tuple[str, str]:
    """``(reasoning, final)`` of a text that inlines its reasoning in ``<think>...</think>`` (servers without a
    reasoning parser); a text cut off inside the block has no final text yet."""
    start = text.find("<think>")
    end = text.find("</think>")
    if end >= 0:
        return text[start + len("<think>") if 0 <= start < end else 0:end].strip(), text[end + len("</think>"):].lstrip()
    if start >= 0:
        return text[start + len("<think>"):].strip(), ""
    return "", text


def make_request(messages: Sequence[ChatMessage | dict[str, str]] | str, **params: Any) -> ChatRequest:
    """Validate ``chat`` arguments into a ``ChatRequest``; a plain string is one user message."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    stop = params.pop("stop", None)  # params is this call's own dict (built from keywords)
    if stop is not None:
        params["stop"] = tuple(stop)
    try:
        return ChatRequest(messages=tuple(messages), **params)
    except ValidationError as exc:
        problems = "; ".join(f"{field}: {reason}" for field, reason in validation_problems(exc, root="request"))
        raise ConfigError(f"invalid chat request: {problems}") from None


@dataclass(frozen=True)
class Endpoint:
    """The OpenAI-compatible HTTP endpoint a backend talks to (``Backend.endpoint``): what a relay such as the
    proxy's pass-through forwards a client's request to, unchanged but for ``model``."""

    base_url: str
    """``http://host:port/v1``."""
    model: str
    """The model name the server expects."""
    api_key: str = field(repr=False, default="not-needed")
    extra_body: dict[str, Any] = field(default_factory=dict)
    """Fields the backend adds to every request (a field the client sent wins)."""

    @property
    def chat_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/chat/completions"


class Backend(abc.ABC):
    """The one backend contract. Every backend and every middleware wrapping one subclasses it and implements
    ``complete``; ``chat`` (validation into a ``ChatRequest``) is built on top. The budgeted call
    (``agentkit.calls.budgeted_chat``) and every role are typed against it."""

    name: str = "backend"
    """Short label for logs and results (``local:qwen2.5-0.5b``, ``vllm:M``)."""
    model: str = ""
    """The model name sent to / reported by the server."""
    supports_n: bool = False
    """Whether one request can return ``n > 1`` choices with correct usage."""

    async def chat(
        self,
        messages: Sequence[ChatMessage | dict[str, str]] | str,
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        top_p: float | None = None,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
        n: int = 1,
        context: CallContext | None = None,
    ) -> list[Completion]:
        request = make_request(
            messages, max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed, stop=stop,
            n=n, context=context,
        )
        return await self.complete(request)

    @abc.abstractmethod
    async def complete(self, request: ChatRequest) -> list[Completion]:
        """Run one validated request; return exactly ``request.n`` completions."""

    async def count_prompt_tokens(self, request: ChatRequest) -> int | None:
        """The exact number of prompt tokens the server will bill for ``request`` (its chat template applied),
        or None when this backend cannot count them (the default). Budgeted calls use it to cap ``max_tokens``
        so that prompt plus output never exceed what the budget leaves (``agentkit.calls.budgeted_chat``); a
        backend that returns None is planned from estimates instead. Never raises for a server that cannot
        count: it answers None."""
        return None

    async def endpoint(self) -> Endpoint | None:
        """The OpenAI-compatible HTTP endpoint behind this backend, for a relay that forwards requests as they came
        (every sampling field, streaming): ``OpenAICompatible`` with a ``base_url`` and ``Local`` (started) have
        one; None (the default) for a backend without one, or a middleware whose guarantees a relay would bypass
        (limits, cache)."""
        return None

    def describe(self) -> dict[str, Any]:
        """What reproduces results from this backend (class, model, build); stored with sweep rows."""
        return {"backend": type(self).__name__, "name": self.name, "model": self.model}

    async def identity(self) -> dict[str, Any]:
        """``describe()`` with the model resolved: what the server says it serves (``served_models``), or for a
        model file the file's ``sha256``. A sweep asks once, before its first cell, so every row names the model
        that answered it. Never raises: what could not be learned is named in ``identity_error``."""
        return self.describe()

    async def aclose(self) -> None:
        """Release connections, servers and model memory. Idempotent."""

    async def __aenter__(self) -> Backend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

