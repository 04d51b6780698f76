"""Procedural memory: the behavior handbook (installed as ``agentkit.memory``).

The versioned behavior store over Qdrant, embedders, curation and pruning arrive with the procedural
memory issue; this package exists now so the import name and packaging are settled.
"""

__all__: list[str] = []
