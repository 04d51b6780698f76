"""Parallel-Distill-Refine (PDR) and Sequential Refinement (SR), after "Rethinking Thinking Tokens: LLMs as
Improvement Operators" (arXiv 2510.01123).

Each round r runs M_r drafts concurrently, each conditioned on the problem and the previous round's
workspace; between rounds a distill step rebuilds a bounded workspace (at most ``kappa`` tokens) from that
round's drafts only; the last round has one draft, the answer. SR is M_r = 1 (its workspace is the previous
draft, or an error analysis of it).

Workspace variants:

- ``summary``: one LLM call writes a shared summary (agreements, contradictions, derived facts, unresolved
  subgoals, next actions) with ``max_tokens = kappa`` (the server enforces the bound; the workspace's token
  count is the server's output count).
- ``topk``: the k best drafts, shared by every next-round draft; ``topk-per-sample``: each next-round draft
  gets its own k (agreement-weighted, seeded sampling; or a judge call per branch over a shuffled list);
  ``random-k``: each next-round draft gets k drafts drawn uniformly (seeded). "Best" is decided by answer
  agreement (drafts whose extracted answer is shared by the most drafts first, then finished before the
  length limit, then shorter) or by the model's own judgement (a judge call; agreement breaks ties and
  replaces an unparsable judgement).
- ``error-analysis`` (SR): one LLM call lists the errors of the single previous draft, bounded by kappa.

Extractive truncation rule (measured with the ledger's token counter): each of the k drafts gets an equal
share ``kappa // k`` of the workspace including its header; a longer draft keeps its **last** tokens (where
the final answer is), prefixed with ``[...]``.

A draft that fails (after the backend's own retries) is dropped; the round goes on with the rest and the
workspace records how many drafts it saw. A round in which every draft fails raises.

Budgets go to the ``Ledger``: drafts as role ``student`` (round 1) or ``refiner``, branch = draft index;
distill calls as role ``distiller``; the final draft is marked final. ``plan_draft_tokens`` derives the
per-draft ``max_tokens`` that puts a run at a target ``B_seq``, so PDR, SR and long chain-of-thought are
compared at the same sequential budget. The prompts are agentkit's own (the paper's are not public); each
template file says so.
"""

from __future__ import annotations

import asyncio
import random
import re
import weakref
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentkit.backends.base import BaseBackend
from agentkit.bus import Bus
from agentkit.errors import BackendError, BudgetExceeded, ConfigError, HandlerFailed
from agentkit.grading import answers_match, extract_answer
from agentkit.ledger import Ledger, estimate_tokens
from agentkit.log import get_logger
from agentkit.memory.behavior import Behavior, find_citations, render_behaviors
from agentkit.messages import DistillRequest, DistillResult, Draft, Problem, RefineRequest, TokenUsage, Workspace
from agentkit.methods.bci import record_citations
from agentkit.prompts import load_prompt

__all__ = ["PDRConfig", "PDRResult", "Variant", "distill", "pdr", "plan_draft_tokens", "planning_prompt_tokens", "sr",
           "write_draft"]

_log = get_logger(__name__)
Variant = Literal["summary", "topk", "topk-per-sample", "random-k", "error-analysis"]
_EXTRACTIVE = {"topk", "topk-per-sample", "random-k"}
_JUDGE_OUTPUT_TOKENS = 16
_BEHAVIOR_LINE = re.compile(r"^- (behavior_[a-z0-9_]+):", re.MULTILINE)


