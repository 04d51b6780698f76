"""Behavior-conditioned inference (BCI, "Metacognitive Reuse" arXiv 2509.13237, section 4.1).

Behaviors are retrieved once, before generation (``agentkit.memory.retrieve_behaviors``: by embedding top-K,
the paper's AIME setting; by topic, its MATH setting; or both), put into the paper's BCI prompt by the Student
(``agentkit/prompts/bci.txt``: ``behavior_name: instruction`` lines, and the instruction to refer to a behavior
by name when using it), and the answer's citations are found by name.

Usage statistics go to the handbook: ``retrieved`` for every behavior put in context, ``cited`` for every
one the answer names, and, when the problem's reference is known, ``cited_correct`` or ``cited_wrong``
(graded with ``answers_match``). ``Solution.behavior_tokens`` estimates the input tokens the behavior block
took (the cost the paper leaves out of its plots). Registered as ``bci``.

Its baseline is ``bci-plain``: the same prompt with the behavior block cut out word for word
(``agentkit/prompts/bci_plain.txt``), which BCI itself also uses when it retrieves nothing, so that a
difference between the two is the behaviors' alone (long CoT's prompt is worded differently).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import Field, field_validator

from agentkit._behavior import Behavior, as_behaviors
from agentkit.backends.base import Backend
from agentkit.bus import Bus
from agentkit.errors import ConfigError
from agentkit.evaluation.answers import answers_match
from agentkit.evaluation.datasets import split_guarded
from agentkit.ledger import Ledger
from agentkit.memory.retrieval import (
    HandbookMode,
    Retrieval,
    UsageLog,
    UsageTarget,
    record_citations,
    retrieve_behaviors,
    topics_of,
)
from agentkit.memory.store import BehaviorStore
from agentkit.messages import AnswerRequest, Problem, Solution, TokenUsage
from agentkit.registry import DEFAULT_MAX_TOKENS, Method, MethodParams, MethodRecord, MethodResult, RunContext
from agentkit.roles import Student, ask, attached

from .self_consistency import majority_vote, vote

__all__ = ["BCI", "BCIParams", "BCIPlain", "BCIRecord", "Retrieval", "bci", "record_citations",
           "retrieve_behaviors", "topics_of"]


class BCIRecord(MethodRecord):
    """What BCI (and its baseline) records of a run."""

    behaviors_in_context: int = 0
    behavior_tokens: int = 0
    """Input tokens of the behavior block (``Solution.behavior_tokens``; the report's mean per group)."""
    handbook_mode: HandbookMode | None = None
    usage: list[tuple[str, str, int]] | None = None
    """A frozen run's usage events (behavior, event, count), logged instead of applied to the handbook."""
    unsure: bool | None = None
    """With ``when = "unsure"``: whether the plain probes disagreed (and behaviors were shown)."""
    probe_answers: list[str | None] | None = None

    @classmethod
    def aggregate(cls, diagnostics: list[dict[str, Any]]) -> dict[str, Any]:
        values = [d.get("behavior_tokens") for d in diagnostics]
        if not any(v is not None for v in values):
            return {}
        return {"behavior_tokens": sum(v or 0 for v in values) / len(values)}


async def bci(
    problem: Problem,
    backend: Backend,
    *,
    behaviors: Sequence[Behavior] | Mapping[str, str] | None = None,
    handbook: BehaviorStore | None = None,
    k: int = 8,
    retrieval: Retrieval = "embedding",
    ledger: Ledger | None = None,
    max_tokens: int | None = DEFAULT_MAX_TOKENS,
    temperature: float = 0.0,
    seed: int | None = 0,
    round: int = 1,
    branch: int = 0,
    final: bool = True,
    method: str = "bci",
    bus: Bus | None = None,
    usage: UsageTarget | None = None,
    exclude_own: bool = True,
    exclude_split: bool = False,
) -> Solution:
    """Solve ``problem`` with behaviors in context: ``behaviors`` as given, else the top ``k`` from ``handbook``
    (never one curated from this problem, unless ``exclude_own`` is off; with ``exclude_split``, none curated
    from the problem's dataset split).

    With ``handbook``, usage is recorded (retrieved, cited, and cited_correct / cited_wrong when the reference
    is known) in ``usage`` (default: the handbook itself; a ``UsageLog`` keeps a frozen handbook unchanged). With
    no behaviors at all (none given, none retrieved) it answers with BCI's prompt minus the behavior block
    (``bci_plain``, the ``bci-plain`` method's prompt)."""
    if behaviors is None:
        if handbook is None:
            raise ConfigError("bci() needs behaviors= or a handbook= to retrieve them from")
        chosen: tuple[Behavior, ...] = tuple(await retrieve_behaviors(
            handbook, problem, k=k, retrieval=retrieval, usage=usage, exclude_own=exclude_own,
            exclude_split=exclude_split))
    else:
        chosen = as_behaviors(behaviors)
    problem, ctx = RunContext.begin(problem, backend, MethodParams(), ledger=ledger, seed=seed, bus=bus)
    async with attached(bus, problem.run_id, [(Student(backend, ledger=ctx.ledger), 1)]) as active:
        solution = await ask(active, problem.derive(
            AnswerRequest, sender="bci", problem=problem, prompt="bci" if chosen else "bci_plain", behaviors=chosen,
            max_tokens=max_tokens, temperature=temperature, seed=seed, round=round, branch=branch, final=final,
            method=method), Solution)
    if handbook is not None and solution.cited:
        correct = answers_match(solution.answer, problem.reference) if problem.reference is not None else None
        await record_citations(usage if usage is not None else handbook, solution.cited, correct=correct)
    return solution


class BCIParams(MethodParams):
    k: int = Field(default=8, ge=1, le=1000)
    """How many behaviors to retrieve (top-K)."""
    retrieval: Retrieval = "embedding"
    """Retrieve by embedding similarity, by the problem's topic, both, or ``utility`` (similarity reranked by the
    handbook's graded citation record; ``agentkit.memory.retrieval.utility_score``)."""
    store: str | None = None
    """The handbook to retrieve from (a store directory or a service URL), for the CLI and sweeps to open."""
    behaviors: tuple[Behavior, ...] | None = None
    """Behaviors to use as given instead of retrieving (a ``{name: instruction}`` mapping is accepted)."""
    exclude_split: bool | None = None
    """Retrieve nothing curated from the problem's own dataset split (``Provenance.dataset``): the guard for a
    handbook built, even in part, from the split being evaluated. None (default): on for a frozen evaluation of
    an evaluation split (not a training or curation split: ``is_training_split``), off otherwise (an online run
    learns from the stream it answers). A behavior curated from the problem itself is never retrieved either
    way."""
    handbook_mode: HandbookMode = "frozen"
    """``frozen`` (default): usage from answering is logged in the result's details, not applied to the
    handbook, so evaluation never learns from the labels it is scored on; ``online``: applied (test-time
    learning), which the method's key in sweeps then says."""
    when: Literal["always", "unsure"] = "always"
    """``always``: behaviors in every answer. ``unsure``: first ``probes`` plain answers (BCI's prompt without the
    behavior block) sampled at ``probe_temperature``; when they all agree that answer stands and no behavior is
    shown, otherwise one answer with behaviors follows (the setting where small models are reported to gain
    from hints: only where they are unsure)."""
    probes: int = Field(default=2, ge=2, le=8)
    """With ``when = "unsure"``: how many plain answers must agree."""
    probe_temperature: float = Field(default=0.7, ge=0.0, le=5.0)
    """With ``when = "unsure"``: the probes' temperature (above 0, so that they can disagree)."""

    @field_validator("behaviors", mode="before")
    @classmethod
    def _behaviors(cls, value: Any) -> tuple[Behavior, ...] | None:
        return None if value is None else as_behaviors(value)


class BCI(Method[BCIParams]):
    name = "bci"
    summary = "behavior-conditioned inference: retrieved behaviors in the prompt (needs a handbook)"
    params_model = BCIParams
    record_model = BCIRecord
    templates = ("bci", "bci_plain")

    def needs_handbook(self, params: BCIParams) -> bool:
        return params.behaviors is None

    call_fields = ("probes",)

    def calls(self, params: BCIParams) -> int:
        return params.probes + 1 if params.when == "unsure" else 1

    def generated(self, params: BCIParams, cap: int) -> int:
        return self.calls(params) * cap

    async def run(self, problem: Problem, ctx: RunContext[BCIParams]) -> MethodResult:
        p, ledger = ctx.params, ctx.ledger
        if p.behaviors is None and ctx.handbook is None:
            raise ConfigError("a bci request needs behaviors, or a handbook to retrieve them (params.store, "
                              "--store, or a MethodServer with a handbook)")
        log = UsageLog() if p.handbook_mode == "frozen" else None
        cap = await ctx.call_cap(problem)
        unsure: dict[str, Any] = {}
        if p.when == "unsure":
            # the probes and the answer after them lie on one path: under a sequential budget the probes get half
            probe_cap = cap // 2 if ctx.budget is not None else cap
            probes, agreed = await _probe(problem, ctx, probe_cap)
            unsure = {"unsure": agreed is None, "probe_answers": [s.answer for s in probes]}
            if agreed is not None:
                return MethodResult(solution=agreed, ledger=ledger, record=BCIRecord(
                    handbook_mode=p.handbook_mode, usage=log.events if log is not None else None, **unsure))
        solution = await bci(problem, ctx.backend, behaviors=p.behaviors, handbook=ctx.handbook, k=p.k,
                             retrieval=p.retrieval, ledger=ledger, max_tokens=cap, temperature=p.temperature,
                             seed=ctx.seed, bus=ctx.bus, usage=log,
                             exclude_split=split_guarded(p.exclude_split, p.handbook_mode, problem.dataset),
                             round=2 if unsure else 1)
        if unsure:  # the whole run's usage and budgets, probes included
            solution = solution.with_(b_seq=ledger.b_seq, b_total=ledger.b_total, usage=TokenUsage(
                input_tokens=ledger.input_tokens, output_tokens=ledger.output_tokens, calls=ledger.calls))
        return MethodResult(solution=solution, ledger=ledger, record=BCIRecord(
            handbook_mode=p.handbook_mode, usage=log.events if log is not None else None,
            behaviors_in_context=len(solution.behaviors), behavior_tokens=solution.behavior_tokens, **unsure))


async def _probe(problem: Problem, ctx: RunContext[BCIParams], cap: int) -> tuple[list[Solution], Solution | None]:
    """``p.probes`` plain answers in parallel (round 1); the agreed answer (its call marked final, the whole run's
    usage) when every probe gave one and they all match, else None."""
    p = ctx.params
    async with attached(ctx.bus, problem.run_id, [(Student(ctx.backend, ledger=ctx.ledger), p.probes)]) as active:
        probes = list(await asyncio.gather(*(ask(active, problem.derive(
            AnswerRequest, sender="bci", problem=problem, prompt="bci_plain", max_tokens=cap,
            temperature=p.probe_temperature, seed=ctx.derive_seed(problem.problem_id, "probe", i), round=1, branch=i,
            final=False, method="bci"), Solution) for i in range(p.probes))))
    _, groups = majority_vote([s.answer for s in probes])
    if len(groups) != 1 or len(groups[0]) != len(probes):
        return probes, None
    solution, _ = vote(probes, ctx.ledger, final_round=1, method="bci")
    return probes, solution


class BCIPlain(Method[MethodParams]):
    """BCI's matched no-behavior baseline: the BCI prompt with its behavior block cut out, one call."""

    name = "bci-plain"
    summary = "BCI's prompt without the behavior block (BCI's matched baseline; no handbook)"
    baseline = True
    params_model = MethodParams
    record_model = BCIRecord
    templates = ("bci_plain",)

    async def run(self, problem: Problem, ctx: RunContext[MethodParams]) -> MethodResult:
        solution = await bci(problem, ctx.backend, behaviors=(), ledger=ctx.ledger,
                             max_tokens=await ctx.call_cap(problem), temperature=ctx.params.temperature,
                             seed=ctx.seed, bus=ctx.bus, method="bci-plain")
        return MethodResult(solution=solution, ledger=ctx.ledger, record=BCIRecord())
