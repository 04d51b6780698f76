"""The Strategist role ("Metacognitive Reuse" arXiv 2509.13237, LLM A): solve, reflect, extract behaviors.

Its model steps are ``contrast`` (compare a group of graded attempts and extract strategies and pitfalls,
answering a ``ContrastRequest``) and ``curate``: solve the problem (unless a trace is given, as self-improvement does), reflect
on the trace (told the reference answer only with ``reveal_reference``), and extract behaviors, parsed with
``parse_behaviors``; entries that merely copy an example name from the prompts are dropped.

``Strategist`` answers ``CurateRequest`` with a ``BehaviorProposal`` (only entries that passed; the rejected ones
with their reasons in ``dropped``). On the way it publishes the ``Solution`` it reflected on (when it solved the
problem itself) and its ``Reflection``, so a ``Recorder`` keeps the whole trace. The proposal's ``usage`` is the
curation's token cost; storing is the caller's job (``agentkit.pipelines.curation.build_handbook``), so a
Strategist can feed any handbook, or none.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from agentkit.backends.base import Backend
from agentkit.bus import Bus, Subscription
from agentkit.calls import budgeted_chat
from agentkit.errors import ConfigError
from agentkit.evaluation.answers import answers_match
from agentkit.ledger import Ledger
from agentkit.log import get_logger
from agentkit.memory.extract import Extraction, parse_behaviors, parse_contrast
from agentkit.memory.retrieval import topics_of
from agentkit.messages import (
    BehaviorProposal,
    ContrastRequest,
    CurateRequest,
    GradedAttempt,
    Problem,
    Reflection,
    Solution,
    TokenUsage,
)
from agentkit.prompts import load_prompt

from ._base import Role
from .steps import solution_from_call

__all__ = ["Curation", "Strategist", "contrast", "curate"]

_log = get_logger(__name__)
_EXAMPLE_NAME = re.compile(r"behavior_[a-z0-9_]+")


class Curation(BaseModel):
    """Everything one curation produced (the proposal also travels the bus alone)."""

    model_config = ConfigDict(frozen=True)

    solution: Solution
    reflection: Reflection
    proposal: BehaviorProposal


def _verdict(solution: Solution, reference: str | None, reveal: bool) -> tuple[str, bool | None]:
    if reference is None:
        return "", None
    correct = answers_match(solution.answer, reference)
    if not reveal:
        return "", correct
    state = "correct" if correct else "incorrect"
    return (f"Note: the reference answer is {reference}, so this solution's final answer "
            f"({solution.answer if solution.answer is not None else 'none given'}) is {state}."), correct


async def curate(
    problem: Problem,
    backend: Backend,
    *,
    solution: Solution | None = None,
    ledger: Ledger | None = None,
    max_tokens: int = 1024,
    max_behaviors: int = 5,
    temperature: float = 0.0,
    seed: int | None = 0,
    reveal_reference: bool = True,
    first_round: int = 1,
    branch: int = 0,
    sender: str = "strategist",
) -> Curation:
    """Solve (unless ``solution`` is given), reflect, extract; three calls, or two, on ``ledger``."""
    ledger = ledger if ledger is not None else Ledger(run_id=problem.run_id)
    before_in, before_out, before_calls = ledger.input_tokens, ledger.output_tokens, ledger.calls
    r = first_round
    if solution is None:
        template = load_prompt("strategist_solve")
        [(rec, completion)] = await budgeted_chat(
            ledger, backend, template.render(problem=problem.text), role="strategist", round=r, branch=branch,
            stage=f"{r}:solve", step=template.name, max_tokens=max_tokens, temperature=temperature, seed=seed)
        solution = solution_from_call(problem, problem, rec, completion, sender=sender, prompt_hash=template.hash,
                                      method="strategist-solve")
        r += 1
    verdict, correct = _verdict(solution, problem.reference, reveal_reference)
    [(_, reflected)] = await budgeted_chat(
        ledger, backend, load_prompt("strategist_reflect").render(problem=problem.text, solution=solution.text,
                                                                  verdict=verdict),
        role="strategist", round=r, branch=branch, stage=f"{r}:reflect", step="strategist_reflect",
        max_tokens=max_tokens, temperature=temperature, seed=seed)
    reflection = solution.derive(Reflection, sender=sender, problem_id=problem.problem_id, solution_id=solution.id,
                                 text=reflected.text, correct=correct)
    [(_, extracted)] = await budgeted_chat(
        ledger, backend, load_prompt("strategist_extract").render(problem=problem.text, reflection=reflected.text,
                                                                  max_behaviors=str(max_behaviors)),
        role="strategist", round=r + 1, branch=branch, stage=f"{r + 1}:extract", step="strategist_extract",
        max_tokens=max_tokens, temperature=temperature, seed=seed)
    parsed = _without_copies(parse_behaviors(extracted.text, max_behaviors=max_behaviors))
    proposal = reflection.derive(
        BehaviorProposal, sender=sender, problem_id=problem.problem_id, dataset=problem.dataset or None,
        behaviors=parsed.behaviors,
        source_trace_id=solution.id, trace_correct=correct, dropped=parsed.dropped, topics=topics_of(problem),
        model=extracted.model,
        usage=TokenUsage(input_tokens=ledger.input_tokens - before_in, output_tokens=ledger.output_tokens - before_out,
                         calls=ledger.calls - before_calls))
    return Curation(solution=solution, reflection=reflection, proposal=proposal)


def _attempts_text(attempts: Sequence[GradedAttempt]) -> str:
    return "\n\n".join(f"Attempt {i} ({'correct' if a.correct else 'wrong'}):\n{a.text}"
                         for i, a in enumerate(attempts, 1))


async def contrast(
    problem: Problem,
    backend: Backend,
    attempts: Sequence[GradedAttempt],
    *,
    ledger: Ledger | None = None,
    max_tokens: int = 1024,
    max_behaviors: int = 5,
    temperature: float = 0.0,
    seed: int | None = 0,
    first_round: int = 1,
    branch: int = 0,
    sender: str = "strategist",
) -> BehaviorProposal:
    """Compare graded ``attempts`` at ``problem`` in one call and extract strategies and pitfalls.

    The grades are the grader's, given in the prompt; the model's output is read with ``parse_contrast``
    (nothing outside its Strategies and Pitfalls sections). Guards, whatever the model writes: strategies are
    kept only when some attempt was correct, pitfalls only when some attempt was wrong, and a name given in both
    sections is kept in neither (every drop is in ``dropped`` with its reason)."""
    if not attempts:
        raise ConfigError("contrastive curation needs at least one graded attempt")
    ledger = ledger if ledger is not None else Ledger(run_id=problem.run_id)
    before_in, before_out, before_calls = ledger.input_tokens, ledger.output_tokens, ledger.calls
    template = load_prompt("strategist_contrast")
    [(_, completion)] = await budgeted_chat(
        ledger, backend, template.render(problem=problem.text, count=str(len(attempts)),
                                         attempts=_attempts_text(attempts), max_behaviors=str(max_behaviors)),
        role="strategist", round=first_round, branch=branch, stage=f"{first_round}:contrast", step=template.name,
        max_tokens=max_tokens, temperature=temperature, seed=seed)
    parsed = parse_contrast(completion.text, max_behaviors=max_behaviors)
    strategies = _without_copies(parsed.strategies, "strategist_contrast")
    pitfalls = _without_copies(parsed.pitfalls, "strategist_contrast")
    dropped = list(strategies.dropped + pitfalls.dropped)
    kept_s, kept_p = dict(strategies.behaviors), dict(pitfalls.behaviors)
    for name in sorted(set(kept_s) & set(kept_p)):
        dropped.append((name, "given both as a strategy and as a pitfall"))
        del kept_s[name], kept_p[name]
    if not any(a.correct for a in attempts):
        dropped.extend((f"{n}: {i!r}", "a strategy, but no attempt was correct") for n, i in kept_s.items())
        kept_s = {}
    if all(a.correct for a in attempts):
        dropped.extend((f"{n}: {i!r}", "a pitfall, but no attempt was wrong") for n, i in kept_p.items())
        kept_p = {}
    for entry, reason in dropped:
        _log.info("contrast entry dropped", problem=problem.problem_id, entry=entry, reason=reason)
    return BehaviorProposal(
        sender=sender, run_id=problem.run_id, problem_id=problem.problem_id, dataset=problem.dataset or None,
        behaviors=kept_s, pitfalls=kept_p, attempts=tuple(attempts), dropped=tuple(dropped),
        topics=topics_of(problem), model=completion.model,
        usage=TokenUsage(input_tokens=ledger.input_tokens - before_in, output_tokens=ledger.output_tokens - before_out,
                         calls=ledger.calls - before_calls))


def _without_copies(parsed: Extraction, *templates: str) -> Extraction:
    """Drop behaviors that merely copy an example name from the Strategist's own prompts (small models do)."""
    names = templates or ("strategist_reflect", "strategist_extract")
    examples = set(_EXAMPLE_NAME.findall("".join(load_prompt(t).user for t in names)))
    copies = [name for name in parsed.behaviors if name in examples]
    if not copies:
        return parsed
    for name in copies:
        _log.info("behavior entry dropped", entry=name, reason="copies the prompt's example")
    return parsed.model_copy(update={
        "behaviors": {n: i for n, i in parsed.behaviors.items() if n not in copies},
        "dropped": parsed.dropped + tuple((f"{n}: {parsed.behaviors[n]!r}", "copies the prompt's example")
                                          for n in copies)})


