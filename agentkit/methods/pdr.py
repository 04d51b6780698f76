"""Parallel-Distill-Refine (PDR) and Sequential Refinement (SR), after "Rethinking Thinking Tokens: LLMs as
Improvement Operators" (arXiv 2510.01123).

Each round r runs M_r drafts concurrently, each conditioned on the problem and the previous round's
workspace; between rounds a distill step rebuilds a bounded workspace (at most ``kappa`` tokens) from that
round's drafts only; the last round has one draft, the answer. SR is M_r = 1 (its workspace is the previous
draft, or an error analysis of it). The workspace variants and the extractive truncation rule are the
Distiller's (``agentkit.roles.pdr_roles``); this module orchestrates: every draft is a ``RefineRequest`` to a
``Refiner`` and every distill step a ``DistillRequest`` to a ``Distiller``, both attached to the run's bus for
the length of the run and charging the run's ledger.

A draft that fails (after the backend's own retries) is dropped; the round goes on with the rest and the
workspace records how many drafts it saw. A round in which every draft fails raises.

Budgets go to the ``Ledger``: drafts as role ``student`` (round 1) or ``refiner``, branch = draft index;
distill calls as role ``distiller``; the final draft is marked final. ``plan_draft_tokens`` derives the
per-draft ``max_tokens`` that puts a run at a target ``B_seq``, so PDR, SR and long chain-of-thought are
compared at the same sequential budget. The prompts are agentkit's own (the paper's are not public); each
template file says so. Registered as ``pdr`` and ``sr``.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from agentkit._behavior import Behavior
from agentkit.backends.base import Backend
from agentkit.bus import Bus
from agentkit.calls import counted_prompt_tokens
from agentkit.errors import (
    BackendError,
    BackendRequestError,
    BackendUnavailable,
    BudgetExceeded,
    ConfigError,
    HandlerFailed,
)
from agentkit.evaluation.answers import answers_match
from agentkit.evaluation.datasets import split_guarded
from agentkit.ledger import Ledger, estimate_prompt_tokens
from agentkit.log import get_logger
from agentkit.memory.retrieval import (
    HandbookMode,
    Retrieval,
    UsageLog,
    UsageTarget,
    record_citations,
    retrieve_behaviors,
)
from agentkit.memory.store import BehaviorStore
from agentkit.messages import (
    DistillRequest,
    DistillResult,
    Draft,
    Problem,
    RefineRequest,
    Selection,
    Solution,
    TokenUsage,
    Workspace,
    WorkspaceVariant,
)
from agentkit.prompts import load_prompt
from agentkit.registry import (
    DEFAULT_MAX_TOKENS,
    MAX_CALL_TOKENS,
    Method,
    MethodParams,
    MethodRecord,
    MethodResult,
    Plan,
    RunContext,
    start_run,
)
from agentkit.roles import Distiller, Refiner, ask, attached
from agentkit.roles.pdr_roles import EXTRACTIVE, JUDGE_OUTPUT_TOKENS, distill, write_draft
from agentkit.seeds import derive_seed

__all__ = [
    "PDR",
    "SR",
    "DraftTrace",
    "PDRConfig",
    "PDRParams",
    "PDRRecord",
    "PDRResult",
    "SRParams",
    "Variant",
    "WorkspaceTrace",
    "distill",
    "pdr",
    "plan_draft_tokens",
    "planning_prompt_tokens",
    "sr",
    "sr_config",
    "write_draft",
]

_log = get_logger(__name__)
Variant = WorkspaceVariant


def _schedule(rounds: int, drafts: int | tuple[int, ...]) -> tuple[int, ...]:
    """Drafts per round: M for every round but the last (which has one), or the schedule as given."""
    if isinstance(drafts, int):
        return (drafts,) * (rounds - 1) + (1,)
    return tuple(drafts)


def _check_schedule(rounds: int, drafts: int | tuple[int, ...], variant: str) -> None:
    """The rule for a drafts schedule, for the configuration and for the method's parameters alike."""
    schedule = _schedule(rounds, drafts)
    if len(schedule) != rounds or schedule[-1] != 1 or any(m < 1 for m in schedule):
        raise ValueError(f"drafts schedule {schedule} must have {rounds} entries >= 1 and end in 1")
    if variant == "error-analysis" and max(schedule) != 1:
        raise ValueError("the error-analysis workspace is for SR (one draft per round)")


