"""Testing kit for people who build on agentkit: test recipes without a model.

- ``ScriptedServer``: a real OpenAI-compatible HTTP server (aiohttp, 127.0.0.1, a free port) that answers
  from a script. Each entry is a ``Reply`` or a ``Fault`` (429 with Retry-After, any status, a hanging
  request, a dropped connection, malformed JSON); a callable script decides per request. It can add
  latency, counts requests and the most in flight at once, and reports **exact, deterministic** usage:
  one token per whitespace-separated word (prompt: all message contents, or a counter of the test's own;
  output: the reply), so tests can assert token arithmetic by hand; ``/tokenize`` (vLLM's shape) counts a
  prompt the same way, as real servers let clients count before they send. ``max_tokens`` truncates a reply to that many words
  (``finish_reason="length"``). Use it to test the HTTP path: retries, limits, budgets, call graphs.
- ``ScriptedBackend``: the same idea without HTTP, as an in-process ``Backend``.
- ``python -m agentkit.testing --latency 0.1`` serves a ``ScriptedServer`` in its own process (prints its
  base URL), for benchmarks that must not share a CPU core's event loop with the client.

Real behaviour is still tested against a real model (``local``): a script is for faults and exact counts.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from agentkit.backends.base import Backend, ChatRequest, Completion

__all__ = ["Fault", "PromptCounter", "Reply", "ScriptedBackend", "ScriptedServer", "call_step", "count_words", "echo", "prompt_kind",
           "reuse_script", "run_agentkit", "template_of"]


async def run_agentkit(*args: str, timeout: float = 300.0) -> tuple[int, str, str]:
    """Run the ``agentkit`` command line with ``args`` in a subprocess, as a user runs it (this interpreter's
    agentkit); returns ``(exit code, stdout, stderr)``. Tests drive the CLI against a ``ScriptedServer`` with it."""
    import sys

    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "agentkit.cli", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def count_words(text: str) -> int:
    """The scripted servers' tokenizer: one token per whitespace-separated word."""
    return len(text.split())


@dataclass(frozen=True)
class Reply:
    """A successful chat completion."""

    text: str
    finish_reason: str = "stop"
    delay: float = 0.0
    """Extra seconds before answering (on top of the server's latency)."""
    reasoning: str = ""
    """A reasoning model's reasoning: sent as ``reasoning_content`` or inline in ``<think>...</think>``, as the
    server's ``reasoning`` shape says, and counted in ``completion_tokens_details.reasoning_tokens``."""


@dataclass(frozen=True)
class Fault:
    """A failure to inject. Build with the class methods."""

    kind: Literal["status", "hang", "drop", "malformed", "no_choices"]
    status: int = 500
    message: str = "scripted failure"
    retry_after: float | None = None

    @classmethod
    def http(cls, status: int, message: str = "scripted failure", *, retry_after: float | None = None) -> Fault:
        """Answer with HTTP ``status`` and an OpenAI-style error body (and ``Retry-After`` if given)."""
        return cls("status", status=status, message=message, retry_after=retry_after)

    @classmethod
    def rate_limited(cls, retry_after: float = 1.0) -> Fault:
        return cls.http(429, "rate limit exceeded", retry_after=retry_after)

    @classmethod
    def hang(cls) -> Fault:
        """Never answer (the client's timeout must fire)."""
        return cls("hang")

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without answering."""
        return cls("drop")

    @classmethod
    def malformed(cls) -> Fault:
        """Answer 200 with a body that is not JSON."""
        return cls("malformed")

    @classmethod
    def no_choices(cls) -> Fault:
        """Answer 200 with valid JSON that has no choices."""
        return cls("no_choices")


Action = Reply | Fault
Script = Iterable[Action] | Callable[[dict[str, Any]], Action]


def echo(body: dict[str, Any]) -> Reply:
    """Default script: a deterministic reply that quotes the last user message."""
    last = next((m.get("content", "") for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
    return Reply(f"echo: {last}")


_KINDS = {"strategist_solve": "solve", "long_cot": "solve", "bci_plain": "solve", "strategist_reflect": "reflect",
          "strategist_extract": "extract", "bci": "bci", "critique_revise": "revise", "critique_revise_many": "revise", "pdr_refine": "refine",
          "pdr_summary": "summary", "pdr_judge": "judge", "sr_error_analysis": "error-analysis"}


def _in_order(text: str, parts: list[str]) -> bool:
    at = 0
    for part in parts:
        found = text.find(part, at)
        if found < 0:
            return False
        at = found + len(part)
    return True


def template_of(messages: Sequence[dict[str, Any]]) -> str | None:
    """Which of agentkit's prompt templates rendered ``messages``: the template whose fixed text (everything
    but its ``{fields}``) appears, in order, in the system and user parts; the most specific one when several
    do. For requests that carry no ``CallContext`` (HTTP)."""
    from importlib import resources

    from agentkit.prompts import _FIELD, load_prompt

    system = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
    user = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")
    best: tuple[int, str] | None = None
    for entry in resources.files("agentkit.prompts").iterdir():
        if not entry.name.endswith(".txt"):
            continue
        template = load_prompt(entry.name.removesuffix(".txt"))
        parts = [(system, [p for p in _FIELD.split(template.system)[::2] if p.strip()]),
                 (user, [p for p in _FIELD.split(template.user)[::2] if p.strip()])]
        if all(_in_order(text, fixed) for text, fixed in parts):
            size = sum(len(p) for _, fixed in parts for p in fixed)
            if best is None or size > best[0]:
                best = (size, template.name)
    return best[1] if best else None


def call_step(body: dict[str, Any]) -> tuple[str, str]:
    """A request's ``(role, step)``: from its ``CallContext`` (``ScriptedBackend`` bodies carry it), else the
    template that rendered it (``ScriptedServer``: HTTP carries no context; role is then empty)."""
    context = body.get("context") or {}
    if context.get("step"):
        return str(context.get("role", "")), str(context["step"])
    return str(context.get("role", "")), template_of(body.get("messages", [])) or ""


def prompt_kind(body: dict[str, Any]) -> str:
    """Which step of agentkit's methods a request is: ``solve``, ``reflect``, ``extract``, ``bci``, ``revise``
    (critique-and-revise), ``refine``, ``summary``, ``judge`` or ``error-analysis``; chosen by the call's
    ``CallContext`` step (the template it renders), never by the prompt's wording, so editing a prompt does not
    change which reply a script gives."""
    return _KINDS.get(call_step(body)[1], "solve")


def reuse_script(behaviors: dict[str, str], *, answer: str = "9", extraction: str | None = None
                 ) -> Callable[[dict[str, Any]], Reply]:
    """A script that plays every role of metacognitive reuse: solves with ``\\boxed{answer}``, reflects,
    extracts ``behaviors`` as fenced JSON (or ``extraction`` verbatim), answers BCI prompts citing the first
    behavior, and revises. For testing recipes and pipelines built on curation, BCI and self-improvement."""
    first = next(iter(behaviors), "behavior_none")
    fenced = extraction if extraction is not None else "Here you go:\n```json\n" + json.dumps(behaviors) + "\n```"
    replies = {
        "reflect": f"The answer is right; {first} would have shortened it.",
        "extract": fenced,
        "bci": f"Using {first}: the steps give \\boxed{{{answer}}}",
        "revise": f"The earlier steps hold. \\boxed{{{answer}}}",
        "solve": f"Step by step, the result is \\boxed{{{answer}}}",
    }
    return lambda body: Reply(replies[prompt_kind(body)])


def _context(request: ChatRequest) -> dict[str, Any] | None:
    """The call's ``CallContext`` as a dict (``step`` only when set)."""
    if request.context is None:
        return None
    return request.context.model_dump(exclude=None if request.context.step else {"step"})


