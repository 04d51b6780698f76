"""Procedural memory: the behavior handbook (installed as ``agentkit.memory``).

``Behavior`` entries (name, instruction, topics, provenance, version, status, usage statistics) live in a
``QdrantBehaviorStore``: Qdrant Edge in-process by default (``path=``), or a Qdrant server (``url=``), or
qdrant-client's local mode (``location=":memory:"``). Embedders turn behaviors and queries into vectors off
the event loop; the offline default needs no download. ``BehaviorStore`` is the protocol every seam that takes
a handbook is typed against (the store and ``HandbookClient`` both satisfy it). ``retrieve_behaviors`` and
``record_citations`` are retrieval and usage accounting over any store; ``render_behaviors`` is the one prompt
renderer.
"""

from .behavior import Behavior, BehaviorStats, Provenance, Status, as_behaviors, find_citations, render_behaviors
from .client import HandbookClient
from .embedders import EMBEDDER_SPECS, BGEM3Embedder, Embedder, MiniLMEmbedder, default_embedder, embedder_from_spec
from .retrieval import (
    RETRIEVALS,
    HandbookMode,
    Retrieval,
    UsageLog,
    UsageTarget,
    record_citations,
    retrieve_behaviors,
    topic_counts,
    topics_of,
)
from .store import (
    BehaviorStore,
    ImportReport,
    PruneDecision,
    PrunePolicy,
    QdrantBehaviorStore,
    SearchHit,
)

__all__ = [
    "EMBEDDER_SPECS",
    "RETRIEVALS",
    "BGEM3Embedder",
    "Behavior",
    "BehaviorStats",
    "BehaviorStore",
    "Embedder",
    "HandbookClient",
    "HandbookMode",
    "ImportReport",
    "MiniLMEmbedder",
    "Provenance",
    "PruneDecision",
    "PrunePolicy",
    "QdrantBehaviorStore",
    "Retrieval",
    "SearchHit",
    "Status",
    "UsageLog",
    "UsageTarget",
    "as_behaviors",
    "default_embedder",
    "embedder_from_spec",
    "find_citations",
    "record_citations",
    "render_behaviors",
    "retrieve_behaviors",
    "topic_counts",
    "topics_of",
]