class PDRConfig(BaseModel):
    """One PDR (or SR) configuration."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rounds: int = Field(default=2, ge=1, le=16)
    drafts: int | tuple[int, ...] = 4
    """Drafts per round: one number M for every round but the last (which is always 1), or the full
    schedule M_1..M_R ending in 1."""
    kappa: int = Field(default=512, ge=16)
    """Workspace bound in tokens."""
    variant: Variant = "summary"
    k: int = Field(default=2, ge=1)
    """Drafts in an extractive workspace."""
    select: Literal["agreement", "judge"] = "agreement"
    max_tokens: int = Field(default=768, ge=1)
    """Output cap of each draft."""
    temperature: float = Field(default=0.7, ge=0)
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> PDRConfig:
        schedule = self.schedule
        if len(schedule) != self.rounds or schedule[-1] != 1 or any(m < 1 for m in schedule):
            raise ValueError(f"drafts schedule {schedule} must have {self.rounds} entries >= 1 and end in 1")
        if self.variant == "error-analysis" and max(schedule) != 1:
            raise ValueError("the error-analysis workspace is for SR (one draft per round)")
        return self

    @property
    def schedule(self) -> tuple[int, ...]:
        if isinstance(self.drafts, int):
            return (self.drafts,) * (self.rounds - 1) + (1,)
        return tuple(self.drafts)


class PDRResult(BaseModel):
    """What one run produced: the answer, every draft and workspace, the budgets and diagnostics."""

    answer: str | None
    text: str
    drafts: list[Draft]
    workspaces: list[Workspace]
    budget: dict[str, int]
    diagnostics: dict[str, Any]


def _render_drafts(drafts: list[Draft]) -> str:
    return "\n\n".join(f"Attempt {i + 1}:\n{d.text}" for i, d in enumerate(drafts))


def _tail(text: str, tokens: int, count: Any) -> str:
    """The end of ``text`` that fits ``tokens`` (by ``count``), prefixed with ``[...]`` when cut."""
    if count(text) <= tokens:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # smallest cut whose tail fits
        mid = (lo + hi) // 2
        if count("[...] " + text[mid:]) <= tokens:
            hi = mid
        else:
            lo = mid + 1
    return "[...] " + text[lo:]


def _agreement_order(drafts: list[Draft]) -> list[int]:
    """Draft indices, best first: larger answer group, finished (not cut by length), shorter, earlier."""
    groups: list[list[int]] = []
    for i, d in enumerate(drafts):
        for group in groups:
            if answers_match(d.answer, drafts[group[0]].answer):
                group.append(i)
                break
        else:
            groups.append([i])
    size = {i: (len(g) if drafts[g[0]].answer is not None else 0) for g in groups for i in g}
    return sorted(range(len(drafts)), key=lambda i: (-size[i], drafts[i].finish_reason == "length",
                                                     len(drafts[i].text), i))


def _extractive(drafts: list[Draft], chosen: list[int], kappa: int, count: Any) -> str:
    share = kappa // max(1, len(chosen))
    parts = []
    for n, i in enumerate(chosen, 1):
        header = f"Attempt {n} (answer: {drafts[i].answer or 'none'}):\n"
        parts.append(header + _tail(drafts[i].text, max(1, share - count(header) - 1), count))
    text = "\n\n".join(parts)
    return _tail(text, kappa, count)  # guarantees the bound even when headers are long


async def _call(ledger: Ledger, backend: BaseBackend, messages: list[dict[str, str]], **kw: Any) -> Any:
    [(record, completion)] = await ledger.chat(backend, messages, **kw)
    return record, completion


def planning_prompt_tokens(problem_text: str, config: PDRConfig | None = None) -> int:
    """The prompt size to plan a method's drafts with: its longest draft prompt (the refine template with an
    empty workspace for PDR/SR, the solve template for one long chain of thought), counted as ``Ledger.chat``
    counts prompts when it caps a call (``estimate_tokens`` + 4 per message)."""
    template = "long_cot" if config is None or config.rounds == 1 else "pdr_refine"
    messages = load_prompt(template).render(problem=problem_text, workspace="")
    return sum(estimate_tokens(m["content"]) + 4 for m in messages)


def plan_draft_tokens(target_bseq: int, *, prompt_tokens: int, config: PDRConfig | None = None) -> int:
    """Per-draft ``max_tokens`` so that a run's ``B_seq`` is at most ``target_bseq`` (``config`` None: one long
    chain of thought). Model of the critical path, with P = prompt tokens and m = draft output:

    - long CoT: ``P + m``;
    - PDR/SR: every round's draft stage ``P + W_r + m`` (W_1 = 0, W_r = kappa), plus for r < R the distill
      stage: ``summary``/``error-analysis`` ``P + M_r * m + kappa``; ``judge`` selection
      ``P + M_r * m + 16``; agreement-based and random selection make no call.

    Raises ``BudgetExceeded`` when not even one output token per draft fits.
    """
    if config is None:
        m = target_bseq - prompt_tokens
    else:
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
                    fixed += prompt_tokens + _JUDGE_OUTPUT_TOKENS
                    per_m += drafts
        m = (target_bseq - fixed) // per_m
    if m < 1:
        raise BudgetExceeded(f"a sequential budget of {target_bseq} tokens leaves no room for a draft "
                             f"(prompt {prompt_tokens} tokens); raise the budget or lower kappa/rounds")
    return int(m)


async def write_draft(request: RefineRequest, backend: BaseBackend, ledger: Ledger) -> Draft:
    """One draft: a plain solve in round 1 (no workspace), else the problem plus the workspace."""
    problem, r, b = request.problem, request.round, request.branch
    if request.workspace is None:
        messages = load_prompt("long_cot").render(problem=problem.text)
    else:
        messages = load_prompt("pdr_refine").render(problem=problem.text, workspace=request.workspace.text)
    if request.behaviors:  # behavior-conditioned inference inside PDR: the block goes first in the system part
        messages[0] = {**messages[0], "content": request.behaviors + "\n\n" + messages[0]["content"]}
    record, completion = await _call(
        ledger, backend, messages, role="student" if r == 1 else "refiner", round=r, branch=b, final=request.final,
        accepted=request.final, max_tokens=request.max_tokens, temperature=request.temperature, seed=request.seed)
    return request.derive(
        Draft, sender="refiner", problem_id=problem.problem_id, round=r, branch=b, text=completion.text,
        answer=extract_answer(completion.text), finish_reason=completion.finish_reason,
        usage=TokenUsage(input_tokens=record.input_tokens, output_tokens=record.output_tokens, calls=1,
                         cached=completion.cached),
        cited=find_citations(completion.text, _BEHAVIOR_LINE.findall(request.behaviors)))


async def _judge_order(request: DistillRequest, order: list[int], backend: BaseBackend, ledger: Ledger,
                       b: int) -> list[int]:
    """The judge's ranking of the drafts presented in ``order``; agreement fills in what it leaves out."""
    drafts = list(request.drafts)
    shown = [drafts[i] for i in order]
    messages = load_prompt("pdr_judge").render(problem=request.problem.text, drafts=_render_drafts(shown),
                                                k=str(request.k))
    _, completion = await _call(ledger, backend, messages, role="distiller", round=request.round, branch=b,
                                accepted=True, max_tokens=_JUDGE_OUTPUT_TOKENS, temperature=0.0, seed=request.seed)
    picked: list[int] = []
    for number in re.findall(r"\d+", completion.text):
        n = int(number) - 1
        if 0 <= n < len(shown) and order[n] not in picked:
            picked.append(order[n])
    return picked + [i for i in _agreement_order(drafts) if i not in picked]


