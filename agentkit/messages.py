"""Typed messages: the only thing roles exchange over the event bus.

Every message is an immutable (frozen) pydantic v2 model that carries its lineage: ``id``, ``run_id`` (one
pipeline run), ``parent_id`` (the message it answers), ``sender`` and a UTC timestamp, plus a ``kind``
string literal that names its type on the wire.

Serialisation: ``to_json(message)`` and ``from_json(text)`` round-trip every message losslessly. Decoding
dispatches on ``kind`` through a registry that every subclass joins when it is defined (so a message type
that a user defines in their own module is recorded and replayed like the built-in ones, which a fixed
annotated union could not do). Kinds must be unique; a clash is an error at class-definition time.

Use ``derive`` to answer a message: it copies ``run_id`` and points ``parent_id`` at the original.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentkit._behavior import Behavior, as_behaviors
from agentkit.errors import ConfigError

__all__ = [
    "AnswerRequest",
    "BehaviorProposal",
    "ContrastRequest",
    "CurateRequest",
    "DistillRequest",
    "DistillResult",
    "Draft",
    "Failure",
    "GradedAttempt",
    "Message",
    "Problem",
    "RefineRequest",
    "Reflection",
    "Selection",
    "Solution",
    "SolveRequest",
    "TeachRequest",
    "TeachResult",
    "TokenUsage",
    "Workspace",
    "WorkspaceVariant",
    "from_json",
    "message_types",
    "to_json",
]


WorkspaceVariant = Literal["summary", "topk", "topk-per-sample", "random-k", "error-analysis"]
"""How a Distiller builds the next round's workspace (see ``agentkit.methods.pdr``)."""
Selection = Literal["agreement", "judge"]
"""How an extractive workspace picks its drafts: by answer agreement or by the model's judgement."""


def _behaviors(value: Any) -> tuple[Behavior, ...]:
    """``Behavior`` objects from ``Behavior`` objects or a ``{name: instruction}`` mapping."""
    return as_behaviors(value)


def _new_id() -> str:
    return uuid.uuid4().hex


def _now() -> datetime:
    return datetime.now(UTC)


