"""``ScriptedServer``: a real OpenAI-compatible HTTP server on 127.0.0.1 that follows a script."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Literal

from aiohttp import web

from .script import (
    Fault,
    PromptCounter,
    Reply,
    Script,
    _Scripted,
    _truncate_reasoning,
    count_words,
)

__all__ = ["ScriptedServer"]


class ScriptedServer(_Scripted):
    """An OpenAI-compatible ``/v1/chat/completions`` server on 127.0.0.1 that follows a script.

    Example::

        async with ScriptedServer([Fault.rate_limited(0.1), Reply("42")]) as server:
            backend = with_middleware(OpenAICompatible("m", base_url=server.base_url))
            [completion] = await backend.chat("6 x 7?")
    """

    def __init__(self, script: Script | None = None, *, latency: float = 0.0, model: str = "scripted",
                 reasoning: Literal["field", "inline"] = "field", prompt_tokens: PromptCounter | None = None,
                 tokenize: bool = True, stream_interval: float = 0.0) -> None:
        super().__init__(script, latency, prompt_tokens, tokenize)
        self.model = model
        self.stream_interval = stream_interval
        """Seconds between two chunks of a streamed reply (``"stream": true``: one chunk per word, as servers
        stream tokens; the first goes out at once)."""
        self.reasoning = reasoning
        """How replies with reasoning carry it: a ``reasoning_content`` field (vLLM's reasoning parsers) or
        inline ``<think>`` blocks in the content (servers without one)."""
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._hanging: set[asyncio.Future[None]] = set()

    async def start(self, port: int = 0) -> ScriptedServer:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        if self.tokenize:
            app.router.add_post("/tokenize", self._tokenize)
        # A client that disconnects cancels its request here, as vLLM and llama.cpp abort it (``in_flight``
        # then shows whether a caller really gave up on its calls).
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5,
                                     handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, backlog=1024)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        return self

    async def close(self) -> None:
        for future in self._hanging:
            future.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ScriptedServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _tokenize(self, request: web.Request) -> web.Response:
        """vLLM's shape: chat ``messages`` in, their ``count`` (as usage will bill them) out."""
        try:
            body = await request.json()
            messages = body["messages"]
        except (json.JSONDecodeError, KeyError, TypeError):
            return web.json_response({"error": {"message": "messages are required"}}, status=400)
        return web.json_response({"count": self.count_prompt(messages), "max_model_len": 1 << 20})

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            try:
                body = await request.json()
            except json.JSONDecodeError:
                return web.json_response({"error": {"message": "request body is not JSON"}}, status=400)
            n = int(body.get("n", 1) or 1)
            actions = [self.step(body) for _ in range(n)]
            if self.latency:
                await asyncio.sleep(self.latency)
            fault = next((a for a in actions if isinstance(a, Fault)), None)
            if fault is not None:
                return await self._fault(request, fault)
            replies = [a for a in actions if isinstance(a, Reply)]
            delay = max(r.delay for r in replies)
            if delay:
                await asyncio.sleep(delay)
            completion = self._completion(body, replies)
            if body.get("stream"):
                return await self._stream(request, body, completion)
            return web.json_response(completion)
        finally:
            self.in_flight -= 1

    def _completion(self, body: dict[str, Any], replies: list[Reply]) -> dict[str, Any]:
        max_tokens = body.get("max_tokens")
        choices, completion_tokens, reasoning_tokens = [], 0, 0
        for i, reply in enumerate(replies):
            thought, text, truncated = _truncate_reasoning(reply.reasoning, reply.text, max_tokens)
            completion_tokens += count_words(thought) + count_words(text)
            reasoning_tokens += count_words(thought)
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if reply.reasoning and self.reasoning == "inline":
                message["content"] = f"<think>{thought}" + (f"</think>{text}" if not truncated or text else "")
            elif reply.reasoning:
                message["reasoning_content"] = thought
            choices.append({"index": i, "message": message,
                            "finish_reason": "length" if truncated else reply.finish_reason})
        prompt_tokens = self.count_prompt(body.get("messages", []))
        self.billed += prompt_tokens + completion_tokens
        usage: dict[str, Any] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                 "total_tokens": prompt_tokens + completion_tokens}
        if any(r.reasoning for r in replies):
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
        return {
            "id": f"chatcmpl-scripted-{len(self.requests)}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model", self.model), "choices": choices,
            "usage": usage,
        }

    async def _stream(self, request: web.Request, body: dict[str, Any], completion: dict[str, Any]
                      ) -> web.StreamResponse:
        """``completion`` as Server-Sent Events the way vLLM streams: a role chunk, one chunk per word (every
        ``stream_interval`` s), the finish chunk, the usage chunk when ``stream_options.include_usage``, ``[DONE]``."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        options = body.get("stream_options")
        usage_asked = isinstance(options, dict) and bool(options.get("include_usage"))
        base = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"],
                "model": completion["model"]}

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            data = {**base, "choices": choices, **({"usage": None} if usage_asked else {}), **extra}
            await response.write(f"data: {json.dumps(data)}\n\n".encode())

        for choice in completion["choices"]:
            index = choice["index"]
            await send([{"index": index, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            words = (choice["message"].get("content") or "").split(" ")
            for j, word in enumerate(words):
                if self.stream_interval:
                    await asyncio.sleep(self.stream_interval)
                piece = word if j == 0 else " " + word
                await send([{"index": index, "delta": {"content": piece}, "finish_reason": None}])
            await send([{"index": index, "delta": {}, "finish_reason": choice["finish_reason"]}])
        if usage_asked:
            await send([], usage=completion["usage"])
        await response.write(b"data: [DONE]\n\n")
        return response

    async def _fault(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        if fault.kind == "status":
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            return web.json_response(
                {"error": {"message": fault.message, "type": "scripted", "code": fault.status}},
                status=fault.status, headers=headers,
            )
        if fault.kind == "malformed":
            return web.Response(text='{"choices": [ this is not json', content_type="application/json")
        if fault.kind == "no_choices":
            return web.json_response({"id": "x", "object": "chat.completion", "model": self.model})
        if fault.kind == "drop":
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # aiohttp ends the handler quietly on a closed connection
        hang: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._hanging.add(hang)
        try:
            await hang
        finally:
            self._hanging.discard(hang)
        raise AssertionError("unreachable")