async def distill(request: DistillRequest, backend: BaseBackend, ledger: Ledger) -> list[Workspace]:
    """The workspace(s) for the next round: one shared, or one per next-round draft."""
    problem, drafts, r = request.problem, list(request.drafts), request.round
    count = ledger.count_tokens
    base = {"problem_id": problem.problem_id, "round": r, "variant": request.variant, "drafts_seen": len(drafts),
            "sender": "distiller"}
    if request.variant in {"summary", "error-analysis"}:
        template = "pdr_summary" if request.variant == "summary" else "sr_error_analysis"
        messages = load_prompt(template).render(problem=problem.text, drafts=_render_drafts(drafts),
                                                kappa=str(request.kappa))
        record, completion = await _call(ledger, backend, messages, role="distiller", round=r, accepted=True,
                                         max_tokens=request.kappa, temperature=0.0, seed=request.seed)
        return [request.derive(Workspace, text=completion.text, tokens=record.output_tokens,
                               source_draft_ids=tuple(d.id for d in drafts), **base)]
    if request.variant not in _EXTRACTIVE:
        raise ConfigError(f"unknown workspace variant {request.variant!r}")
    k = min(request.k, len(drafts))
    rng = random.Random(request.seed * 7919 + r)
    if request.variant == "topk":
        order = (await _judge_order(request, list(range(len(drafts))), backend, ledger, 0)
                 if request.select == "judge" else _agreement_order(drafts))
        selections = [order[:k]]
    elif request.variant == "random-k":
        selections = [sorted(rng.sample(range(len(drafts)), k)) for _ in range(request.next_drafts)]
    elif request.select == "judge":  # topk-per-sample: a judge call per next-round draft, over a shuffled list
        orders = []
        for _ in range(request.next_drafts):
            shuffled = list(range(len(drafts)))
            rng.shuffle(shuffled)
            orders.append(shuffled)
        ranked = await asyncio.gather(*(_judge_order(request, o, backend, ledger, b) for b, o in enumerate(orders)))
        selections = [order[:k] for order in ranked]
    else:  # topk-per-sample by agreement: seeded sampling weighted by how many drafts share each answer
        weights = _agreement_weights(drafts)
        selections = [_weighted_sample(rng, weights, k) for _ in range(request.next_drafts)]
    workspaces = []
    for chosen in selections:
        text = _extractive(drafts, chosen, request.kappa, count)
        workspaces.append(request.derive(
            Workspace, text=text, tokens=count(text), source_draft_ids=tuple(drafts[i].id for i in chosen),
            **base))
    return workspaces


