"""``OpenAICompatible``: any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp's server, xllamacpp).

Two transports (see the class): a lean ``aiohttp`` session for self-hosted endpoints (the default when a
``base_url`` is given) and the official ``openai`` ``AsyncOpenAI`` client for OpenAI's API, with the SDK's
own retries **off** (``max_retries=0``): retrying is the ``Retrying`` middleware's job, and two retry layers
multiply. Every failure is mapped onto agentkit's errors, the same way for both transports, so that
middleware can tell transient from permanent ones:

- 429, 408, 409 and 5xx, timeouts and connection failures -> ``BackendUnavailable`` (with ``retry_after``
  parsed from ``Retry-After`` / ``retry-after-ms`` when the server sent one);
- a 2xx that is not a chat completion (bad JSON, no choices) -> ``MalformedResponse``;
- any other 4xx -> ``BackendRequestError`` carrying the server's own message.

``n > 1``: when ``supports_n`` is true (vLLM, OpenAI) one request asks for ``n`` choices, the server shares
the prompt's prefill, and the reported completion tokens are apportioned over the choices by text length
(flagged ``usage_estimated``). Otherwise (llama.cpp servers reject or miscount ``n``) the backend sends
``n`` concurrent single-choice requests with seeds ``seed + i``.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import json
import time
from typing import Any

import aiohttp
import openai

from agentkit.errors import (
    CONNECTION_REFUSED,
    BackendError,
    BackendRequestError,
    BackendUnavailable,
    ConfigError,
    MalformedResponse,
)
from agentkit.log import get_logger

from .base import Backend, ChatRequest, Completion, Endpoint, split_reasoning

__all__ = ["OpenAICompatible", "connection_error", "error_from_reply", "status_error", "timeout_error"]

_log = get_logger(__name__)
_TRANSIENT_STATUS = {408, 409, 429}


def _retry_after(headers: Any) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms``, then ``retry-after`` as seconds or a date)."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value)
            return max(0.0, parsed.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _server_message(exc: openai.APIStatusError) -> str:
    return _message_of(exc.body, exc.message or f"HTTP {exc.status_code}")


def _message_of(body: Any, fallback: str) -> str:
    """The server's own words from an error body (``{"error": {"message": ...}}`` and the usual variants)."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return fallback


def status_error(status: int, message: str, headers: Any, where: str) -> BackendError:
    """An HTTP error status as agentkit's error: 408/409/429/5xx are transient (with the server's
    ``Retry-After``), any other 4xx is the request's fault and carries the server's message."""
    if status in _TRANSIENT_STATUS or status >= 500:
        return BackendUnavailable(f"{where}: HTTP {status}: {message}", cause=f"HTTP {status}", status=status,
                                  retry_after=_retry_after(headers))
    return BackendRequestError(f"{where}: HTTP {status}: {message}", cause=f"HTTP {status}", status=status)


def error_from_reply(status: int, raw: bytes, headers: Any, where: str) -> BackendError:
    """An HTTP error reply (``status`` >= 400, body ``raw``) as agentkit's error (``status_error``), with the
    server's own message when its body has one."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    fallback = raw.decode("utf-8", "replace").strip()[:500] or f"HTTP {status}"
    return status_error(status, _message_of(body, fallback), headers, where)


def timeout_error(where: str) -> BackendUnavailable:
    return BackendUnavailable(f"{where}: the request timed out", cause="timeout")


def connection_error(where: str, cause: object, *, refused: bool = False) -> BackendUnavailable:
    """A failed connection; ``refused``: nothing listens at the address (retried briefly, see
    ``RetryPolicy.refused_attempts``)."""
    detail = f" ({cause})" if cause else ""
    return BackendUnavailable(f"{where}: connection {'refused' if refused else 'failed'}{detail}",
                              cause=CONNECTION_REFUSED if refused else "connection error")


def _refused(exc: BaseException) -> bool:
    """Whether a connection error means nothing listens there (ECONNREFUSED somewhere in its chain)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or getattr(seen, "errno", None) == errno.ECONNREFUSED:
            return True
        seen = seen.__cause__ or seen.__context__ if seen.__cause__ is not seen else None
    return False