def _usage_prompt(messages: Sequence[dict[str, Any]]) -> int:
    return sum(count_words(str(m.get("content", ""))) for m in messages)


def _truncate_reasoning(reasoning: str, text: str, max_tokens: int | None) -> tuple[str, str, bool]:
    """Reasoning and text cut together to ``max_tokens`` words (the reasoning comes first, as it is generated)."""
    thought, cut = _truncate(reasoning, max_tokens)
    if cut:
        return thought, "", True
    rest = None if max_tokens is None else max_tokens - count_words(thought)
    final, cut = _truncate(text, rest)
    return thought, final, cut


def _truncate(text: str, max_tokens: int | None) -> tuple[str, bool]:
    words = text.split()
    if max_tokens is not None and len(words) > max_tokens:
        return " ".join(words[:max_tokens]), True
    return text, False


PromptCounter = Callable[[Sequence[dict[str, Any]]], int]
"""How a scripted server counts a request's prompt tokens (its messages as JSON dicts)."""


class _Scripted:
    """What the server and the backend share: script stepping and bookkeeping."""

    def __init__(self, script: Script | None, latency: float, prompt_tokens: PromptCounter | None = None,
                 tokenize: bool = True) -> None:
        self.set_script(script)
        self.latency = latency
        self.count_prompt: PromptCounter = prompt_tokens or _usage_prompt
        """The prompt tokenizer (default: one token per word of every message)."""
        self.tokenize = tokenize
        """Whether clients can count prompts exactly (``/tokenize`` on the server, ``count_prompt_tokens`` on
        the backend); off, they must estimate, as against a server with an unknown tokenizer."""
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.billed = 0
        """Tokens (prompt + completion) of every successful reply sent: what a real server would bill."""

    def set_script(self, script: Script | None) -> None:
        """Replace the script: a list of actions (then echo replies once it runs out), a callable that
        decides per request body, or None for echo replies."""
        if script is None:
            self._next: Callable[[dict[str, Any]], Action] = echo
        elif callable(script):
            self._next = script
        else:
            iterator = iter(list(script))
            self._next = lambda body: next(iterator, None) or echo(body)

    def step(self, body: dict[str, Any]) -> Action:
        self.requests.append(body)
        return self._next(body)


class ScriptedServer(_Scripted):
    """An OpenAI-compatible ``/v1/chat/completions`` server on 127.0.0.1 that follows a script.

    Example::

        async with ScriptedServer([Fault.rate_limited(0.1), Reply("42")]) as server:
            backend = with_middleware(OpenAICompatible("m", base_url=server.base_url))
            [completion] = await backend.chat("6 x 7?")
    """

    def __init__(self, script: Script | None = None, *, latency: float = 0.0, model: str = "scripted",
                 reasoning: Literal["field", "inline"] = "field", prompt_tokens: PromptCounter | None = None,
                 tokenize: bool = True) -> None:
        super().__init__(script, latency, prompt_tokens, tokenize)
        self.model = model
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
            return web.json_response(self._completion(body, replies))
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