def _agreement_weights(drafts: list[Draft]) -> list[float]:
    """Each draft's weight: how many drafts share its answer (0.5 for a draft without an answer)."""
    weights = []
    for d in drafts:
        same = sum(1 for other in drafts if d.answer is not None and answers_match(d.answer, other.answer))
        weights.append(float(same) if same else 0.5)
    return weights


def _weighted_sample(rng: random.Random, weights: list[float], k: int) -> list[int]:
    pool = list(range(len(weights)))
    chosen: list[int] = []
    for _ in range(min(k, len(pool))):
        i = rng.choices(pool, weights=[weights[j] for j in pool])[0]
        chosen.append(i)
        pool.remove(i)
    return chosen


async def pdr(problem: Problem, backend: BaseBackend, config: PDRConfig | None = None, *,
              ledger: Ledger | None = None, bus: Bus | None = None, behaviors: Sequence[Behavior] = (),
              handbook: Any = None) -> PDRResult:
    """Run PDR (or SR, when every round has one draft) on one problem.

    ``behaviors`` (retrieved by the caller, e.g. ``handbook.search(problem.text, k)``) go into every draft's
    prompt (behavior-conditioned inference inside PDR); each draft's ``cited`` lists the behavior names it
    mentions, the diagnostics count them per round, and with ``handbook`` (a ``BehaviorStore``) every
    citation is recorded as ``cited``, plus ``cited_correct`` / ``cited_wrong`` for the final draft when the
    reference is known.

    With ``bus``, every draft is a ``RefineRequest`` and every distill step a ``DistillRequest`` on the bus,
    answered by ``Refiner`` and ``Distiller`` roles that share this run's ledger (they are attached here if
    the bus has none). Without it the same steps are called directly.
    """
    config = config or PDRConfig()
    ledger = ledger if ledger is not None else Ledger(run_id=problem.run_id)
    run_id = problem.run_id or problem.id
    problem = problem.with_(run_id=run_id)
    ledger.run_id = ledger.run_id or run_id
    if bus is not None:
        _ensure_roles(bus, backend).ledgers[run_id] = ledger

    async def draft(request: RefineRequest) -> Draft:
        if bus is None:
            return await write_draft(request, backend, ledger)
        return await bus.request(request, Draft, timeout=3600)

    async def workspaces_for(request: DistillRequest) -> list[Workspace]:
        if bus is None:
            return await distill(request, backend, ledger)
        return list((await bus.request(request, DistillResult, timeout=3600)).workspaces)

    block = render_behaviors(list(behaviors))
    schedule = config.schedule
    all_drafts: list[Draft] = []
    all_workspaces: list[Workspace] = []
    rounds_diag: list[dict[str, Any]] = []
    workspaces: list[Workspace] = []
    try:
        for r, m in enumerate(schedule, 1):
            final = r == len(schedule)
            # A shared workspace serves every draft; per-sample variants have one per draft.
            inputs: list[Workspace | None] = [None] * m if not workspaces else \
                [workspaces[b] if len(workspaces) > 1 else workspaces[0] for b in range(m)]
            requests = [problem.derive(RefineRequest, sender="pdr", problem=problem, workspace=inputs[b], round=r,
                                       branch=b, max_tokens=config.max_tokens, temperature=config.temperature,
                                       seed=config.seed + 1000 * r + b, final=final, behaviors=block)
                        for b in range(m)]
            outcomes = await asyncio.gather(*(draft(q) for q in requests), return_exceptions=True)
            drafts = [o for o in outcomes if isinstance(o, Draft)]
            failed = [o for o in outcomes if not isinstance(o, Draft)]
            for exc in failed:
                if not isinstance(exc, (BackendError, HandlerFailed)):
                    raise exc  # a bug, not a backend failure: never swallowed
                _log.warning("draft dropped", problem=problem.problem_id, round=r, error=str(exc))
            if not drafts:
                raise BackendError(f"every draft of round {r} failed; last error: {failed[-1]}",
                                   cause=getattr(failed[-1], "cause", "draft failed"))
            drafts.sort(key=lambda d: d.branch)
            all_drafts.extend(drafts)
            diag = _round_diagnostics(drafts, failed, problem.reference)
            if behaviors:
                diag["citations"] = dict(Counter(name for d in drafts for name in d.cited))
            if not final:
                workspaces = await workspaces_for(problem.derive(
                    DistillRequest, sender="pdr", problem=problem, round=r, drafts=tuple(drafts),
                    next_drafts=schedule[r], variant=config.variant, kappa=config.kappa, k=config.k,
                    select=config.select, seed=config.seed))
                all_workspaces.extend(workspaces)
                if problem.reference is not None:
                    diag["correct_in_workspace"] = [
                        any(answers_match(d.answer, problem.reference) for d in drafts if d.id in w.source_draft_ids)
                        if config.variant in _EXTRACTIVE else _mentions(w.text, problem.reference)
                        for w in workspaces]
                diag["workspace_tokens"] = [w.tokens for w in workspaces]
            rounds_diag.append(diag)
    finally:
        if bus is not None:
            _ensure_roles(bus, backend).ledgers.pop(run_id, None)
    answer_draft = all_drafts[-1]
    if handbook is not None and behaviors:
        for d in all_drafts[:-1]:
            await record_citations(handbook, d.cited, correct=None)
        correct = answers_match(answer_draft.answer, problem.reference) if problem.reference is not None else None
        await record_citations(handbook, answer_draft.cited, correct=correct)
    return PDRResult(answer=answer_draft.answer, text=answer_draft.text, drafts=all_drafts,
                     workspaces=all_workspaces, budget=ledger.summary(),
                     diagnostics={"rounds": rounds_diag, "schedule": list(schedule), "variant": config.variant})


