"""The ``Behavior``: one named, reusable procedure of the handbook, with provenance, version and usage.

A value type of the floor (it travels on messages), so it lives here, below ``agentkit.messages``; its public
home is ``agentkit.memory`` (``agentkit.memory.behavior``), which re-exports everything in this module.

A behavior is what "Metacognitive Reuse" (arXiv 2509.13237) extracts from reflected-on traces:
``behavior_inclusion_exclusion_principle: avoid double counting by subtracting intersections``. Here it
also carries what a library needs to curate it: topics, provenance, a version number, a status (active,
deprecated, pruned) and usage statistics that are **fields updated by code** (never text kept by a model);
"cited in a correct answer" comes from a grader.

``utility`` is the documented score the capacity policy keeps the top N by:

    utility = (cited_correct + 1) / (cited_correct + cited_wrong + 2)  +  0.1 * ln(1 + cited)

a Laplace-smoothed success rate (0.5 for a behavior never graded) plus a small bonus for being used.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "MAX_INSTRUCTION_CHARS",
    "MAX_NAME_CHARS",
    "PITFALL_MARK",
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

MAX_NAME_CHARS = 96
MAX_INSTRUCTION_CHARS = 2000
NAME_PATTERN = re.compile(r"behavior_[a-z0-9_]+")
UsageEvent = Literal["retrieved", "cited", "cited_correct", "cited_wrong"]
Category = Literal["strategy", "pitfall"]
PITFALL_MARK = "[pitfall: avoid this] "
"""How a pitfall's instruction is marked in prompts (``render_behaviors``)."""
USAGE_EVENTS: tuple[str, ...] = ("retrieved", "cited", "cited_correct", "cited_wrong")


def _now() -> datetime:
    return datetime.now(UTC)


class Status(StrEnum):
    ACTIVE = "active"
    DEPRECATED = "deprecated"
    PRUNED = "pruned"


class Provenance(BaseModel):
    """Where a behavior came from. A merged behavior lists every source."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    problem_id: str | None = None
    """The problem whose trace the behavior was extracted from."""
    dataset: str | None = None
    """The dataset (split) that problem came from, e.g. ``gsm8k-train`` (retrieval can exclude a split)."""
    trace_id: str | None = None
    model: str | None = None
    """The model that wrote the behavior."""
    trace_correct: bool | None = None
    """Whether that trace's answer matched the reference."""


class BehaviorStats(BaseModel):
    """Usage counts (exact: updated by the store's single writer)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    retrieved: int = Field(default=0, ge=0)
    cited: int = Field(default=0, ge=0)
    cited_correct: int = Field(default=0, ge=0)
    cited_wrong: int = Field(default=0, ge=0)
    last_used: datetime | None = None

    def plus(self, other: BehaviorStats) -> BehaviorStats:
        """Counts added (for merges); the later ``last_used``."""
        last = max((d for d in (self.last_used, other.last_used) if d is not None), default=None)
        return BehaviorStats(
            retrieved=self.retrieved + other.retrieved, cited=self.cited + other.cited,
            cited_correct=self.cited_correct + other.cited_correct, cited_wrong=self.cited_wrong + other.cited_wrong,
            last_used=last,
        )

    @property
    def utility(self) -> float:
        return (self.cited_correct + 1) / (self.cited_correct + self.cited_wrong + 2) + 0.1 * math.log1p(self.cited)


class Behavior(BaseModel):
    """One handbook entry (one version of it, as stored)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(max_length=MAX_NAME_CHARS)
    """``behavior_`` followed by lowercase letters, digits and underscores."""
    instruction: str = Field(min_length=1, max_length=MAX_INSTRUCTION_CHARS)
    """What to do, in one or a few sentences."""
    topics: tuple[str, ...] = ()
    provenance: tuple[Provenance, ...] = ()
    version: int = Field(default=1, ge=1)
    status: Status = Status.ACTIVE
    created_at: datetime = Field(default_factory=_now)
    """When version 1 was created."""
    updated_at: datetime = Field(default_factory=_now)
    """When this version was written."""
    stats: BehaviorStats = BehaviorStats()
    note: str = ""
    """Why this version exists (``merged from ...``, ``pruned: harmful``, ``rollback to 2``)."""
    category: Category = "strategy"
    """``strategy`` (do this) or ``pitfall`` (avoid this: learned from wrong attempts by contrastive curation);
    rendered apart in prompts, and never merged with an entry of the other category."""

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not is_behavior_name(value):  # (the field's max_length reports an overlong name first)
            raise ValueError("must match behavior_[a-z0-9_]+ (lowercase, digits, underscores)")
        return value

    @field_validator("instruction")
    @classmethod
    def _check_instruction(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("topics")
    @classmethod
    def _check_topics(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(dict.fromkeys(t.strip() for t in value if t.strip()))
        if any(len(t) > 100 for t in cleaned) or len(cleaned) > 32:
            raise ValueError("at most 32 topics of at most 100 characters")
        return cleaned

    @property
    def text(self) -> str:
        """What gets embedded: the name in words, then the instruction."""
        return f"{self.name.removeprefix('behavior_').replace('_', ' ')}: {self.instruction}"


def is_behavior_name(name: object) -> bool:
    """Whether ``name`` can name a behavior: ``behavior_[a-z0-9_]+``, at most ``MAX_NAME_CHARS`` characters. The
    one check the store, the service and the client use before looking a name up or putting it in a URL."""
    return isinstance(name, str) and len(name) <= MAX_NAME_CHARS and NAME_PATTERN.fullmatch(name) is not None


def find_citations(text: str, names: Iterable[str]) -> tuple[str, ...]:
    """The behavior names (from ``names``) that ``text`` mentions, as whole words, in first-mention order."""
    found: list[tuple[int, str]] = []
    for name in dict.fromkeys(names):
        match = re.search(rf"(?<![a-z0-9_]){re.escape(name)}(?![a-z0-9_])", text)
        if match:
            found.append((match.start(), name))
    return tuple(name for _, name in sorted(found))


DEFAULT_HEADER = ("Useful behaviors (reusable procedures). Use them where they apply, and when you use one, refer "
                  "to it by its name:")


def render_behaviors(behaviors: Iterable[Behavior], *, header: str | None = DEFAULT_HEADER, bullet: str = "- ") -> str:
    """Behaviors as prompt text, the one renderer: one ``{bullet}behavior_name: instruction`` line each, under
    ``header`` (None: no header line). The default is the block PDR drafts prepend to their system part; the
    paper's BCI prompt (``agentkit/prompts/bci.txt``) takes the bare lines (``header=None, bullet=""``). A pitfall
    reads ``behavior_name: [pitfall: avoid this] instruction``. Empty string for no behaviors."""
    lines = [f"{bullet}{b.name}: {PITFALL_MARK if b.category == 'pitfall' else ''}{b.instruction}" for b in behaviors]
    if not lines:
        return ""
    return "\n".join(([header] if header else []) + lines)


def as_behaviors(value: Iterable[Behavior] | Mapping[str, str] | None) -> tuple[Behavior, ...]:
    """Behaviors from what callers hand over: ``Behavior`` objects, or the paper's ``{name: instruction}``
    mapping (each pair validated into a ``Behavior``)."""
    if value is None:
        return ()
    if isinstance(value, str):
        raise ValueError("behaviors are Behavior objects or a {name: instruction} mapping, not a string")
    if isinstance(value, Mapping):
        return tuple(Behavior(name=name, instruction=instruction) for name, instruction in value.items())
    return tuple(value)
