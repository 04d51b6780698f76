"""``ScriptedBackend``: a script as an in-process ``Backend`` (no HTTP)."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from agentkit.backends.base import Backend, ChatRequest, Completion

from .script import (
    Fault,
    PromptCounter,
    Reply,
    Script,
    _context,
    _Scripted,
    _truncate_reasoning,
    count_words,
)

__all__ = ["ScriptedBackend"]


class ScriptedBackend(_Scripted, Backend):
    """An in-process ``Backend`` that answers from a script, with word-count usage like ``ScriptedServer``.

    A ``Fault`` entry raises the error a real server's fault maps to (``Fault.http(429)`` raises
    ``BackendUnavailable``, ``Fault.http(400)`` raises ``BackendRequestError``, ``Fault.malformed()`` raises
    ``MalformedResponse``), so middleware behaves as it would over HTTP. ``requests`` holds every request as
    the JSON body an HTTP server would have received (plus ``context``).
    """

    def __init__(self, script: Script | None = None, *, latency: float = 0.0, model: str = "scripted",
                 supports_n: bool = True, prompt_tokens: PromptCounter | None = None, tokenize: bool = True) -> None:
        _Scripted.__init__(self, script, latency, prompt_tokens, tokenize)
        self.model = model
        self.name = f"scripted:{model}"
        self.supports_n = supports_n
        self._ids = itertools.count()

    async def count_prompt_tokens(self, request: ChatRequest) -> int | None:
        return self.count_prompt(request.openai_messages()) if self.tokenize else None

    async def complete(self, request: ChatRequest) -> list[Completion]:
        from agentkit.errors import BackendRequestError, BackendUnavailable, MalformedResponse

        body: dict[str, Any] = {
            "model": self.model, "messages": request.openai_messages(), "max_tokens": request.max_tokens,
            "temperature": request.temperature, "top_p": request.top_p, "seed": request.seed,
            "stop": list(request.stop), "n": request.n,
            "context": _context(request),
        }
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        started = time.perf_counter()
        try:
            actions = [self.step(body) for _ in range(request.n)]
            if self.latency:
                await asyncio.sleep(self.latency)
            for action in actions:
                if isinstance(action, Fault):
                    where = self.name
                    if action.kind == "status":
                        transient = action.status in {408, 409, 429} or action.status >= 500
                        cls = BackendUnavailable if transient else BackendRequestError
                        raise cls(f"{where}: HTTP {action.status}: {action.message}", cause=f"HTTP {action.status}",
                                  status=action.status, retry_after=action.retry_after)
                    if action.kind in {"malformed", "no_choices"}:
                        raise MalformedResponse(f"{where}: malformed response", cause="malformed response")
                    if action.kind == "drop":
                        raise BackendUnavailable(f"{where}: connection failed", cause="connection error")
                    await asyncio.Event().wait()  # hang: only a timeout or cancellation ends it
            replies = [a for a in actions if isinstance(a, Reply)]
            if any(r.delay for r in replies):
                await asyncio.sleep(max(r.delay for r in replies))
        finally:
            self.in_flight -= 1
        prompt_tokens = self.count_prompt(body["messages"])
        latency = time.perf_counter() - started
        out = []
        for i, reply in enumerate(replies):
            thought, text, truncated = _truncate_reasoning(reply.reasoning, reply.text, request.max_tokens)
            out.append(Completion(
                text=text, finish_reason="length" if truncated else reply.finish_reason,
                input_tokens=prompt_tokens, output_tokens=count_words(thought) + count_words(text), latency_s=latency,
                model=self.model, index=i, reasoning=thought, reasoning_tokens=count_words(thought),
            ))
        return out


