"""OpenTelemetry spans for agentkit runs: off by default, free when off, through the OpenTelemetry API only.

agentkit never sets a tracer provider or an exporter: an application that has configured OpenTelemetry (its
own ``TracerProvider``, Logfire, Phoenix's ``register``, ``opentelemetry-instrument``) gets agentkit's spans in
the traces it already has; one that has not gets nothing, and every helper here is then a no-op that costs one
check (``active``). The ``agentkit`` command's ``--otel`` flag configures the SDK for you (``configure_otel``,
``agentkit[otel]``: the standard ``OTEL_*`` variables choose the exporter's endpoint and headers).

What is traced (span names; attributes under ``agentkit.*`` and the GenAI semantic conventions ``gen_ai.*``):

- ``agentkit.cell`` (a sweep cell, the root of its own trace), and a face's request (``POST /v1/chat/completions``
  on the proxy, the service's routes, ``POST /mcp``), joined to the caller's trace by an incoming
  ``traceparent`` header;
- ``agentkit.method {name}``: one method run (budget, seed, and at the end its answer, B_seq, B_total, tokens);
- ``agentkit.step {handler} {message kind}``: each role step a bus handler takes (draft, distill, refine,
  curate, answer); the context crosses the bus with every message;
- ``chat {model}``: each model call as a GenAI client span (``gen_ai.operation.name``,
  ``gen_ai.request.model``, ``gen_ai.request.max_tokens``, ``gen_ai.request.temperature``,
  ``gen_ai.usage.input_tokens`` / ``output_tokens``, ``gen_ai.response.finish_reasons``, and agentkit's round,
  branch, stage, role, B_seq so far and budget). Prompt and completion text only when
  ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` (they can be large and private);
- ``agentkit.retrieve`` and ``agentkit.handbook.{search,add,update}``: retrieval and handbook writes, with the
  behaviors' names.

Spans also carry ``openinference.span.kind`` (LLM, CHAIN, AGENT, RETRIEVER, TOOL), which Phoenix uses to draw
them.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any, ParamSpec, TypeVar

try:
    from opentelemetry import context as _context
    from opentelemetry import propagate as _propagate
    from opentelemetry import trace as _trace
except ImportError:  # the API is not installed: tracing stays off
    _trace = None  # type: ignore[assignment]

__all__ = ["CONTENT_ENV", "active", "attached", "capture", "configure_exporter", "content_enabled", "extracted",
           "set_attributes", "span", "traced"]

CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""The GenAI instrumentations' opt-in for prompt and completion text on spans (``true``)."""
_NAME = "agentkit"
_OFF: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
_KINDS = {name: getattr(_trace.SpanKind, name) for name in ("INTERNAL", "CLIENT", "SERVER")} if _trace else {}
Attributes = Mapping[str, Any]


def active() -> bool:
    """Whether the application configured a tracer provider (the API's default records nothing)."""
    if _trace is None:
        return False
    provider = _trace.get_tracer_provider()
    return not isinstance(provider, (_trace.ProxyTracerProvider, _trace.NoOpTracerProvider))


def content_enabled() -> bool:
    return os.environ.get(CONTENT_ENV, "").strip().lower() in ("1", "true", "yes")


_PLAIN = (str, bool, int, float)


def _clean(attributes: Attributes | None) -> dict[str, Any]:
    """Attributes OpenTelemetry accepts: None dropped, lists of strings or numbers kept, anything else as text."""
    out: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        if value is None:
            continue
        if type(value) in _PLAIN or isinstance(value, _PLAIN):
            out[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, _PLAIN) for v in value):
            out[key] = list(value)
        else:
            out[key] = json.dumps(value, default=str)
    return out


def span(name: str | Callable[[], str], attributes: Attributes | Callable[[], Attributes] | None = None, *,
         kind: str = "INTERNAL", root: bool = False, parent: Any = None) -> contextlib.AbstractContextManager[Any]:
    """A span around a block (the span, or None when tracing is off): ``kind`` INTERNAL, CLIENT or SERVER,
    ``root`` to start a trace of its own, ``parent`` a context (``extracted``) to join. ``name`` and
    ``attributes`` may be functions, called only when tracing is on (so that a call site builds nothing when it
    is off). Exceptions are recorded on the span and set its status."""
    if not active():
        return _OFF
    assert _trace is not None
    if callable(name):
        name = name()
    if callable(attributes):
        attributes = attributes()
    return _trace.get_tracer(_NAME).start_as_current_span(
        name, context=_context.Context() if root else parent, kind=_KINDS[kind], attributes=_clean(attributes))


def set_attributes(current: Any, attributes: Attributes | Callable[[], Attributes]) -> None:
    """Add ``attributes`` (or what the function returns) to the span ``span`` yielded (nothing when it yielded
    None: tracing off)."""
    if current is not None:
        current.set_attributes(_clean(attributes() if callable(attributes) else attributes))


def capture() -> Any:
    """The current context, to carry across a queue (the bus), or None when tracing is off."""
    return _context.get_current() if active() else None


@contextlib.contextmanager
def attached(context: Any) -> Iterator[None]:
    """Run a block in a context ``capture`` returned (nothing to do for None)."""
    if context is None:
        yield
        return
    token = _context.attach(context)
    try:
        yield
    finally:
        _context.detach(token)


def extracted(headers: Mapping[str, str]) -> Any:
    """The caller's context from a request's headers (``traceparent``, ``tracestate``), or None when tracing is
    off or the request carries none."""
    if not active() or "traceparent" not in {k.lower() for k in headers}:
        return None
    return _propagate.extract(dict(headers))


P = ParamSpec("P")
T = TypeVar("T")


def traced(name: str, describe: Callable[[Any], Attributes] | None = None
           ) -> Callable[[Callable[P, Coroutine[Any, Any, T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """Decorate an async function with a span named ``name`` (when tracing is on); ``describe(result)`` gives
    attributes from what it returned (the behaviors' names of a search, say)."""

    def wrap(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(fn)
        async def run(*args: P.args, **kwargs: P.kwargs) -> T:
            if not active():
                return await fn(*args, **kwargs)
            with span(name) as current:
                result = await fn(*args, **kwargs)
                if describe is not None:
                    set_attributes(current, describe(result))
                return result

        return run

    return wrap


def configure_exporter(service_name: str = "agentkit") -> Any:
    """Configure the OpenTelemetry SDK for this process: a tracer provider exporting spans over OTLP/HTTP in
    batches, the endpoint, headers and service name from the standard ``OTEL_*`` variables. Returns the provider
    (``shutdown()`` flushes it). What ``agentkit --otel`` does, and each Ray worker of a traced sweep; the library
    never does it on its own."""
    from agentkit.errors import ConfigError

    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ConfigError("--otel needs the OpenTelemetry SDK and its OTLP exporter: pip install 'agentkit[otel]'"
                          ) from None
    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME",
                                                                                       service_name)}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider
