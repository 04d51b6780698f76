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
    """Configure the OpenTelemetry SDK for this process (``--otel``): ``agentkit.tracing.configure_exporter``."""
    from agentkit import tracing

    return tracing.configure_exporter(service_name)