MAX_DRAFTS = 64
"""Drafts in one round at most, like RSA's population (a round's drafts run at once)."""


class RefinementShape(BaseModel):
    """What a PDR/SR run's rounds look like: the fields ``PDRConfig`` (a run's configuration) and ``PDRParams``
    (the registered method's parameters) share, and the schedule rule that checks them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rounds: int = Field(default=2, ge=1, le=16)
    drafts: int | tuple[int, ...] = 4
    """Drafts per round: one number M (1-64) for every round but the last (which is always 1), or the full
    schedule M_1..M_R ending in 1."""
    kappa: int = Field(default=512, ge=16, le=MAX_CALL_TOKENS)
    """Workspace bound in tokens."""
    variant: Variant = "summary"
    k: int = Field(default=2, ge=1, le=64)
    """Drafts in an extractive workspace."""
    select: Selection = "agreement"
    workspace_reasoning: bool = False
    """Workspaces see each draft's reasoning too (reasoning models); default: the final text only."""

    @field_validator("drafts")
    @classmethod
    def _bounded(cls, drafts: int | tuple[int, ...]) -> int | tuple[int, ...]:
        counts = (drafts,) if isinstance(drafts, int) else drafts
        if len(counts) > 16 or any(not 1 <= m <= MAX_DRAFTS for m in counts):
            raise ValueError(f"drafts per round must be 1-{MAX_DRAFTS} (a schedule at most 16 rounds long)")
        return drafts

    @model_validator(mode="after")
    def _check(self) -> Self:
        _check_schedule(self.rounds, self.drafts, self.variant)  # refused when given, not mid-run
        return self

    @property
    def schedule(self) -> tuple[int, ...]:
        return _schedule(self.rounds, self.drafts)


class PDRConfig(RefinementShape):
    """One PDR (or SR) run's configuration: its shape, the drafts' output cap, temperature and seed."""

    max_tokens: int = Field(default=DEFAULT_MAX_TOKENS, ge=1)
    """Output cap of each draft."""
    temperature: float = Field(default=0.7, ge=0)
    seed: int = 0


# -- the budget plan: how a sequential budget splits over rounds, drafts and workspaces ------------------------

def planning_prompt_tokens(problem_text: str, config: PDRConfig | None = None) -> int:
    """The prompt size to plan a method's drafts with: its longest draft prompt (the refine template with an
    empty workspace for PDR/SR, the solve template for one long chain of thought), counted as the budgeted call
    counts prompts when it caps a call (``estimate_prompt_tokens``: the estimator + 4 per message)."""
    return estimate_prompt_tokens(_planning_prompt(problem_text, config))


def _planning_prompt(problem_text: str, config: PDRConfig | None) -> list[dict[str, str]]:
    template = "long_cot" if config is None or config.rounds == 1 else "pdr_refine"
    return load_prompt(template).render(problem=problem_text, workspace="")


async def counted_planning_prompt_tokens(backend: Backend, problem_text: str, config: PDRConfig | None = None) -> int:
    """``planning_prompt_tokens``, counted exactly by ``backend`` where it can (its tokenizer endpoint): a method
    that plans its calls at run time plans them from the prompt the server will really see."""
    return await counted_prompt_tokens(backend, _planning_prompt(problem_text, config))


