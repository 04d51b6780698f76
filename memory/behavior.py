"""The ``Behavior``: one named, reusable procedure of the handbook, with provenance, version and usage.

The value types are defined in ``agentkit._behavior`` (below ``agentkit.messages``, since behaviors travel on
messages) and re-exported here, their public home; see that module for the fields, the utility score and
the one prompt renderer, ``render_behaviors``.
"""

from agentkit._behavior import (
    MAX_INSTRUCTION_CHARS,
    MAX_NAME_CHARS,
    NAME_PATTERN,
    PITFALL_MARK,
    USAGE_EVENTS,
    Behavior,
    BehaviorStats,
    Category,
    Provenance,
    Status,
    UsageEvent,
    as_behaviors,
    find_citations,
    is_behavior_name,
    render_behaviors,
)

__all__ = [
    "MAX_INSTRUCTION_CHARS",
    "MAX_NAME_CHARS",
    "NAME_PATTERN",
    "PITFALL_MARK",
    "USAGE_EVENTS",
    "Behavior",
    "BehaviorStats",
    "Category",
    "Provenance",
    "Status",
    "UsageEvent",
    "as_behaviors",
    "find_citations",
    "is_behavior_name",
    "render_behaviors",
]