class _Roles:
    """The Refiner and Distiller attached to one bus for one backend, with their shared ledger registry (the
    roles only take requests of runs registered there, so runs on other backends share the bus safely)."""

    def __init__(self, bus: Bus, backend: BaseBackend) -> None:
        from agentkit.roles.pdr_roles import Distiller, Refiner

        self.backend = backend  # held, so the id() key below stays unique while these roles live
        self.ledgers: dict[str, Ledger] = {}
        Refiner(backend, self.ledgers).attach(bus, concurrency=64)
        Distiller(backend, self.ledgers).attach(bus, concurrency=8)


_ROLES: weakref.WeakKeyDictionary[Bus, dict[int, _Roles]] = weakref.WeakKeyDictionary()


def _ensure_roles(bus: Bus, backend: BaseBackend) -> _Roles:
    per_backend = _ROLES.setdefault(bus, {})
    roles = per_backend.get(id(backend))
    if roles is None:
        roles = per_backend[id(backend)] = _Roles(bus, backend)
    return roles


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


async def sr(problem: Problem, backend: BaseBackend, *, rounds: int = 3, kappa: int = 512,
             error_analysis: bool = False, max_tokens: int = 768, temperature: float = 0.7, seed: int = 0,
             ledger: Ledger | None = None) -> PDRResult:
    """Sequential Refinement: one draft per round; the workspace is the previous draft (truncated to kappa)
    or, with ``error_analysis``, an analysis of its errors."""
    if rounds < 1:
        raise ConfigError("rounds must be >= 1")
    config = PDRConfig(rounds=rounds, drafts=(1,) * rounds, kappa=kappa, k=1, max_tokens=max_tokens,
                       variant="error-analysis" if error_analysis else "topk", temperature=temperature, seed=seed)
    return await pdr(problem, backend, config, ledger=ledger)