def plan_budget(target_bseq: int, *, prompt_tokens: int, config: PDRConfig | None = None) -> Plan:
    """How a sequential budget ``target_bseq`` splits: the per-draft ``max_tokens`` m and what else lies on the
    critical path (``config`` None: one long chain of thought). Model of the critical path, with P = prompt
    tokens and m = draft output:

    - long CoT: ``P + m``;
    - PDR/SR: every round's draft stage ``P + W_r + m`` (W_1 = 0, W_r = kappa), plus for r < R the distill
      stage: ``summary``/``error-analysis`` ``P + M_r * m + kappa``; ``judge`` selection
      ``P + M_r * m + 16``; agreement-based and random selection make no call.
    """
    if config is None:
        return Plan(max_tokens=target_bseq - prompt_tokens, fixed=prompt_tokens)
    schedule = config.schedule
    fixed, per_m = 0, 0
    for r, drafts in enumerate(schedule, 1):
        fixed += prompt_tokens + (config.kappa if r > 1 else 0)
        per_m += 1
        if r < len(schedule):
            if config.variant in {"summary", "error-analysis"}:
                fixed += prompt_tokens + config.kappa
                per_m += drafts
            elif config.select == "judge" and config.variant in {"topk", "topk-per-sample"}:
                fixed += prompt_tokens + JUDGE_OUTPUT_TOKENS
                per_m += drafts
    return Plan(max_tokens=(target_bseq - fixed) // per_m, fixed=fixed, per_token=per_m)


def plan_draft_tokens(target_bseq: int, *, prompt_tokens: int, config: PDRConfig | None = None) -> int:
    """Per-draft ``max_tokens`` so that a run's ``B_seq`` is at most ``target_bseq`` (``plan_budget``'s m).
    Raises ``BudgetExceeded`` when not even one output token per draft fits."""
    m = plan_budget(target_bseq, prompt_tokens=prompt_tokens, config=config).max_tokens
    if m < 1:
        raise BudgetExceeded(f"a sequential budget of {target_bseq} tokens leaves no room for a draft "
                             f"(prompt {prompt_tokens} tokens); raise the budget or lower kappa/rounds")
    return int(m)


class PDRResult(BaseModel):
    """What one run produced: the answer, every draft and workspace, the budgets and diagnostics."""

    answer: str | None
    text: str
    drafts: list[Draft]
    workspaces: list[Workspace]
    budget: dict[str, int]
    diagnostics: dict[str, Any]

    def record(self, handbook_mode: HandbookMode | None = None, usage: list[tuple[str, str, int]] | None = None
               ) -> PDRRecord:
        """The method's record of this run (what sweep rows and traces keep)."""
        return PDRRecord(
            rounds=self.diagnostics["rounds"], schedule=self.diagnostics["schedule"], handbook_mode=handbook_mode,
            usage=usage, drafts=[DraftTrace(d.round, d.branch, d.answer, d.finish_reason, d.usage.output_tokens, d.text)
                                 for d in self.drafts],
            workspaces=[WorkspaceTrace(w.round, w.tokens, w.drafts_seen, w.text) for w in self.workspaces])


class DraftTrace(NamedTuple):
    """One draft as a trace keeps it (a JSON array: the viewer's row)."""

    round: int
    branch: int
    answer: str | None
    finish_reason: str
    output_tokens: int
    text: str


class WorkspaceTrace(NamedTuple):
    round: int
    tokens: int
    drafts_seen: int
    text: str


class PDRRecord(MethodRecord):
    """What PDR and SR record of a run: per-round diagnostics (answers, agreement, drafts right, workspace
    tokens, drafts dropped), the schedule, a handbook's mode and frozen usage; the drafts and workspaces (texts)
    only in a trace."""

    trace_fields = ("drafts", "workspaces")

    rounds: list[dict[str, Any]]
    schedule: list[int]
    handbook_mode: HandbookMode | None = None
    usage: list[tuple[str, str, int]] | None = None
    drafts: list[DraftTrace] = Field(default_factory=list)
    workspaces: list[WorkspaceTrace] = Field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The rounds run, the schedule, each round's answers and agreement (and a handbook's mode)."""
        out: dict[str, Any] = {"rounds": len(self.rounds), "schedule": self.schedule,
                               "round_answers": [r.get("answers") for r in self.rounds],
                               "round_agreement": [r.get("agreement") for r in self.rounds]}
        if self.handbook_mode is not None:
            out["handbook_mode"] = self.handbook_mode
        return out

    @classmethod
    def aggregate(cls, diagnostics: list[dict[str, Any]]) -> dict[str, Any]:
        """``round_accuracy``: per round, the share of that round's drafts whose answer was right (mean over
        the rows that graded their drafts)."""
        per_round: dict[int, list[float]] = {}
        for d in diagnostics:
            for i, diag in enumerate(d.get("rounds") or []):
                if diag.get("drafts") and "correct_drafts" in diag:
                    per_round.setdefault(i, []).append(diag["correct_drafts"] / diag["drafts"])
        rounds = [round(sum(v) / len(v), 4) for _, v in sorted(per_round.items())]
        return {"round_accuracy": rounds} if rounds else {}


async def pdr(problem: Problem, backend: Backend, config: PDRConfig | None = None, *,
              ledger: Ledger | None = None, bus: Bus | None = None, behaviors: Sequence[Behavior] = (),
              handbook: BehaviorStore | None = None, usage: UsageTarget | None = None) -> PDRResult:
    """Run PDR (or SR, when every round has one draft) on one problem.

    ``behaviors`` (retrieved by the caller, e.g. ``handbook.search(problem.text, k)``) go into every draft's
    prompt (behavior-conditioned inference inside PDR); each draft's ``cited`` lists the behavior names it
    mentions, the diagnostics count them per round, and with ``handbook`` (a ``BehaviorStore``) every
    citation is recorded as ``cited``, plus ``cited_correct`` / ``cited_wrong`` for the final draft when the
    reference is known, in ``usage`` when given (a ``UsageLog`` leaves a frozen handbook unchanged).

    The run's ``Refiner`` and ``Distiller`` are attached to ``bus`` (or to a bus of the run's own) for its
    length, and take only this run's requests (``problem.run_id``; set to the problem's message id if empty).
    """
    config = config or PDRConfig()
    ledger = ledger if ledger is not None else Ledger()
    problem = start_run(problem, ledger)
    schedule = config.schedule
    roles = [(Refiner(backend, ledger=ledger), max(schedule)), (Distiller(backend, ledger=ledger), max(schedule))]
    given = tuple(behaviors)
    all_drafts: list[Draft] = []
    all_workspaces: list[Workspace] = []
    rounds_diag: list[dict[str, Any]] = []
    workspaces: list[Workspace] = []
    async with attached(bus, problem.run_id, roles) as active:
        for r, m in enumerate(schedule, 1):
            final = r == len(schedule)
            # A shared workspace serves every draft; per-sample variants have one per draft.
            inputs: list[Workspace | None] = [None] * m if not workspaces else \
                [workspaces[b] if len(workspaces) > 1 else workspaces[0] for b in range(m)]
            requests = [problem.derive(RefineRequest, sender="pdr", problem=problem, workspace=inputs[b], round=r,
                                       branch=b, max_tokens=config.max_tokens, temperature=config.temperature,
                                       seed=derive_seed(config.seed, problem.problem_id, "draft", r, b), final=final,
                                       behaviors=given)
                        for b in range(m)]
            outcomes = await asyncio.gather(*(ask(active, q, Draft) for q in requests), return_exceptions=True)
            drafts = [o for o in outcomes if isinstance(o, Draft)]
            failed = [o for o in outcomes if not isinstance(o, Draft)]
            for exc in failed:
                if not isinstance(exc, (BackendError, HandlerFailed)):
                    raise exc  # a bug, or a budget that left nothing: never swallowed
                _log.warning("draft dropped", problem=problem.problem_id, round=r, error=str(exc))
            if not drafts:
                last = failed[-1]
                message = f"every draft of round {r} failed; last error: {last}"
                cause, status = getattr(last, "cause", "draft failed"), getattr(last, "status", None)
                if all(isinstance(e, BackendRequestError) for e in failed):  # refused: rerunning will not help
                    raise BackendRequestError(message, cause=cause, status=status)
                raise BackendUnavailable(message, cause=cause, status=status)
            drafts.sort(key=lambda d: d.branch)
            all_drafts.extend(drafts)
            diag = _round_diagnostics(drafts, failed, problem.reference)
            if given:
                diag["citations"] = dict(Counter(name for d in drafts for name in d.cited))
            if not final:
                result = await ask(active, problem.derive(
                    DistillRequest, sender="pdr", problem=problem, round=r, drafts=tuple(drafts),
                    next_drafts=schedule[r], variant=config.variant, kappa=config.kappa, k=config.k,
                    select=config.select, seed=config.seed, with_reasoning=config.workspace_reasoning),
                    DistillResult)
                workspaces = list(result.workspaces)
                all_workspaces.extend(workspaces)
                if problem.reference is not None:
                    diag["correct_in_workspace"] = [
                        any(answers_match(d.answer, problem.reference) for d in drafts if d.id in w.source_draft_ids)
                        if config.variant in EXTRACTIVE else _mentions(w.text, problem.reference)
                        for w in workspaces]
                diag["workspace_tokens"] = [w.tokens for w in workspaces]
            rounds_diag.append(diag)
    answer_draft = all_drafts[-1]
    if handbook is not None and given:
        target = usage if usage is not None else handbook
        for d in all_drafts[:-1]:
            await record_citations(target, d.cited, correct=None)
        correct = answers_match(answer_draft.answer, problem.reference) if problem.reference is not None else None
        await record_citations(target, answer_draft.cited, correct=correct)
    return PDRResult(answer=answer_draft.answer, text=answer_draft.text, drafts=all_drafts,
                     workspaces=all_workspaces, budget=ledger.summary(),
                     diagnostics={"rounds": rounds_diag, "schedule": list(schedule), "variant": config.variant})


def _mentions(text: str, reference: str) -> bool:
    candidates = re.findall(r"-?\d[\d,]*(?:\.\d+)?", text)
    return any(answers_match(c, reference) for c in candidates) or reference in text


def _round_diagnostics(drafts: list[Draft], failed: list[BaseException], reference: str | None) -> dict[str, Any]:
    answers = [d.answer for d in drafts]
    top = Counter(a for a in answers if a is not None).most_common(1)
    diag: dict[str, Any] = {
        "answers": answers, "drafts": len(drafts), "failed": len(failed),
        "agreement": round(top[0][1] / len(drafts), 3) if top else 0.0,
        "truncation_rate": round(sum(d.finish_reason == "length" for d in drafts) / len(drafts), 3),
    }
    if reference is not None:
        diag["correct_drafts"] = sum(answers_match(a, reference) for a in answers)
    return diag


class PDRParams(MethodParams, RefinementShape):
    """The ``pdr`` method's parameters: a refinement shape, how drafts sample, and behaviors from a handbook."""

    min_temperature: float = Field(default=0.7, ge=0.0, le=5.0)
    """Drafts sample at ``max(temperature, min_temperature)`` so that parallel drafts differ; 0 to sample at
    ``temperature`` exactly."""
    behavior_k: int = Field(default=0, ge=0, le=1000, validation_alias=AliasChoices("behavior_k", "behaviors"))
    """How many behaviors to retrieve from the handbook into every draft (BCI inside PDR; BCI's own ``k``); 0 for
    none. The name ``behaviors`` is accepted too (what it was called before; in BCI ``behaviors`` is the list of
    behaviors themselves)."""
    retrieval: Retrieval = "embedding"
    store: str | None = None
    """The handbook to retrieve from (a store directory or a service URL), for the CLI and sweeps to open."""
    handbook_mode: HandbookMode = "frozen"
    """As BCI's: ``frozen`` logs usage in the record, ``online`` applies it to the handbook."""
    exclude_split: bool | None = None
    """As BCI's: retrieve nothing curated from the problem's own dataset split (None: on for a frozen evaluation
    of an evaluation split)."""


