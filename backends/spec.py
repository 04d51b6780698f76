"""``backend_from_spec``: build a backend (with its middleware) from one URL-like string.

| spec | backend |
|---|---|
| ``local`` / ``local:qwen2.5-0.5b`` / ``local:qwen2.5-1.5b`` / ``local:/path/m.gguf`` | ``Local`` (xllamacpp) |
| ``openai:gpt-4o-mini`` | ``OpenAICompatible`` against OpenAI, key from ``$OPENAI_API_KEY`` |
| ``vllm:http://host:8000/v1?model=M`` | ``OpenAICompatible`` (``n > 1`` in one request), key ``$VLLM_API_KEY`` |
| ``openai-compatible:http://host:8080/v1?model=M&supports_n=false`` | any other compatible server, key ``$OPENAI_API_KEY`` |
| ``vllm:http://a:8000/v1,http://b:8000/v1?model=M&per_replica=16`` | ``Replicated``: one model over several replicas |
| ``llamacpp:/path/m.gguf?n_gpu_layers=-1&contexts=4`` | ``LlamaCpp`` (llama-cpp-python in-process) |

``openai``, ``vllm`` and ``openai-compatible`` also take ``http=aiohttp|sdk``: the transport (default: the
``openai`` SDK for OpenAI's API, aiohttp for an endpoint URL; see ``OpenAICompatible``).

Query parameters every spec accepts (middleware): ``retries`` (attempts, 1 = no retry; default 6),
``concurrency`` (calls in flight), ``rpm`` / ``tpm`` (rate limit), ``cache`` (path of an on-disk response
cache), ``timeout`` (seconds per HTTP request). Limit and cache objects passed as arguments take
precedence over the query, and can be shared by several backends. Several replica URLs (comma-separated) also take
``per_replica`` (calls in flight on one replica) and ``cooldown`` (seconds a failed replica stays out; default 10);
see ``backends/replicas.py``. API keys come from the environment
at the moment the backend is built, never at import.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from agentkit.errors import ConfigError

from .base import Backend
from .middleware import ConcurrencyLimit, RateLimit, ResponseCache, RetryPolicy, with_middleware

__all__ = ["backend_from_spec", "parse_spec"]

_COMMON = {"retries", "concurrency", "rpm", "tpm", "cache", "timeout"}


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """Split ``scheme:target?k=v&...`` into (scheme, target, params)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("empty backend spec; try `local` or see `agentkit chat --help`")
    head, _, query = spec.strip().partition("?")
    scheme, _, target = head.partition(":")
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in params:
            raise ConfigError(f"backend spec {spec!r} gives {key!r} twice")
        params[key] = value
    return scheme.lower(), target, params


def _number(params: dict[str, str], key: str, kind: Callable[[str], Any], spec: str) -> Any:
    if key not in params:
        return None
    try:
        return kind(params.pop(key))
    except ValueError:
        raise ConfigError(f"backend spec {spec!r}: {key} must be a {kind.__name__}") from None


def _flag(params: dict[str, str], key: str, default: bool, spec: str) -> bool:
    if key not in params:
        return default
    value = params.pop(key).lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"backend spec {spec!r}: {key} must be true or false")


def _api_key(variable: str, required: bool, spec: str) -> str | None:
    key = os.environ.get(variable)
    if required and not key:
        raise ConfigError(f"backend {spec!r} needs an API key: set ${variable}")
    return key


