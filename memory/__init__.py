"""Procedural memory: the behavior handbook (installed as ``agentkit.memory``).

``Behavior`` entries (name, instruction, topics, provenance, version, status, usage statistics) live in a
``QdrantBehaviorStore``: Qdrant Edge in-process by default (``path=``), or a Qdrant server (``url=``), or
qdrant-client's local mode (``location=":memory:"``). Embedders turn behaviors and queries into vectors off
the event loop; the offline default needs no download. ``render_behaviors`` writes the prompt block that
behavior-conditioned inference prepends.
"""

from .behavior import Behavior, BehaviorStats, Provenance, Status, find_citations, render_behaviors
from .client import HandbookClient
from .embedders import BGEM3Embedder, Embedder, MiniLMEmbedder, default_embedder
from .store import (
    BehaviorStore,
    ImportReport,
    PruneDecision,
    PrunePolicy,
    QdrantBehaviorStore,
    SearchHit,
)

__all__ = [
    "BGEM3Embedder",
    "Behavior",
    "BehaviorStats",
    "BehaviorStore",
    "Embedder",
    "HandbookClient",
    "ImportReport",
    "MiniLMEmbedder",
    "Provenance",
    "PruneDecision",
    "PrunePolicy",
    "QdrantBehaviorStore",
    "SearchHit",
    "Status",
    "default_embedder",
    "find_citations",
    "render_behaviors",
]