class SRParams(MethodParams):
    rounds: int = Field(default=2, ge=1, le=16)
    kappa: int = Field(default=512, ge=16, le=MAX_CALL_TOKENS)
    """Bound of the workspace (the previous draft's tail, or its error analysis) in tokens."""
    error_analysis: bool = False
    """The workspace is an error analysis of the previous draft instead of the draft itself."""
    workspace_reasoning: bool = False
    """Reasoning models: the workspace sees the previous draft's reasoning too; default: its final text only."""


def sr_config(params: SRParams, *, seed: int | None = 0) -> PDRConfig:
    """The PDR configuration that is Sequential Refinement with ``params`` (one draft per round)."""
    return PDRConfig(rounds=params.rounds, drafts=(1,) * params.rounds, kappa=params.kappa, k=1,
                     variant="error-analysis" if params.error_analysis else "topk", max_tokens=params.max_tokens,
                     temperature=params.temperature, seed=seed or 0, workspace_reasoning=params.workspace_reasoning)


async def sr(problem: Problem, backend: Backend, *, rounds: int | None = None, kappa: int | None = None,
             error_analysis: bool | None = None, max_tokens: int | None = None, temperature: float | None = None,
             seed: int = 0, ledger: Ledger | None = None, bus: Bus | None = None) -> PDRResult:
    """Sequential Refinement: one draft per round; the workspace is the previous draft (truncated to kappa)
    or, with ``error_analysis``, an analysis of its errors. Unset arguments take ``SRParams``' defaults (the
    ones ``agentkit solve`` and sweeps use)."""
    given = {"rounds": rounds, "kappa": kappa, "error_analysis": error_analysis, "max_tokens": max_tokens,
             "temperature": temperature}
    params = SR().params(**{k: v for k, v in given.items() if v is not None})
    return await pdr(problem, backend, sr_config(params, seed=seed), ledger=ledger, bus=bus)