class TokenUsage(BaseModel):
    """Tokens spent producing something, as the backend reported them (raw, not discounted for caching)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_tokens: int = 0
    """Prompt tokens over all calls."""
    output_tokens: int = 0
    """Completion tokens over all calls."""
    calls: int = 0
    """How many LLM calls this covers."""
    cached: bool = False
    """True when every call was served from the response cache (tokens are the original call's)."""


_REGISTRY: dict[str, type[Message]] = {}
_M = TypeVar("_M", bound="Message")


class Message(BaseModel):
    """Base of every message. Subclasses set ``kind: Literal["..."] = "..."``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    """Wire name of the message type; ``from_json`` dispatches on it."""
    id: str = Field(default_factory=_new_id)
    """Unique id of this message (uuid4 hex)."""
    run_id: str = ""
    """The pipeline run this message belongs to ("" when outside any run)."""
    parent_id: str | None = None
    """Id of the message this one answers or derives from."""
    sender: str = ""
    """Who published it: a role or component name."""
    created_at: datetime = Field(default_factory=_now)
    """When it was created (UTC)."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        field = cls.model_fields.get("kind")
        kind = field.default if field is not None else None
        if not isinstance(kind, str) or not kind:
            return  # an intermediate base class without its own kind
        other = _REGISTRY.get(kind)
        if other is not None and other.__qualname__ != cls.__qualname__:
            raise ConfigError(
                f"message kind {kind!r} of {cls.__module__}.{cls.__qualname__} is already used by "
                f"{other.__module__}.{other.__qualname__}; give each message type a unique kind"
            )
        _REGISTRY[kind] = cls

    def derive(self, cls: type[_M], **fields: Any) -> _M:
        """Build a message of type ``cls`` that answers this one (same run, ``parent_id`` = this id)."""
        fields.setdefault("run_id", self.run_id)
        fields.setdefault("parent_id", self.id)
        return cls(**fields)

    def with_(self, **changes: Any) -> Self:
        """A validated copy with some fields changed (messages are immutable)."""
        return type(self).model_validate({**self.model_dump(), **changes})


class Problem(Message):
    """A problem to solve, as loaded from a dataset."""

    kind: Literal["problem"] = "problem"
    problem_id: str
    """Dataset id of the problem."""
    text: str
    """The problem statement."""
    reference: str | None = None
    """The reference final answer, when known (never shown to a model)."""
    topics: tuple[str, ...] = ()
    """Subjects or topics, when the dataset has them."""
    dataset: str = ""
    """Name of the dataset it came from."""


class SolveRequest(Message):
    """Ask a solver role to answer a problem."""

    kind: Literal["solve_request"] = "solve_request"
    problem: Problem
    method: str | None = None
    """Which registered method to use; None: the server's default (the first baseline, one chain of thought)."""
    max_tokens: int | None = None
    """Output token cap for the answer; None lets the role decide."""
    temperature: float = 0.0
    seed: int | None = None
    behaviors: tuple[Behavior, ...] = ()
    """Behaviors to put in context (behavior-conditioned inference; a ``{name: instruction}`` mapping is
    accepted); empty: with ``method="bci"`` a Student that has a handbook retrieves them itself."""
    k: int | None = None
    """How many behaviors to retrieve for ``bci`` when none are given (None: the Student's default)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Further parameters of the method (validated by the method's own parameter model)."""

    _check_behaviors = field_validator("behaviors", mode="before")(_behaviors)


class Solution(Message):
    """A solver's answer to a problem."""

    kind: Literal["solution"] = "solution"
    problem_id: str
    text: str
    """The full model output."""
    answer: str | None
    """The extracted final answer, or None when none could be found."""
    finish_reason: str = ""
    usage: TokenUsage = TokenUsage()
    model: str = ""
    b_seq: int = 0
    """Sequential budget spent on this solution (see ``agentkit.ledger``)."""
    b_total: int = 0
    """Total budget spent on this solution."""
    prompt_hash: str = ""
    """Hash of the prompt template used (reproducibility)."""
    method: str = ""
    """The method that produced it (``long-cot``, ``bci``, ``self-improve``, ``critique-revise``, ...)."""
    behaviors: tuple[str, ...] = ()
    """Names of the behaviors that were in context (BCI), in prompt order."""
    cited: tuple[str, ...] = ()
    """Names of those behaviors that the answer mentions."""
    behavior_tokens: int = 0
    """Input tokens the behavior block took in the answering call (measured by the server when the plain
    prompt's count is known, else estimated at four characters per token)."""


class AnswerRequest(Message):
    """Ask a run's Student (or Teacher) for one answering call: the ``prompt`` template rendered with the
    problem, ``prompt_fields`` and, when given, the ``behaviors`` block. Methods send these to the roles they
    attach for a run; ``round``/``branch``/``final`` place the call in the run's ledger."""

    kind: Literal["answer_request"] = "answer_request"
    problem: Problem
    prompt: str = "long_cot"
    """The prompt template (``agentkit/prompts/<prompt>.txt``): ``long_cot`` (plain chain of thought), ``bci``
    (with behaviors), ``bci_plain``, ``critique_revise``, ``rsa_aggregate``, or a method's own."""
    prompt_fields: dict[str, str] = Field(default_factory=dict)
    """The template's fields besides ``problem`` (and ``behaviors``, rendered from the field below)."""
    behaviors: tuple[Behavior, ...] = ()
    """Behaviors in context: rendered into the template's ``behaviors`` field, and the answer's ``behaviors``
    and ``cited``."""
    max_tokens: int | None = None
    temperature: float = 0.0
    seed: int | None = None
    round: int = 1
    branch: int = 0
    final: bool = True
    """This call produces the run's answer (the ledger's ``final`` call)."""
    method: str = ""
    """The ``Solution.method`` label of the answer."""

    _check_behaviors = field_validator("behaviors", mode="before")(_behaviors)


class CurateRequest(Message):
    """Ask the Strategist to solve (unless ``solution`` is given), reflect and extract behaviors."""

    kind: Literal["curate_request"] = "curate_request"
    problem: Problem
    solution: Solution | None = None
    """A trace to reflect on (self-improvement reflects on the model's own earlier attempt); None: solve first."""
    max_tokens: int = 1024
    """Output cap for each of the three calls."""
    max_behaviors: int = 5
    temperature: float = 0.0
    seed: int | None = 0
    reveal_reference: bool = True
    """Tell the Strategist the reference answer when reflecting (curation sets); never for test problems."""
    round: int = 1
    """The round of the Strategist's first call in its run's ledger (the next calls follow)."""
    branch: int = 0


class GradedAttempt(BaseModel):
    """One attempt at a problem with its grade: a draft of a sweep's PDR/SR run, say, graded against the reference
    by the grader (never by a model)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    answer: str | None = None
    correct: bool
    """The grader's verdict: the attempt's answer matches the reference."""
    trace_id: str = ""
    """Where the attempt comes from (a sweep cell's key, round and branch)."""


class ContrastRequest(CurateRequest):
    """Ask the Strategist to compare a group of graded attempts at one problem and extract what distinguished the
    correct ones (strategies) from the wrong ones (pitfalls). A ``CurateRequest``, so a Strategist answers it."""

    kind: Literal["contrast_request"] = "contrast_request"  # type: ignore[assignment]
    attempts: tuple[GradedAttempt, ...] = Field(min_length=1)


class TeachRequest(Message):
    """Ask the Teacher for a behavior-conditioned answer (and, with ``plain``, an ordinary one) for BC-SFT."""

    kind: Literal["teach_request"] = "teach_request"
    problem: Problem
    behaviors: tuple[Behavior, ...]
    """The behaviors in the Teacher's context (a ``{name: instruction}`` mapping is accepted)."""
    plain: bool = True
    max_tokens: int = 1024
    temperature: float = 0.0
    seed: int | None = 0


    _check_behaviors = field_validator("behaviors", mode="before")(_behaviors)


class TeachResult(Message):
    """The Teacher's answers to one problem."""

    kind: Literal["teach_result"] = "teach_result"
    problem_id: str
    conditioned: Solution
    """The answer written with the behaviors in context (the BC-SFT target)."""
    plain: Solution | None = None
    """The answer written without behaviors (the plain-SFT twin's target)."""


class Reflection(Message):
    """A Strategist's reflection on its own solution (correctness, missing behaviors, suggestions)."""

    kind: Literal["reflection"] = "reflection"
    problem_id: str
    solution_id: str
    text: str
    correct: bool | None = None
    """Whether the reflected-on solution matched the reference, when known."""


class BehaviorProposal(Message):
    """Behaviors extracted from a reflection, before they reach the handbook."""

    kind: Literal["behavior_proposal"] = "behavior_proposal"
    problem_id: str
    behaviors: dict[str, str]
    """``behavior_name -> instruction`` (only entries that passed ``parse_behaviors``)."""
    dataset: str | None = None
    """The dataset (split) the problem came from, e.g. ``gsm8k-train``."""
    source_trace_id: str | None = None
    trace_correct: bool | None = None
    dropped: tuple[tuple[str, str], ...] = ()
    """``(entry, reason)`` for each extracted entry that was rejected."""
    topics: tuple[str, ...] = ()
    """Topics the behaviors get in the handbook (the problem's subject, else its dataset)."""
    model: str = ""
    """The Strategist's model."""
    usage: TokenUsage = TokenUsage()
    """Tokens of the whole curation (solve, reflect, extract): its cost."""
    pitfalls: dict[str, str] = Field(default_factory=dict)
    """``behavior_name -> instruction`` of what to avoid (contrastive curation: learned from wrong attempts)."""
    attempts: tuple[GradedAttempt, ...] = ()
    """The graded attempts a contrastive curation compared (their grades become the behaviors' provenance)."""


class Draft(Message):
    """One draft of one round of Parallel-Distill-Refine (or Sequential Refinement)."""

    kind: Literal["draft"] = "draft"
    problem_id: str
    round: int
    branch: int
    text: str
    answer: str | None = None
    finish_reason: str = ""
    usage: TokenUsage = TokenUsage()
    cited: tuple[str, ...] = ()
    """Behavior names the draft mentions (when behaviors were in its context)."""
    reasoning: str = ""
    """The draft's reasoning, when the model returned it apart from ``text`` (reasoning models)."""


class Workspace(Message):
    """The bounded workspace a Distiller built from one round's drafts."""

    kind: Literal["workspace"] = "workspace"
    problem_id: str
    round: int
    text: str
    variant: WorkspaceVariant = "summary"
    source_draft_ids: tuple[str, ...] = ()
    drafts_seen: int = 0
    tokens: int = 0
    """Token count of ``text`` (bounded by the run's kappa)."""


class RefineRequest(Message):
    """Ask the Refiner for a next-round draft from the problem and a workspace."""

    kind: Literal["refine_request"] = "refine_request"
    problem: Problem
    workspace: Workspace | None = None
    round: int
    branch: int = 0
    max_tokens: int | None = None
    temperature: float = 0.0
    seed: int | None = None
    final: bool = False
    """This draft is the run's answer (the last round)."""
    behaviors: tuple[Behavior, ...] = ()
    """Behaviors to put in context (behavior-conditioned inference inside PDR); empty for none."""

    _check_behaviors = field_validator("behaviors", mode="before")(_behaviors)


class DistillRequest(Message):
    """Ask the Distiller for the workspace(s) of the next round from one round's drafts."""

    kind: Literal["distill_request"] = "distill_request"
    problem: Problem
    round: int
    drafts: tuple[Draft, ...]
    next_drafts: int = 1
    """How many drafts the next round runs (per-sample variants build one workspace each)."""
    variant: WorkspaceVariant = "summary"
    kappa: int = 512
    k: int = 2
    select: Selection = "agreement"
    seed: int = 0
    with_reasoning: bool = False
    """Build the workspace from each draft's reasoning and final text; default: the final text only."""


class DistillResult(Message):
    """The Distiller's answer: one shared workspace, or one per next-round draft."""

    kind: Literal["distill_result"] = "distill_result"
    problem_id: str
    round: int
    workspaces: tuple[Workspace, ...]


class Failure(Message):
    """A handler raised while handling the message ``parent_id``; the bus published this instead."""

    kind: Literal["failure"] = "failure"
    error_type: str
    """The exception's class name."""
    error: str
    """The exception's message."""
    handler: str = ""
    """Name of the subscription whose handler raised."""
    failed_kind: str = ""
    """``kind`` of the message that was being handled."""


def message_types() -> dict[str, type[Message]]:
    """Every registered message type by kind (built-in and user-defined)."""
    return dict(_REGISTRY)


def to_json(message: Message) -> str:
    """Serialise a message to one line of JSON."""
    return message.model_dump_json()


def from_json(data: str | bytes) -> Message:
    """Decode what ``to_json`` wrote, to the registered type named by its ``kind``."""
    import json

    try:
        raw = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not a JSON message: {exc}") from exc
    kind = raw.get("kind") if isinstance(raw, dict) else None
    cls = _REGISTRY.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ConfigError(
            f"unknown message kind {kind!r}: import the module that defines it before decoding "
            f"(known: {', '.join(sorted(_REGISTRY))})"
        )
    return cls.model_validate(raw)