def map_openai_error(exc: Exception, where: str) -> BackendError:
    """Translate an ``openai`` SDK exception into agentkit's error tree."""
    if isinstance(exc, openai.APIStatusError):
        return status_error(exc.status_code, _server_message(exc),
                            exc.response.headers if exc.response is not None else None, where)
    if isinstance(exc, openai.APITimeoutError):
        return timeout_error(where)
    if isinstance(exc, openai.APIConnectionError):
        return connection_error(where, exc.__cause__, refused=_refused(exc))
    if isinstance(exc, (openai.APIResponseValidationError, json.JSONDecodeError, ValueError, TypeError)):
        return MalformedResponse(f"{where}: malformed response: {exc}", cause="malformed response")
    return BackendError(f"{where}: {type(exc).__name__}: {exc}", cause=type(exc).__name__)


class OpenAICompatible(Backend):
    """Chat completions over HTTP, through aiohttp or the ``openai`` SDK.

    Two transports send the same JSON body and map errors the same way:

    - ``http="aiohttp"`` (the default when ``base_url`` is given: vLLM, llama.cpp, any self-hosted server):
      one ``aiohttp`` session, one ``POST {base_url}/chat/completions`` per call. At 64 calls in flight it
      spends about half the client CPU per call of the SDK (which builds an ``httpx`` request, URL and
      headers object per call); against the scripted server that is the difference between the sweep runner
      keeping up with the server or not (``benchmarks/perf/bench_sweep.py``).
    - ``http="sdk"`` (the default for OpenAI's own API, ``base_url=None``): ``openai.AsyncOpenAI`` with its
      retries off, so that OpenAI's client keeps track of its API.

    Args:
        model: the model name the server expects.
        base_url: the endpoint (``http://host:8000/v1``); None means OpenAI's API.
        api_key: the key; servers that check none still need a non-empty string.
        timeout: seconds per HTTP request (connect + read); a hung server becomes a ``timeout`` error.
        supports_n: send ``n > 1`` in one request (vLLM, OpenAI) or fan out single requests.
        name: a label for logs and results.
        extra_body: extra JSON fields sent with every request (for example vLLM's ``top_k``).
        http: ``"aiohttp"`` or ``"sdk"`` (None: aiohttp when ``base_url`` is given, else the SDK).
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 600.0,
        supports_n: bool = True,
        name: str | None = None,
        extra_body: dict[str, Any] | None = None,
        http: str | None = None,
    ) -> None:
        http = http or ("aiohttp" if base_url else "sdk")
        if http not in ("aiohttp", "sdk"):
            raise ConfigError(f"http must be 'aiohttp' or 'sdk', got {http!r}")
        if http == "aiohttp" and not base_url:
            raise ConfigError("http='aiohttp' needs a base_url (OpenAI's own API goes through the SDK)")
        self.model = model
        self.base_url = base_url
        self.supports_n = supports_n
        self.name = name or f"openai-compatible:{model}"
        self.extra_body = dict(extra_body or {})
        self.http = http
        self.timeout = timeout
        self._api_key = api_key or "not-needed"
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=self._api_key, timeout=timeout, max_retries=0
        ) if http == "sdk" else None
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._counted: dict[str, int] = {}
        """The last prompts counted (at most 256), by their JSON."""
        self._tokenizer: str | None = None
        """The server's tokenizer endpoint (``count_prompt_tokens``): None until learned, then ``vllm``,
        ``llama.cpp`` or ``none``."""

    @property
    def base_url(self) -> str | None:
        """The endpoint; setting it points the next aiohttp call there."""
        return self._base_url

    @base_url.setter
    def base_url(self, value: str | None) -> None:
        self._base_url = value
        self._url = f"{value.rstrip('/')}/chat/completions" if value else ""

    async def endpoint(self) -> Endpoint | None:
        """The server's endpoint (any ``base_url``; OpenAI's API when none is given)."""
        base_url = self.base_url or (str(self._client.base_url) if self._client is not None else "")
        return Endpoint(base_url=base_url, model=self.model, api_key=self._api_key, extra_body=dict(self.extra_body))

    def describe(self) -> dict[str, Any]:
        version = openai.__version__ if self.http == "sdk" else aiohttp.__version__
        return {**super().describe(), "base_url": self.base_url, "http": f"{self.http} {version}"}

    async def complete(self, request: ChatRequest) -> list[Completion]:
        if request.n > 1 and not self.supports_n:
            parts = await asyncio.gather(*(self.complete(request.for_sample(i)) for i in range(request.n)))
            return [c.model_copy(update={"index": i}) for i, (c,) in enumerate(parts)]
        params: dict[str, Any] = {
            "model": self.model,
            "messages": request.openai_messages(),
            "temperature": request.temperature,
        }
        if request.max_tokens is not None:
            params["max_tokens"] = request.max_tokens
        if request.top_p is not None:
            params["top_p"] = request.top_p
        if request.seed is not None:
            params["seed"] = request.seed
        if request.stop:
            params["stop"] = list(request.stop)
        if request.n > 1:
            params["n"] = request.n
        if self.extra_body:
            params.update(self.extra_body)
        started = time.perf_counter()
        response = await (self._post_sdk(params) if self._client is not None else self._post_aiohttp(params))
        latency = time.perf_counter() - started
        return self._parse(response, request, latency)

    async def _post_sdk(self, params: dict[str, Any]) -> Any:
        assert self._client is not None
        try:
            # The SDK's documented raw `post` (same transport, errors and status handling as
            # `chat.completions.create`) skips its recursive request-params transform (about 0.8 ms of CPU
            # per call: the body built above is already plain JSON), and `cast_to=bytes` skips building a
            # `ChatCompletion` object tree field by field: `_parse` reads the few fields it needs.
            body = await self._client.post("/chat/completions", body=params, cast_to=bytes)
            return json.loads(body)
        except Exception as exc:  # mapped, never swallowed
            raise map_openai_error(exc, self.name) from exc

    def _http_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            # A session belongs to one event loop; a backend reused under a new `asyncio.run` gets a new one.
            # No connection limit here: how many calls are in flight is the middleware's and the caller's
            # business (aiohttp's default of 100 would silently cap a sweep at 100).
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=0),
                headers={"Authorization": f"Bearer {self._api_key}"},
            )
            self._session_loop = loop
        return self._session

    async def _post_aiohttp(self, params: dict[str, Any]) -> Any:
        try:
            async with self._http_session().post(self._url, json=params) as reply:
                status, headers, raw = reply.status, reply.headers, await reply.read()
        except TimeoutError:
            raise timeout_error(self.name) from None
        except aiohttp.ClientError as exc:  # refused, dropped, reset, a truncated body
            raise connection_error(self.name, str(exc) or type(exc).__name__, refused=_refused(exc)) from exc
        if status >= 400:
            raise error_from_reply(status, raw, headers, self.name)
        try:
            return json.loads(raw)
        except ValueError:
            raise self._malformed("the body is not JSON") from None

    async def identity(self) -> dict[str, Any]:
        """``describe()`` and the model ids the server lists (``GET {base_url}/models``: vLLM and llama.cpp name
        the weights they serve; OpenAI lists its catalogue, so only the requested model's entry is kept)."""
        info = self.describe()
        if not self.base_url:
            return info
        try:
            async with self._http_session().get(f"{self.base_url.rstrip('/')}/models",
                                                timeout=aiohttp.ClientTimeout(total=30)) as reply:
                body = json.loads(await reply.read()) if reply.status < 400 else None
                status = reply.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return {**info, "identity_error": f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__}
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            return {**info, "identity_error": f"GET /models answered HTTP {status} without a model list"}
        ids = [str(m.get("id")) for m in data if isinstance(m, dict) and m.get("id") is not None]
        served = [i for i in ids if i == self.model] or ids[:8]
        details = {str(m.get("id")): {k: m[k] for k in ("root", "owned_by", "max_model_len") if k in m}
                   for m in data if isinstance(m, dict) and str(m.get("id")) in served}
        return {**info, "served_models": served, **({"served_model_details": details} if any(details.values())
                                                   else {})}

    async def count_prompt_tokens(self, request: ChatRequest) -> int | None:
        """The prompt's tokens as the server counts them, through its tokenizer endpoint: vLLM's ``POST
        /tokenize`` with the chat messages (its ``count``), or llama.cpp's ``POST /apply-template`` then ``POST
        /tokenize`` of the templated prompt. Which one the server has is learned on the first call and kept; a
        server with neither (OpenAI's API, most gateways) answers None from then on, costing one probe. A
        transient failure answers None for this call only."""
        if not self.base_url or self._tokenizer == "none":
            return None
        messages = request.openai_messages()
        key = json.dumps(messages, separators=(",", ":"))
        if key in self._counted:  # a method that plans from a prompt and then sends it asks twice
            return self._counted[key]
        count = await self._count(messages)
        if count is not None:
            if len(self._counted) >= 256:
                self._counted.pop(next(iter(self._counted)))
            self._counted[key] = count
        return count

    async def _count(self, messages: list[dict[str, str]]) -> int | None:
        assert self.base_url is not None
        root = self.base_url.rstrip("/").removesuffix("/v1")
        if self._tokenizer in (None, "vllm"):
            found, body = await self._post_quiet(f"{root}/tokenize", {
                "model": self.model, "messages": messages, "add_generation_prompt": True})
            if isinstance(body, dict) and isinstance(body.get("count"), int):
                self._tokenizer = "vllm"
                return int(body["count"])
            if self._tokenizer == "vllm" or not found:
                return None
        found, body = await self._post_quiet(f"{root}/apply-template", {"messages": messages})
        prompt = body.get("prompt") if isinstance(body, dict) else None
        if isinstance(prompt, str):
            found, body = await self._post_quiet(f"{root}/tokenize", {
                "content": prompt, "add_special": True, "parse_special": True})
            tokens = body.get("tokens") if isinstance(body, dict) else None
            if isinstance(tokens, list):
                self._tokenizer = "llama.cpp"
                return len(tokens)
        if found and self._tokenizer is None:
            self._tokenizer = "none"  # the server answered, but with neither endpoint: do not ask again
        return None

    async def _post_quiet(self, url: str, body: dict[str, Any]) -> tuple[bool, Any]:
        """POST ``body`` to ``url``: (whether the server answered at all, its JSON body or None); never raises."""
        try:
            async with self._http_session().post(url, json=body, timeout=aiohttp.ClientTimeout(total=30)) as reply:
                if reply.status >= 400:
                    return reply.status < 500 or reply.status == 501, None
                return True, json.loads(await reply.read())
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return False, None

    def _malformed(self, why: str) -> MalformedResponse:
        return MalformedResponse(f"{self.name}: malformed response: {why}", cause="malformed response")

    def _parse(self, response: Any, request: ChatRequest, latency: float) -> list[Completion]:
        if not isinstance(response, dict):
            raise self._malformed("not a JSON object")
        choices = response.get("choices")
        if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
            raise self._malformed("no choices")
        usage = response.get("usage")
        input_tokens = output_total = reasoning_total = 0
        if usage is not None:
            if not isinstance(usage, dict):
                raise self._malformed("usage is not an object")
            try:
                input_tokens = int(usage.get("prompt_tokens") or 0)
                output_total = int(usage.get("completion_tokens") or 0)
                details = usage.get("completion_tokens_details")
                if isinstance(details, dict):
                    reasoning_total = int(details.get("reasoning_tokens") or 0)
            except (TypeError, ValueError):
                raise self._malformed("token counts are not numbers") from None
        texts: list[tuple[str, str]] = []
        thoughts: list[str] = []
        if len(choices) > 1:
            choices = sorted(choices, key=lambda c: c.get("index") if isinstance(c.get("index"), int) else 0)
        for choice in choices:
            message = choice.get("message")
            text = message.get("content") if isinstance(message, dict) else None
            if text is not None and not isinstance(text, str):
                raise self._malformed("content is not text")
            # Reasoning apart from the answer (vLLM's reasoning parsers, reasoning APIs), or inline <think> blocks.
            thought = None
            if isinstance(message, dict):
                for key in ("reasoning_content", "reasoning"):
                    value = message.get(key)
                    if isinstance(value, str):
                        thought = value
                        break
            if thought is None:
                thought, text = split_reasoning(text or "")
            thoughts.append(thought)
            texts.append((text or "", str(choice.get("finish_reason") or "")))
        if usage is None:
            _log.warning("server reported no usage; token counts are zero", backend=self.name)
        # llama.cpp's server answers "-" when no alias is set: fall back to the model we asked for.
        reported = str(response.get("model") or "")
        model = reported if reported.strip("- ") else self.model
        if len(texts) == 1:
            text, finish = texts[0]
            return [Completion(text=text, finish_reason=finish, input_tokens=input_tokens,
                               output_tokens=output_total, latency_s=latency, model=model, reasoning=thoughts[0],
                               reasoning_tokens=reasoning_total)]
        # n > 1 in one request: usage covers all choices; apportion output tokens by text length.
        total_chars = sum(len(t) for t, _ in texts) or 1
        shares = [round(output_total * len(t) / total_chars) for t, _ in texts]
        shares[-1] = output_total - sum(shares[:-1])
        return [
            Completion(text=t, finish_reason=f, input_tokens=input_tokens, output_tokens=max(0, s),
                       latency_s=latency, model=model, index=i, usage_estimated=True, reasoning=thoughts[i])
            for i, ((t, f), s) in enumerate(zip(texts, shares, strict=True))
        ]

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._session is not None and not self._session.closed:
            if self._session_loop is asyncio.get_running_loop():
                await self._session.close()
            self._session = None