def _solution(problem: Problem, result: PDRResult, ledger: Ledger, method: Method[Any],
              behaviors: Sequence[Behavior]) -> Solution:
    final = result.drafts[-1]
    return problem.derive(
        Solution, sender=method.name, problem_id=problem.problem_id, text=final.text, answer=final.answer,
        finish_reason=final.finish_reason, b_seq=ledger.b_seq, b_total=ledger.b_total, method=method.name,
        usage=TokenUsage(input_tokens=ledger.input_tokens, output_tokens=ledger.output_tokens, calls=ledger.calls),
        model=next((r.model for r in reversed(ledger.records) if r.final), ""), prompt_hash=method.prompt_hash,
        behaviors=tuple(b.name for b in behaviors), cited=final.cited)


def _pdr_config(p: PDRParams, seed: int | None) -> PDRConfig:
    return PDRConfig(rounds=p.rounds, drafts=p.drafts, kappa=p.kappa, variant=p.variant, k=p.k, select=p.select,
                     max_tokens=p.max_tokens, temperature=max(p.temperature, p.min_temperature), seed=seed or 0,
                     workspace_reasoning=p.workspace_reasoning)


def _plan(problem: Problem, config: PDRConfig, budget: int) -> Plan:
    return plan_budget(budget, prompt_tokens=planning_prompt_tokens(problem.text, config), config=config)


