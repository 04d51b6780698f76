"""What the commands share: opening a handbook (a store directory or a service URL) and a console on stderr."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentkit.memory import BehaviorStore

__all__ = ["DEFAULT_BACKEND", "DEFAULT_STORE", "configure_otel", "open_handbook", "stderr_console"]

DEFAULT_BACKEND = "local"
DEFAULT_STORE = ".agentkit/handbook"


async def open_handbook(store: str, token: str | None, embedder: str | None = None, *, create: bool = True
                        ) -> BehaviorStore:
    """A store directory (embedded Qdrant Edge, with ``embedder``: see ``embedder_from_spec``) or a handbook
    service URL (which embeds with its own store's embedder). ``create=False`` for a command that only reads: a
    path without a store is then refused (``StoreNotFound``) instead of becoming an empty store."""
    import os

    from agentkit.errors import ConfigError
    from agentkit.memory import HandbookClient, QdrantBehaviorStore, embedder_from_spec

    if store.startswith(("http://", "https://")):
        if embedder is not None:
            raise ConfigError("--embedder applies to a store directory; a handbook URL embeds with its service's "
                              "own store")
        token = token or os.environ.get("AGENTKIT_TOKEN")
        if not token:
            raise ConfigError("a handbook URL needs --token or $AGENTKIT_TOKEN (printed by `agentkit serve`)")
        return HandbookClient(store, token=token)
    return await QdrantBehaviorStore(path=store, embedder=embedder_from_spec(embedder), create=create).open()




def stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)




def configure_otel(service_name: str = "agentkit") -> Any:
    """Configure the OpenTelemetry SDK for this process (``--otel``): a tracer provider exporting spans over
    OTLP/HTTP in batches, the endpoint, headers and service name from the standard ``OTEL_*`` variables. Returns
    the provider (``shutdown()`` flushes it). The library never does this itself."""
    import os

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