def backend_from_spec(
    spec: str,
    *,
    retry: RetryPolicy | bool | None = None,
    concurrency: ConcurrencyLimit | None = None,
    rate: RateLimit | None = None,
    cache: ResponseCache | None = None,
) -> Backend:
    """Build the backend a spec names, wrapped in retry / limits / cache middleware."""
    scheme, target, params = parse_spec(spec)
    attempts = _number(params, "retries", int, spec)
    slots = _number(params, "concurrency", int, spec)
    rpm = _number(params, "rpm", float, spec)
    tpm = _number(params, "tpm", float, spec)
    timeout = _number(params, "timeout", float, spec)
    cache_path = params.pop("cache", None)

    base: Backend
    if scheme == "local":
        from .local import Local

        base = Local(
            target or None,
            slots=_number(params, "slots", int, spec) or 4,
            ctx_per_slot=_number(params, "ctx", int, spec) or 4096,
            threads=_number(params, "threads", int, spec),
            n_gpu_layers=_number(params, "n_gpu_layers", int, spec) or 0,
            timeout=timeout or 600.0,
        )
    elif scheme in {"openai", "vllm", "openai-compatible"}:
        from .openai_compat import OpenAICompatible

        if scheme == "openai":
            if not target:
                raise ConfigError(f"backend spec {spec!r} names no model; try `openai:gpt-4o-mini`")
            model, base_url = target, params.pop("base_url", None)
            urls = [base_url] if base_url else []
            key = _api_key("OPENAI_API_KEY", base_url is None, spec)
            supports_n = _flag(params, "supports_n", True, spec)
        else:
            urls = [u.strip() for u in target.split(",")]
            if not all(u.startswith(("http://", "https://")) for u in urls):
                raise ConfigError(f"backend spec {spec!r} needs an endpoint URL, e.g. `{scheme}:http://host:8000/v1?model=M` "
                                  "(several replicas: URLs separated by commas)")
            if len(set(urls)) != len(urls):
                raise ConfigError(f"backend spec {spec!r} lists a replica twice")
            model = params.pop("model", "")
            if not model:
                raise ConfigError(f"backend spec {spec!r} names no model; add `?model=NAME`")
            base_url = urls[0]
            key = _api_key("VLLM_API_KEY" if scheme == "vllm" else "OPENAI_API_KEY", False, spec)
            supports_n = _flag(params, "supports_n", scheme == "vllm", spec)
        http = params.pop("http", None)
        per_replica = _number(params, "per_replica", int, spec)
        cooldown = _number(params, "cooldown", float, spec)
        if scheme != "openai" and len(urls) > 1:
            from .replicas import Replicated

            base = Replicated([OpenAICompatible(model, base_url=u, api_key=key, timeout=timeout or 600.0,
                                                supports_n=supports_n, name=f"{scheme}:{model}@{u}", http=http)
                               for u in urls], labels=urls, name=f"{scheme}:{model}", model=model,
                              per_replica=per_replica, cooldown=10.0 if cooldown is None else cooldown)
        elif per_replica is not None or cooldown is not None:
            raise ConfigError(f"backend spec {spec!r}: per_replica and cooldown need several replica URLs")
        else:
            base = OpenAICompatible(model, base_url=base_url, api_key=key, timeout=timeout or 600.0,
                                    supports_n=supports_n, name=f"{scheme}:{model}", http=http)
    elif scheme == "llamacpp":
        from .llamacpp import LlamaCpp

        if not target:
            raise ConfigError(f"backend spec {spec!r} names no model; try `llamacpp:/path/model.gguf`")
        base = LlamaCpp(
            target,
            contexts=_number(params, "contexts", int, spec) or 1,
            n_gpu_layers=_number(params, "n_gpu_layers", int, spec) or 0,
            n_ctx=_number(params, "n_ctx", int, spec) or 4096,
            n_threads=_number(params, "n_threads", int, spec),
            chat_format=params.pop("chat_format", None),
        )
    else:
        raise ConfigError(
            f"unknown backend {scheme!r} in spec {spec!r}; use local, openai, vllm, openai-compatible or llamacpp"
        )
    if params:
        raise ConfigError(
            f"backend spec {spec!r}: unknown parameter(s) {', '.join(sorted(params))}; every spec accepts "
            f"{', '.join(sorted(_COMMON))}"
        )

    if attempts is not None and attempts < 1:
        raise ConfigError(f"backend spec {spec!r}: retries must be at least 1")
    if retry is None:
        retry = RetryPolicy(attempts=attempts) if attempts is not None else True
    if concurrency is None and slots is not None:
        concurrency = ConcurrencyLimit(slots)
    if rate is None and (rpm is not None or tpm is not None):
        rate = RateLimit(requests_per_minute=rpm, tokens_per_minute=tpm)
    if cache is None and cache_path:
        cache = ResponseCache(os.path.expanduser(cache_path))
    return with_middleware(base, retry=retry, concurrency=concurrency, rate=rate, cache=cache)