class PDR(Method[PDRParams]):
    name = "pdr"
    summary = "Parallel-Distill-Refine: M drafts a round, distilled into a bounded workspace"
    params_model = PDRParams
    record_model = PDRRecord
    templates = ("long_cot", "pdr_refine", "pdr_summary", "pdr_judge")

    def needs_handbook(self, params: PDRParams) -> bool:
        return params.behavior_k > 0

    def plan(self, problem: Problem, params: PDRParams | None, budget: int) -> Plan:
        return _plan(problem, _pdr_config(self.coerce(params), 0), budget)

    def generated(self, params: PDRParams, cap: int) -> int:
        return _generated(_pdr_config(params, 0), cap)

    call_fields = ("rounds", "drafts")

    def calls(self, params: PDRParams) -> int:
        return _calls(_pdr_config(params, 0))

    async def run(self, problem: Problem, ctx: RunContext[PDRParams]) -> MethodResult:
        p = ctx.params
        return await _run(self, problem, ctx, _pdr_config(p, ctx.seed), ctx.handbook if p.behavior_k else None,
                          p.behavior_k, p.retrieval, p.handbook_mode, p.exclude_split)


class SR(Method[SRParams]):
    name = "sr"
    summary = "Sequential Refinement: one draft a round, refined from the previous one"
    params_model = SRParams
    record_model = PDRRecord
    templates = ("long_cot", "pdr_refine", "sr_error_analysis")

    def plan(self, problem: Problem, params: SRParams | None, budget: int) -> Plan:
        return _plan(problem, sr_config(self.coerce(params)), budget)

    def generated(self, params: SRParams, cap: int) -> int:
        return _generated(sr_config(params), cap)

    call_fields = ("rounds",)

    def calls(self, params: SRParams) -> int:
        return _calls(sr_config(params))

    async def run(self, problem: Problem, ctx: RunContext[SRParams]) -> MethodResult:
        return await _run(self, problem, ctx, sr_config(ctx.params, seed=ctx.seed), None, 0, "embedding")


