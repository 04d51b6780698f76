"""An OpenAI-compatible endpoint in front of any backend: every registered method behind a model name.

``agentkit proxy --backend SPEC [--store HANDBOOK] [--port P]`` serves ``POST /v1/chat/completions``,
``GET /v1/models`` and ``GET /v1/models/{id}`` (the legacy ``/v1/completions`` answers 404 in OpenAI's error
shape, pointing to chat completions). Any OpenAI client gets a test-time method by changing the model name:

- ``MODEL`` (the backend's model, as ``/v1/models`` lists it): a pass-through. The request is relayed to the
  backend's HTTP endpoint (``Backend.endpoint()``) as the client sent it, only ``model`` set to the upstream's name
  and the ``agentkit`` block removed: every OpenAI and vLLM field reaches the upstream unchanged, an absent one
  stays absent (the upstream's default applies), and ``stream: true`` relays the upstream's event stream chunk by
  chunk. An upstream error keeps its status (401/403/404 from the upstream, the proxy's own configuration, are
  502). A backend without an endpoint is called as one typed request, which refuses by name the fields it cannot
  send (``TYPED_ARGUMENTS``).
- ``METHOD/MODEL`` or ``METHOD`` (``pdr/MODEL``, ``self-consistency/MODEL``, ``bci/MODEL``, any name in the
  method registry, user plugins included): the method runs on the backend. Its problem is the request's user
  message (system or developer messages before it are put in front of it); a method request carries one user
  message and no assistant turns.
- An ``agentkit`` object in the body (``extra_body={"agentkit": {...}}`` with the ``openai`` client) chooses
  the method (``method``), its parameters (``params``, validated by the method's parameter model: an unknown
  or out-of-range parameter is a 400 naming it), a sequential budget (``budget``: B_seq, which the method
  plans its calls from) and the problem's name (``problem_id``: seeds derive from it and ``seed``, so a run of
  ``agentkit solve`` or of a sweep is reproduced by sending its problem id and seed; by default the name is a
  hash of the problem text, so the same request with the same seed is sampled with the same seeds).

A method request honours ``max_tokens``/``max_completion_tokens`` as OpenAI does, as a bound on every token
generated for the reply (the method's hidden drafts and workspaces included: ``Proxy.params_of``), ``temperature``
(its answering calls'), ``seed``, ``n`` = 1 and ``stream``; any other field that asks for something (``top_p``,
``stop``, penalties, ``logit_bias``, ``reasoning_effort``, vLLM's extras, tools, ...) is a 400 naming it, and the
harmless ones OpenAI clients send (``user``, ``metadata``, ``store``, ...) are ignored (``refused_arguments``).

Replies are standard chat completions: the method's final text as the message, ``usage`` counting every
token the method spent (all calls; ``completion_tokens_details.reasoning_tokens`` the ones the client does not
see), and an ``agentkit`` block: method, answer, ``B_seq``, ``B_total``, calls, rounds, behaviors retrieved and
cited. ``stream: true`` sends the final answer as Server-Sent Events chunks (and, with
``stream_options.include_usage``, ``"usage": null`` on every chunk and then the usage chunk); while a method
runs, each finished draft and workspace is announced as an SSE *comment* line, ``: agentkit {"event": "draft",
"round": 1, ...}``, which SSE clients (the ``openai`` SDK included) ignore by the SSE specification, with a
``: keep-alive`` comment every 15 s.

Rules: ``/v1`` routes need ``Authorization: Bearer <token>`` (401); bodies over ``max_body`` bytes get 413; at
most ``concurrency`` requests run at once and ``max_queue`` wait, the rest get 429 with ``Retry-After``; every
error is OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}`` (400 invalid input or a field a
method does not honour, 404 unknown model, an upstream 4xx with its status, 502/504 when the backend failed or
timed out). A client that disconnects cancels its method run, or its relayed request, and the backend calls in
flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentkit.backends.base import Backend, ChatMessage, ChatRequest, Completion, Endpoint
from agentkit.backends.openai_compat import connection_error, error_from_reply, timeout_error
from agentkit.bus import Bus, Subscription
from agentkit.errors import (
    AgentkitError,
    BackendError,
    BackendRequestError,
    BudgetExceeded,
    ConfigError,
    LimitExceeded,
    RequestTimeout,
    validation_problems,
)
from agentkit.faces.web import UNAUTHORIZED, face_middleware, http_error, start_site
from agentkit.ledger import Budget, Ledger
from agentkit.log import get_logger
from agentkit.memory.store import BehaviorStore
from agentkit.messages import DistillResult, Draft, Message, Problem
from agentkit.methods import METHODS, Method, MethodResult, get_method, method_names, result_summary, run_method
from agentkit.registry import MAX_CALL_TOKENS

__all__ = ["DEFAULT_MAX_BODY", "Proxy", "create_proxy_app", "run_proxy_runner"]

_log = get_logger(__name__)
DEFAULT_MAX_BODY = 4 << 20
KEEPALIVE_S = 15.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

IGNORED_ARGUMENTS = frozenset({
    "user", "metadata", "store", "service_tier", "parallel_tool_calls", "safety_identifier", "prompt_cache_key",
})
"""Arguments OpenAI clients send that change nothing a method does: accepted and ignored by methods (a
pass-through forwards them like everything else)."""
METHOD_ARGUMENTS = frozenset({
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "seed", "n", "stream",
    "stream_options", "agentkit",
})
"""The arguments a method request honours (``n`` only as 1); any other with a value that asks for something is
refused with a 400 naming it (see ``refused_arguments``)."""
TYPED_ARGUMENTS = METHOD_ARGUMENTS | {"top_p", "stop"}
"""What a pass-through to a backend without an HTTP endpoint can send (``ChatRequest``'s fields)."""
_HARMLESS: dict[str, tuple[Any, ...]] = {
    "top_p": (1, 1.0), "presence_penalty": (0, 0.0), "frequency_penalty": (0, 0.0), "repetition_penalty": (1, 1.0),
    "top_k": (-1, 0), "min_p": (0, 0.0), "tool_choice": ("none",), "modalities": (["text"],),
    "response_format": ({"type": "text"},), "n": (1,),
}
"""Values that ask for nothing beyond a plain completion (the fields' defaults): accepted where the field is not
honoured. ``None``, ``False`` and empty values are harmless for every field."""


def refused_arguments(given: dict[str, Any], honoured: frozenset[str]) -> list[str]:
    """The arguments of ``given`` (a request body) that ask for something ``honoured`` does not cover, in order."""
    return [name for name, value in given.items()
            if name not in honoured and name not in IGNORED_ARGUMENTS
            and value not in (None, False, [], {}, "") and value not in _HARMLESS.get(name, ())]


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[_Part] | None = None


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class AgentkitOptions(BaseModel):
    """The ``agentkit`` object of a request body."""

    model_config = ConfigDict(extra="forbid")
    method: str | None = Field(default=None, max_length=128)
    """A registered method (else the model name's ``METHOD/`` prefix, else a plain pass-through)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """The method's parameters (its parameter model validates them)."""
    budget: int | None = Field(default=None, ge=1, le=100_000_000)
    """A sequential budget, B_seq: the method plans its per-call caps from it."""
    problem_id: str | None = Field(default=None, min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._:\-]+$")
    """Names the problem. Every sampled call's seed derives from it and the request's ``seed``, so the same
    id and seed reproduce a run of ``agentkit solve`` or of a sweep on that problem (e.g. ``gsm8k-test-0``).
    Default: a hash of the problem text, so the same request with the same seed gets the same seeds."""


class ChatBody(BaseModel):
    """A chat-completions request as the proxy reads it."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=512)
    messages: list[_Message] = Field(min_length=1, max_length=4096)
    max_tokens: int | None = Field(default=None, ge=1, le=10_000_000)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=10_000_000)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1, le=128)
    """A pass-through forwards it; a method request takes 1 only."""
    stream: bool | None = False
    stream_options: _StreamOptions | None = None
    agentkit: AgentkitOptions | None = None


class ApiError(Exception):
    """An error to answer in OpenAI's format."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}

    def response(self) -> web.Response:
        return web.json_response(self.body(), status=self.status, headers=self.headers)


def _invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def _retry_after(exc: BackendError) -> dict[str, str] | None:
    """The backend's ``Retry-After``, passed on to the client (whole seconds, at least 1)."""
    return {"Retry-After": str(max(1, round(exc.retry_after)))} if exc.retry_after else None


def error_for(exc: BaseException) -> ApiError:
    """The OpenAI-format error for an exception a request raised (never a 500 for agentkit's own errors)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, BudgetExceeded):
        return _invalid(str(exc), "agentkit.budget", "budget_exceeded")
    if isinstance(exc, LimitExceeded):
        param = {"budget": "agentkit.budget", "max_tokens": "max_tokens"}.get(exc.param, f"agentkit.params.{exc.param}")
        return _invalid(str(exc), param, "limit_exceeded")
    if isinstance(exc, ConfigError):
        return _invalid(str(exc))
    if isinstance(exc, BackendRequestError):
        # The client's request as the backend judged it (400, 413, 422...) keeps its status; 401/403/404 are the
        # proxy's own configuration (its key, its model), not the client's fault.
        if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (401, 403, 404):
            return ApiError(exc.status, f"the backend refused the request: {exc}", code="upstream_refused")
        return ApiError(502, f"the backend refused the request: {exc}", kind="api_error", code="upstream_refused")
    if isinstance(exc, BackendError) and exc.status in (408, 409, 429):
        return ApiError(exc.status, f"the backend is busy: {exc}", kind="rate_limit_error" if exc.status == 429
                        else "api_error", code="upstream_busy", headers=_retry_after(exc))
    if isinstance(exc, RequestTimeout) or (isinstance(exc, BackendError) and "timeout" in exc.cause):
        return ApiError(504, f"the backend timed out: {exc}", kind="api_error", code="upstream_timeout")
    if isinstance(exc, BackendError):
        return ApiError(502, f"the backend failed: {exc}", kind="api_error", code="upstream_unavailable",
                        headers=_retry_after(exc))
    if isinstance(exc, AgentkitError):
        return ApiError(502, f"the method failed: {exc}", kind="api_error", code="method_failed")
    return ApiError(500, "internal error (a bug in agentkit: the server log has the traceback)", kind="server_error")


def _text(message: _Message, index: int) -> str:
    if message.content is None:
        raise _invalid(f"messages[{index}] has no content (tool calls are not supported)", f"messages.{index}.content")
    if isinstance(message.content, str):
        return message.content
    texts = []
    for j, part in enumerate(message.content):
        if part.type != "text" or part.text is None:
            raise _invalid(f"messages[{index}].content[{j}] is {part.type!r}: only text parts are supported",
                           f"messages.{index}.content.{j}", "unsupported_content")
        texts.append(part.text)
    return "".join(texts)


def _check_arguments(body: ChatBody, data: dict[str, Any], honoured: frozenset[str], what: str) -> None:
    """Refuse, with one 400 naming them all, the arguments ``honoured`` does not cover (``refused_arguments``)."""
    refused = refused_arguments(data, honoured)
    if refused:
        names = ", ".join(refused)
        them = "it" if len(refused) == 1 else "them"
        raise _invalid(f"{what} does not honour {names} (the README's proxy table lists what each path "
                       f"accepts); leave {them} out", refused[0][:256], "unsupported_parameter")
    if body.max_tokens is not None and body.max_completion_tokens is not None \
            and body.max_tokens != body.max_completion_tokens:
        raise _invalid("max_tokens and max_completion_tokens disagree; send one", "max_tokens")
    for i, m in enumerate(body.messages):
        if m.role == "tool":
            raise _invalid(f"messages[{i}] is a tool message: {what} takes none", f"messages.{i}.role",
                           "unsupported_parameter")


_CHAT_ROLES: dict[str, Literal["system", "user", "assistant"]] = {
    "system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def _stops(stop: str | list[str] | None) -> tuple[str, ...]:
    stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
    if len(stops) > 4 or any(not s for s in stops):
        raise _invalid("stop takes at most 4 non-empty strings", "stop")
    return stops


def _finish(reason: str) -> str:
    return "length" if reason == "length" else "stop"


class Proxy:
    """The proxy's state: the backend, the handbook, the admission limits and one bus for every method run."""

    def __init__(self, backend: Backend, *, handbook: BehaviorStore | None = None, token: str,
                 concurrency: int = 64, max_queue: int = 1024, model_name: str | None = None,
                 relay_timeout: float = 600.0) -> None:
        if not token:
            raise ConfigError("the proxy needs a bearer token")
        if concurrency < 1 or max_queue < 0:
            raise ConfigError("concurrency must be >= 1 and max_queue >= 0")
        self.backend, self.handbook, self.token = backend, handbook, token
        self.model_name = model_name or backend.model or backend.name
        self.concurrency, self.max_queue = concurrency, max_queue
        self._slots = asyncio.Semaphore(concurrency)
        self._waiting = 0
        self.bus = Bus(name="proxy")
        self.relay_timeout = relay_timeout
        self._endpoint: Endpoint | Literal[False] | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- admission ----------------------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def admitted(self) -> Any:
        if self._slots.locked() and self._waiting >= self.max_queue:
            raise ApiError(429, f"the proxy is at its limit ({self.concurrency} running, {self._waiting} waiting); "
                                "retry later", kind="rate_limit_error", code="rate_limit_exceeded",
                           headers={"Retry-After": "1"})
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._slots.release()

    # -- routing a request --------------------------------------------------------------------------------------
    def models(self) -> list[dict[str, Any]]:
        rows = [{"id": self.model_name, "object": "model", "created": 0, "owned_by": "agentkit",
                 "agentkit": {"method": None, "summary": "pass-through: one call to the backend"}}]
        for name in method_names():
            method = METHODS[name]
            rows.append({"id": f"{name}/{self.model_name}", "object": "model", "created": 0, "owned_by": "agentkit",
                         "agentkit": {"method": name, "summary": method.summary,
                                      "parameters": method.params_model.model_json_schema()}})
        return rows

    def resolve(self, body: ChatBody) -> Method[Any] | None:
        """The method a request asks for (None: a pass-through); a model this proxy does not serve is a 404."""
        model = body.model
        head, sep, rest = model.partition("/")
        method_name: str | None = None
        known = method_names()  # the built-ins load on first use
        if sep and head in known:
            method_name, model = head, rest
        elif model in known:
            method_name, model = model, self.model_name
        asked = body.agentkit.method if body.agentkit else None
        if asked is not None:
            if method_name is not None and asked != method_name:
                raise _invalid(f"the model names method {method_name!r} but agentkit.method is {asked!r}",
                               "agentkit.method")
            method_name = asked
        if model != self.model_name:
            raise ApiError(404, f"the model {body.model!r} does not exist here: this proxy serves "
                                f"{self.model_name!r}, as itself or as METHOD/{self.model_name} (GET /v1/models)",
                           param="model", code="model_not_found")
        if method_name is None:
            if body.agentkit and (body.agentkit.params or body.agentkit.budget is not None
                                  or body.agentkit.problem_id is not None):
                raise _invalid("agentkit.params, agentkit.budget and agentkit.problem_id need a method "
                               "(agentkit.method or a METHOD/ model name)", "agentkit")
            return None
        try:
            return get_method(method_name)
        except ConfigError as exc:
            raise ApiError(404, str(exc), param="agentkit.method" if asked else "model",
                           code="model_not_found") from None

    def problem_of(self, body: ChatBody) -> Problem:
        context, user = [], None
        for i, m in enumerate(body.messages):
            if m.role in ("system", "developer"):
                if user is not None:
                    raise _invalid("a method request takes its system messages before the user message",
                                   f"messages.{i}")
                context.append(_text(m, i))
            elif m.role == "user":
                if user is not None:
                    raise _invalid("a method request takes one user message (the problem); multi-turn "
                                   "conversations go to the plain model", f"messages.{i}")
                user = _text(m, i)
            else:
                raise _invalid("a method request takes no assistant turns", f"messages.{i}.role")
        if user is None or not user.strip():
            raise _invalid("a method request needs a non-empty user message (the problem)", "messages")
        text = "\n\n".join([*context, user]) if context else user
        given = body.agentkit.problem_id if body.agentkit else None
        problem_id = given or f"proxy-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
        # The run id is the request's own (it routes the run's messages); the problem id is what seeds derive from.
        return Problem(problem_id=problem_id, text=text, run_id=f"proxy-{uuid.uuid4().hex[:16]}", dataset="proxy")

    def params_of(self, method: Method[Any], body: ChatBody, problem: Problem) -> Any:
        """The method's parameters for ``body``: ``agentkit.params`` validated, ``temperature`` as the answering
        calls' temperature, and the request's ``max_tokens`` (or ``max_completion_tokens``), the bound on the
        completion tokens the reply is billed for, turned into each answering call's cap so that every call at its
        cap fits it (``Method.cap_for_output``); an explicit ``agentkit.params.max_tokens`` (the per-call cap)
        can only lower that. With ``agentkit.budget`` (B_seq) the calls are planned from the budget instead, and
        the bound must cover every call at its planned cap (else a 400 saying what it would need), and the ledger
        enforces it call by call (``run_method``)."""
        given = dict(body.agentkit.params) if body.agentkit else {}
        if "store" in given:
            raise _invalid("the handbook is the proxy's (agentkit proxy --store); params.store is not accepted",
                           "agentkit.params.store")
        if body.temperature is not None:
            given.setdefault("temperature", body.temperature)
        params = self._validated(method, given)
        budget = body.agentkit.budget if body.agentkit else None
        bound = self.output_bound(body)
        if bound is not None and budget is None:
            most = params.max_tokens if "max_tokens" in given else MAX_CALL_TOKENS
            params = params.model_copy(update={"max_tokens": method.cap_for_output(params, bound, most=most)})
        elif bound is not None and budget is not None:
            # The budget plans the calls; a bound they could overrun is refused now, not discovered mid-run.
            planned = max(1, method.plan(problem, params, budget).max_tokens)
            needed = method.generated(params, planned)
            if needed > bound:
                raise _invalid(
                    f"max_tokens={bound} cannot cover agentkit.budget={budget} for method {method.name!r}: the "
                    f"budget plans answering calls of {planned} tokens, up to {needed} completion tokens in all; "
                    f"raise max_tokens to {needed} or lower the budget", "max_tokens", "limit_exceeded")
        method.check_limits(params, budget)  # before it waits for a slot
        return params

    @staticmethod
    def _validated(method: Method[Any], given: dict[str, Any]) -> Any:
        try:
            return method.params_model.model_validate(given)
        except ValidationError as exc:
            problems = [(f"agentkit.params.{f}" if f != "agentkit.params" else f, r)
                        for f, r in validation_problems(exc, root="agentkit.params")]
            raise _invalid(f"{method.name}: " + "; ".join(f"{f}: {r}" for f, r in problems),
                           problems[0][0] if problems else "agentkit.params") from None

    @staticmethod
    def output_bound(body: ChatBody) -> int | None:
        """The request's bound on billed completion tokens (``max_completion_tokens``, else ``max_tokens``)."""
        return body.max_completion_tokens or body.max_tokens

    # -- running ------------------------------------------------------------------------------------------------
    async def run_method(self, method: Method[Any], params: Any, body: ChatBody, problem: Problem) -> MethodResult:
        """Run ``method`` with ``params`` (``params_of``) on the request's problem (``agentkit.methods.run_method``,
        the path every face takes), its ledger bounding the run's output tokens by the request's ``max_tokens``."""
        budget = body.agentkit.budget if body.agentkit else None
        seed = body.seed if body.seed is not None else 0
        ledger = Ledger(Budget(output=self.output_bound(body)))
        return await run_method(method, problem, self.backend, params=params, budget=budget, seed=seed,
                                handbook=self.handbook, bus=self.bus, ledger=ledger)

    async def endpoint(self) -> Endpoint | None:
        """The backend's HTTP endpoint that pass-through requests are relayed to (None: sent as typed calls)."""
        if self._endpoint is None:
            found = await self.backend.endpoint()
            self._endpoint = found if found is not None else False
        return self._endpoint or None

    def _relay_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No pool limit (admission is the proxy's), a read timeout per chunk rather than per reply (a long
            # stream is not a hung one).
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=self.relay_timeout),
                skip_auto_headers=("User-Agent",))  # a compressed upstream reply is relayed decompressed
        return self._session

    async def relay(self, request: web.Request, endpoint: Endpoint, data: dict[str, Any], stream: bool
                    ) -> web.StreamResponse:
        """Forward a pass-through request to ``endpoint`` as the client sent it (every field but ``agentkit``,
        ``model`` set to the upstream's name, the backend's ``extra_body`` under the client's fields) and its
        reply back as the upstream sent it: the JSON body, or the event stream chunk by chunk as it arrives. An
        upstream error keeps its status (4xx but 401/403/404, which are the proxy's configuration: 502)."""
        payload = {**endpoint.extra_body, **data, "model": endpoint.model}
        payload.pop("agentkit", None)
        where = f"the backend at {endpoint.base_url}"
        headers = {"Authorization": f"Bearer {endpoint.api_key}", "Content-Type": "application/json"}
        try:
            async with self._relay_session().post(endpoint.chat_url, data=json.dumps(payload).encode(),
                                                  headers=headers) as reply:
                if reply.status >= 400:
                    raise error_from_reply(reply.status, await reply.read(), reply.headers, where)
                if not stream:
                    return web.Response(body=await reply.read(), status=reply.status,
                                        content_type=reply.content_type or "application/json")
                response = web.StreamResponse(status=reply.status, headers={
                    "Content-Type": reply.headers.get("Content-Type", "text/event-stream"),
                    "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
                await response.prepare(request)
                try:
                    async for piece in reply.content.iter_any():
                        await response.write(piece)
                except (aiohttp.ClientError, TimeoutError) as exc:  # the upstream broke off mid-stream
                    failed = ApiError(502, f"{where} broke off the stream: {type(exc).__name__}", kind="api_error",
                                      code="upstream_unavailable")
                    await response.write(f"data: {json.dumps(failed.body())}\n\ndata: [DONE]\n\n".encode())
                return response
        except TimeoutError:
            raise timeout_error(where) from None
        except aiohttp.ClientError as exc:
            raise connection_error(where, str(exc) or type(exc).__name__) from None

    async def pass_through(self, body: ChatBody) -> Completion:
        """A pass-through as one typed call (a backend without an HTTP endpoint; ``TYPED_ARGUMENTS`` only)."""
        # Everything ChatRequest checks, ChatBody has checked already (roles, with tool messages refused by
        # _check_arguments; ranges; stops by _stops), so the request is built without validating it twice.
        messages = tuple(ChatMessage.model_construct(role=_CHAT_ROLES[m.role], content=_text(m, i))
                         for i, m in enumerate(body.messages))
        request = ChatRequest.model_construct(
            messages=messages, max_tokens=body.max_completion_tokens or body.max_tokens,
            temperature=1.0 if body.temperature is None else body.temperature,  # OpenAI's default
            top_p=body.top_p, seed=body.seed, stop=_stops(body.stop), n=1, context=None)
        [completion] = await self.backend.complete(request)
        return completion

    def completion_body(self, body: ChatBody, rid: str, text: str, finish: str, usage: dict[str, Any],
                        extra: dict[str, Any] | None, reasoning: str = "") -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if reasoning:
            message["reasoning_content"] = reasoning
        out = {"id": rid, "object": "chat.completion", "created": int(time.time()), "model": body.model,
               "choices": [{"index": 0, "message": message, "finish_reason": _finish(finish), "logprobs": None}],
               "usage": usage}
        if extra is not None:
            out["agentkit"] = extra
        return out


def _usage(input_tokens: int, output_tokens: int, reasoning_tokens: int = 0) -> dict[str, Any]:
    return {"prompt_tokens": input_tokens, "completion_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
            "completion_tokens_details": {"reasoning_tokens": reasoning_tokens}}


def method_summary(method: Method[Any], result: MethodResult) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(usage, agentkit block)`` of a method's result: every token of every call, and the run's summary
    (``agentkit.methods.result_summary``, the same for every face)."""
    block = result_summary(method.name, result)
    # reasoning_tokens: what the client paid for and does not see (drafts, workspaces, the answer's own reasoning).
    usage = _usage(block["input_tokens"], block["output_tokens"], block["hidden_output_tokens"])
    return usage, block


# -- HTTP -------------------------------------------------------------------------------------------------------

PROXY_KEY: web.AppKey[Proxy] = web.AppKey("proxy", Proxy)


def _errors(exc: BaseException) -> web.StreamResponse | None:
    """The proxy's error mapper: every failure in OpenAI's error shape (``error_for``; aiohttp's own 4xx too),
    a bug logged with its traceback."""
    if isinstance(exc, web.HTTPException):  # aiohttp's own: 404 route, 405, 413 body too large
        failed = http_error(exc)
        if failed is None:
            return None
        status, message = failed
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return ApiError(status, message, code="request_too_large" if status == 413 else None,
                        headers=allow).response()
    if not isinstance(exc, (ApiError, AgentkitError)):
        _log.exception("proxy request failed", error=repr(exc))
    return error_for(exc).response()


async def _health(request: web.Request) -> web.Response:
    proxy = request.app[PROXY_KEY]
    return web.json_response({"status": "ok", "model": proxy.model_name, "methods": method_names()})


async def _models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": request.app[PROXY_KEY].models()})


async def _model(request: web.Request) -> web.Response:
    """``GET /v1/models/{id}`` (``client.models.retrieve``): one entry of the list; ids contain ``/``."""
    wanted = request.match_info["id"]
    for row in request.app[PROXY_KEY].models():
        if row["id"] == wanted:
            return web.json_response(row)
    raise ApiError(404, f"the model {wanted!r} does not exist here (GET /v1/models lists them)", param="model",
                   code="model_not_found")


async def _legacy_completions(request: web.Request) -> web.Response:
    raise ApiError(404, "this proxy serves chat completions only: POST /v1/chat/completions (the legacy "
                        "/v1/completions endpoint is not served)", code="unsupported_endpoint")


async def _read_body(request: web.Request) -> tuple[ChatBody, dict[str, Any]]:
    """The request body, validated (``ChatBody``), and as the client sent it (what a relay forwards)."""
    raw = await request.read()  # aiohttp raises 413 past client_max_size
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, RecursionError):  # invalid JSON or UTF-8; nesting deeper than the parser goes
        raise _invalid("the request body is not valid JSON (UTF-8, nested at most about 1,000 levels)") from None
    if not isinstance(data, dict):
        raise _invalid("the request body must be a JSON object")
    try:
        body = ChatBody.model_validate(data)
    except ValidationError as exc:
        problems = validation_problems(exc, root="body")
        message = "; ".join(f"{f}: {r}" for f, r in problems) or "invalid request body"
        raise _invalid(message, problems[0][0].removeprefix("body.") if problems else None) from None
    return body, data


async def _chat(request: web.Request) -> web.StreamResponse:
    proxy = request.app[PROXY_KEY]
    body, data = await _read_body(request)
    method = proxy.resolve(body)
    endpoint: Endpoint | None = None
    if method is not None:
        _check_arguments(body, data, METHOD_ARGUMENTS, f"method {method.name!r}")
        if body.n not in (None, 1):
            raise _invalid("n must be 1 with a method (ask a method such as self-consistency for several samples)",
                           "n", "unsupported_parameter")
    else:
        endpoint = await proxy.endpoint()
        if endpoint is None:
            _check_arguments(body, data, TYPED_ARGUMENTS, f"the backend {proxy.backend.name!r} (no HTTP endpoint)")
    problem = proxy.problem_of(body) if method is not None else None
    # A bad parameter is a 400 before the request waits for a slot.
    params = proxy.params_of(method, body, problem) if method is not None and problem is not None else None
    rid = f"chatcmpl-agentkit-{uuid.uuid4().hex}"
    async with proxy.admitted():
        if endpoint is not None:
            return await proxy.relay(request, endpoint, data, bool(body.stream))
        if body.stream:
            return await _stream(request, proxy, body, method, params, problem, rid)
        if method is None:
            c = await proxy.pass_through(body)
            return web.json_response(proxy.completion_body(
                body, rid, c.text, c.finish_reason, _usage(c.input_tokens, c.output_tokens, c.reasoning_tokens),
                None, c.reasoning))
        assert problem is not None
        result = await proxy.run_method(method, params, body, problem)
        usage, block = method_summary(method, result)
        return web.json_response(proxy.completion_body(body, rid, result.text, result.solution.finish_reason,
                                                       usage, block))


async def _stream(request: web.Request, proxy: Proxy, body: ChatBody, method: Method[Any] | None, params: Any,
                  problem: Problem | None, rid: str) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    created = int(time.time())
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    subscription: Subscription | None = None
    if method is not None and problem is not None:
        run_id = problem.run_id

        def announce(message: Message) -> None:
            if isinstance(message, Draft):
                events.put_nowait({"event": "draft", "round": message.round, "branch": message.branch,
                                   "answer": message.answer, "finish_reason": message.finish_reason,
                                   "output_tokens": message.usage.output_tokens})
            elif isinstance(message, DistillResult):
                for workspace in message.workspaces:
                    events.put_nowait({"event": "workspace", "round": message.round, "tokens": workspace.tokens,
                                       "drafts_seen": workspace.drafts_seen})

        subscription = proxy.bus.subscribe(Message, announce, predicate=lambda m: isinstance(m, (Draft, DistillResult)),
                                           name=f"proxy-stream:{run_id}", run_id=run_id)
        task: asyncio.Task[Any] = asyncio.create_task(proxy.run_method(method, params, body, problem))
    else:
        task = asyncio.create_task(proxy.pass_through(body))

    usage_asked = body.stream_options is not None and body.stream_options.include_usage

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        # As OpenAI streams: with include_usage every chunk carries "usage": null until the usage chunk.
        data = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": body.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
                **({"usage": None} if usage_asked else {}), **extra}
        return f"data: {json.dumps(data)}\n\n".encode()

    try:
        await response.write(chunk({"role": "assistant", "content": ""}))
        while not task.done():
            getter = asyncio.create_task(events.get())
            done, _ = await asyncio.wait({task, getter}, timeout=KEEPALIVE_S, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                await response.write(f": agentkit {json.dumps(getter.result())}\n\n".encode())
            else:
                getter.cancel()
                if not done:
                    await response.write(b": keep-alive\n\n")
        while not events.empty():
            await response.write(f": agentkit {json.dumps(events.get_nowait())}\n\n".encode())
        try:
            outcome = task.result()
        except Exception as exc:  # the run failed after the stream began: an error event, as OpenAI sends
            error = error_for(exc)
            if error.status >= 500 and not isinstance(exc, AgentkitError):
                _log.error("proxy request failed", error=repr(exc))
            await response.write(f"data: {json.dumps(error.body())}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
            return response
        if isinstance(outcome, Completion):
            text, finish = outcome.text, outcome.finish_reason
            usage, block = _usage(outcome.input_tokens, outcome.output_tokens, outcome.reasoning_tokens), None
            if outcome.reasoning:
                await response.write(chunk({"reasoning_content": outcome.reasoning}))
        else:
            assert method is not None
            text, finish = outcome.text, outcome.solution.finish_reason
            usage, block = method_summary(method, outcome)
        for start in range(0, len(text), 512):
            await response.write(chunk({"content": text[start:start + 512]}))
        extra = {"agentkit": block} if block is not None else {}
        await response.write(chunk({}, _finish(finish), **extra))
        if body.stream_options is not None and body.stream_options.include_usage:
            await response.write(f"data: {json.dumps({'id': rid, 'object': 'chat.completion.chunk', 'created': created, 'model': body.model, 'choices': [], 'usage': usage})}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response
    finally:
        if not task.done():  # the client went away (or the handler was cancelled): stop the run and its calls
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if subscription is not None and not proxy.bus.closed:
            await proxy.bus.unsubscribe(subscription)


def create_proxy_app(proxy: Proxy, *, max_body: int = DEFAULT_MAX_BODY, close_backend: bool = True
                     ) -> web.Application:
    """The aiohttp application serving ``proxy``; on clean-up it closes the proxy's bus (and, with
    ``close_backend``, the backend and the handbook). Serve it with ``handler_cancellation=True``
    (``run_proxy_runner`` does) so that a client that disconnects cancels its run."""
    if max_body < 1024:
        raise ConfigError("max_body must be at least 1024 bytes")
    app = web.Application(middlewares=[face_middleware(
        token=proxy.token, unauthorized=lambda: ApiError(401, UNAUTHORIZED, code="invalid_api_key").response(),
        errors=_errors)], client_max_size=max_body)
    app[PROXY_KEY] = proxy
    app.router.add_get("/health", _health)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/v1/models/{id:.+}", _model)
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_route("*", "/v1/completions", _legacy_completions)

    async def on_cleanup(app: web.Application) -> None:
        await proxy.bus.close()
        if proxy._session is not None:
            await proxy._session.close()
        if close_backend:
            await proxy.backend.aclose()
            if proxy.handbook is not None:
                await proxy.handbook.close()

    app.on_cleanup.append(on_cleanup)
    return app


async def run_proxy_runner(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Start ``app`` (handler cancellation on) at ``host:port``; returns the runner and the base URL."""
    return await start_site(app, host, port, handler_cancellation=True)