class Strategist(Role):
    """Subscribe with ``Strategist(backend).attach(bus)``; then ``bus.request(CurateRequest(...), BehaviorProposal)``.
    A method attaches ``Strategist(backend, ledger=run_ledger)`` for its run (self-improvement)."""

    name = "strategist"
    request_type = CurateRequest
    default_concurrency = 4

    def __init__(self, backend: Backend, *, ledger: Ledger | None = None) -> None:
        super().__init__(backend, ledger=ledger)
        self.bus: Bus | None = None

    def attach(self, bus: Bus, *, concurrency: int | None = None, run_id: str | None = None) -> Subscription:
        self.bus = bus
        return super().attach(bus, concurrency=concurrency, run_id=run_id)

    async def handle(self, request: CurateRequest) -> BehaviorProposal:
        if isinstance(request, ContrastRequest):
            proposal = await contrast(
                request.problem, self.backend, request.attempts, ledger=self.ledger_for(request),
                max_tokens=request.max_tokens, max_behaviors=request.max_behaviors, temperature=request.temperature,
                seed=request.seed, first_round=request.round, branch=request.branch, sender=self.name)
            return proposal.with_(parent_id=request.id, run_id=request.run_id)
        curation = await curate(
            request.problem, self.backend, solution=request.solution, ledger=self.ledger_for(request),
            max_tokens=request.max_tokens, max_behaviors=request.max_behaviors, temperature=request.temperature,
            seed=request.seed, reveal_reference=request.reveal_reference, first_round=request.round,
            branch=request.branch, sender=self.name)
        if self.bus is not None:
            if request.solution is None:
                await self.bus.publish(curation.solution.with_(run_id=request.run_id))
            await self.bus.publish(curation.reflection.with_(run_id=request.run_id))
        return curation.proposal.with_(parent_id=request.id, run_id=request.run_id)