def _workspace_calls(config: PDRConfig) -> int:
    """The model calls that make workspaces: a summary or error analysis once per round but the last; an
    extractive workspace makes none unless a judge picks it (one call per round, or per next-round draft for
    ``topk-per-sample``)."""
    schedule = config.schedule
    if config.variant in EXTRACTIVE:
        if config.select != "judge" or config.variant == "random-k":
            return 0
        return sum(schedule[1:]) if config.variant == "topk-per-sample" else len(schedule) - 1
    return len(schedule) - 1


def _calls(config: PDRConfig) -> int:
    """Every draft and every workspace call of a run."""
    return sum(config.schedule) + _workspace_calls(config)


def _generated(config: PDRConfig, cap: int) -> int:
    """Every draft at ``cap``, and every workspace call at kappa (as a bound)."""
    return sum(config.schedule) * cap + _workspace_calls(config) * config.kappa


async def _run(method: Method[Any], problem: Problem, ctx: RunContext[Any], config: PDRConfig,
               handbook: BehaviorStore | None, k: int, retrieval: Retrieval, mode: HandbookMode = "frozen",
               exclude_split: bool | None = None) -> MethodResult:
    if ctx.budget is not None:
        m = plan_draft_tokens(ctx.budget, config=config, prompt_tokens=await counted_planning_prompt_tokens(
            ctx.backend, problem.text, config))
        config = config.model_copy(update={"max_tokens": m})
    if k and handbook is None:
        raise ConfigError(f"{method.name} with behavior_k={k} needs a handbook (params.store or --store)")
    log = UsageLog() if mode == "frozen" else None
    behaviors = (await retrieve_behaviors(handbook, problem, k=k, retrieval=retrieval, usage=log,
                                          exclude_split=split_guarded(exclude_split, mode, problem.dataset))
                 if handbook is not None and k else [])
    result = await pdr(problem, ctx.backend, config, ledger=ctx.ledger, bus=ctx.bus, behaviors=behaviors,
                       handbook=handbook, usage=log)
    record = result.record(handbook_mode=mode if handbook is not None else None,
                           usage=log.events if handbook is not None and log is not None else None)
    return MethodResult(solution=_solution(problem, result, ctx.ledger, method, behaviors), ledger=ctx.ledger,
                        record=record)

