"""The Student role: answers problems. Its model step is one answering call (``answer``):

- plain chain of thought (``agentkit/prompts/long_cot.txt``), the baseline of both papers;
- behavior-conditioned inference (BCI, "Metacognitive Reuse" arXiv 2509.13237, section 4.1): behaviors in
  context, ``behavior_name: instruction`` lines in the paper's prompt (``bci.txt``), citations found by name;
- critique-and-revise: an earlier answer critiqued and revised (``critique_revise.txt``), or several at once
  (``critique_revise_many.txt``).

Attached **for one run** (by a method: ``attach(bus, run_id=...)``) it answers that run's ``AnswerRequest``
messages and charges its run ledger. Attached **for everyone** (``Student(backend).attach(bus)``) it answers
``SolveRequest`` messages with any method of the registry (``agentkit.registry``): the request names the
method and its parameters, the Student adds its own defaults (``max_tokens``, and for BCI its handbook, ``k``
and retrieval), runs the method and replies with its ``Solution`` (``B_seq`` / ``B_total`` of everything the
method spent; for BCI the behaviors given and cited).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentkit._behavior import Behavior, find_citations, render_behaviors
from agentkit.backends.base import Backend, Completion
from agentkit.bus import Bus, Subscription
from agentkit.calls import budgeted_chat
from agentkit.errors import ConfigError
from agentkit.evaluation.answers import extract_answer
from agentkit.ledger import CallRecord, Ledger, estimate_tokens
from agentkit.memory.retrieval import RETRIEVALS, Retrieval
from agentkit.memory.store import BehaviorStore
from agentkit.messages import AnswerRequest, Message, Problem, Solution, SolveRequest, TokenUsage
from agentkit.prompts import PromptTemplate, load_prompt
from agentkit.registry import get_method

from ._base import Role

__all__ = ["Student", "answer", "answer_messages", "solution_from_call"]


def solution_from_call(parent: Message, problem: Problem, record: CallRecord, completion: Completion, *,
                       sender: str, prompt_hash: str, **fields: Any) -> Solution:
    """The ``Solution`` one answering call produced (answer extracted, the call's own usage), derived from
    ``parent``; ``fields`` add budgets, method, behaviors and the like. Every answer is built here."""
    fields.setdefault("answer", extract_answer(completion.text))
    return parent.derive(
        Solution, sender=sender, problem_id=problem.problem_id, text=completion.text,
        finish_reason=completion.finish_reason, model=completion.model,
        usage=TokenUsage(input_tokens=record.input_tokens, output_tokens=record.output_tokens, calls=1,
                         cached=completion.cached),
        prompt_hash=prompt_hash, **fields)


def answer_messages(problem: Problem, behaviors: Sequence[Behavior] = (), *, revise: Solution | None = None,
                    plain: str = "long_cot", revise_also: Sequence[Solution] = (), aggregate: bool = False,
                    prompt: str | None = None, prompt_fields: dict[str, str] | None = None,
                    ) -> tuple[PromptTemplate, list[dict[str, str]]]:
    """The template and chat messages of one answering call: the explicit ``prompt`` template with the problem
    and ``prompt_fields``; else critique-and-revise of ``revise`` (with ``revise_also``: of all of them at once;
    with ``aggregate``: RSA's aggregation of them as candidates), else the BCI prompt with ``behaviors``, else
    the ``plain`` prompt (``long_cot``, or ``bci_plain``: BCI's prompt without its behavior block)."""
    if prompt is not None:
        template = load_prompt(prompt)
        return template, template.render(**{**(prompt_fields or {}), "problem": problem.text})
    if revise is not None and (revise_also or aggregate):
        template = load_prompt("rsa_aggregate" if aggregate else "critique_revise_many")
        earlier = (revise, *revise_also)
        solutions = "\n\n".join(f"Solution {i}:\n{s.text}" for i, s in enumerate(earlier, 1))
        return template, template.render(problem=problem.text, count=str(len(earlier)), solutions=solutions)
    if revise is not None:
        template = load_prompt("critique_revise")
        return template, template.render(problem=problem.text, solution=revise.text)
    if behaviors:
        template = load_prompt("bci")
        return template, template.render(problem=problem.text,
                                         behaviors=render_behaviors(behaviors, header=None, bullet=""))
    if plain not in ("long_cot", "bci_plain"):
        raise ConfigError(f"the plain prompt is long_cot or bci_plain, got {plain!r}")
    template = load_prompt(plain)
    return template, template.render(problem=problem.text)


async def answer(problem: Problem, backend: Backend, *, ledger: Ledger, behaviors: Sequence[Behavior] = (),
                 revise: Solution | None = None, max_tokens: int | None = 1024, temperature: float = 0.0,
                 seed: int | None = 0, round: int = 1, branch: int = 0, final: bool = True, role: str = "student",
                 sender: str = "student", method: str = "", parent: Message | None = None,
                 plain: str = "long_cot", revise_also: Sequence[Solution] = (), aggregate: bool = False,
                 prompt: str | None = None, prompt_fields: dict[str, str] | None = None) -> Solution:
    """One answering call on ``ledger`` (see the module doc); the Student's and the Teacher's model step."""
    template, messages = answer_messages(problem, behaviors, revise=revise, plain=plain, revise_also=revise_also,
                                         aggregate=aggregate, prompt=prompt, prompt_fields=prompt_fields)
    [(record, completion)] = await budgeted_chat(
        ledger, backend, messages, role=role, round=round, branch=branch, final=final, step=template.name,
        max_tokens=max_tokens, temperature=temperature, seed=seed)
    if revise is not None:
        return solution_from_call(revise, problem, record, completion, sender=sender, prompt_hash=template.hash,
                                  **({"method": method} if method else {}))
    names = tuple(b.name for b in behaviors)
    return solution_from_call(
        parent or problem, problem, record, completion, sender=sender, prompt_hash=template.hash,
        b_seq=ledger.b_seq, b_total=ledger.b_total, method=method or ("bci" if behaviors else "long-cot"),
        behaviors=names, cited=find_citations(completion.text, names),
        behavior_tokens=estimate_tokens(render_behaviors(behaviors, header=None, bullet="")) if behaviors else 0)


class Student(Role):
    """Answers problems (see the module doc).

    ``Student(backend).attach(bus)``, then ``bus.request(SolveRequest(...), Solution)``; a method attaches
    ``Student(backend, ledger=run_ledger)`` with ``run_id`` for its ``AnswerRequest`` messages.

    Args:
        ledger: the run ledger (a Student attached for one run); None gives each request its own.
        max_tokens: the output cap of a ``SolveRequest`` that brings none.
        handbook: a ``BehaviorStore`` for ``bci`` requests that bring no behaviors of their own.
        k, retrieval: how many behaviors to retrieve and how (``embedding``, ``topic`` or ``both``).
        keep_ledgers: keep each ``SolveRequest``'s ``Ledger`` in ``ledgers`` (by request id) for callers that
            want every call; off by default so a long-lived Student does not grow.
    """

    name = "student"
    request_type = AnswerRequest

    def __init__(self, backend: Backend, *, ledger: Ledger | None = None, max_tokens: int = 1024,
                 queue_size: int | None = None, handbook: BehaviorStore | None = None, k: int = 8,
                 retrieval: Retrieval = "embedding", keep_ledgers: bool = False) -> None:
        if retrieval not in RETRIEVALS:
            raise ConfigError(f"retrieval must be one of {', '.join(RETRIEVALS)}, got {retrieval!r}")
        super().__init__(backend, ledger=ledger)
        self.max_tokens = max_tokens
        self.queue_size = queue_size
        self.handbook = handbook
        self.k = k
        self.retrieval = retrieval
        self.keep_ledgers = keep_ledgers
        self.ledgers: dict[str, Ledger] = {}
        """The ledger of each handled ``SolveRequest``, by request id (with ``keep_ledgers``)."""

    def attach(self, bus: Bus, *, concurrency: int | None = None, run_id: str | None = None) -> Subscription:
        """For everyone: ``SolveRequest`` (up to ``concurrency`` at once); for run ``run_id``: its
        ``AnswerRequest`` messages."""
        if run_id is not None:
            return self.subscribe(bus, AnswerRequest, concurrency=concurrency, run_id=run_id)
        return self.subscribe(bus, SolveRequest, concurrency=concurrency, queue_size=self.queue_size)

    async def handle(self, request: AnswerRequest | SolveRequest) -> Solution:
        if isinstance(request, SolveRequest):
            return await self.solve(request)
        solution = await answer(
            request.problem, self.backend, ledger=self.ledger_for(request), behaviors=request.behaviors,
            revise=request.revise, max_tokens=request.max_tokens, temperature=request.temperature,
            seed=request.seed, round=request.round, branch=request.branch, final=request.final,
            sender=self.name, method=request.method, parent=request, plain=request.plain_prompt,
            revise_also=request.revise_also, aggregate=request.aggregate, prompt=request.prompt,
            prompt_fields=request.prompt_fields)
        return solution if solution.parent_id == request.id else solution.with_(parent_id=request.id)

    async def solve(self, request: SolveRequest) -> Solution:
        """Run the request's method (from the registry) with this Student's defaults."""
        method = get_method(request.method)
        fields = method.params_model.model_fields
        values: dict[str, Any] = {"max_tokens": request.max_tokens or self.max_tokens,
                                  "temperature": request.temperature}
        defaults = {"k": request.k or self.k, "retrieval": self.retrieval}
        values.update({name: value for name, value in defaults.items() if name in fields})
        if request.behaviors:
            if "behaviors" not in fields:
                raise ConfigError(f"method {method.name!r} takes no behaviors")
            values["behaviors"] = request.behaviors
        values.update(request.params)
        result = await method.run(request.problem.with_(run_id=request.run_id or request.id), self.backend,
                                  params=method.params(**values), seed=request.seed, handbook=self.handbook)
        if self.keep_ledgers:
            self.ledgers[request.id] = result.ledger
        return result.solution.with_(parent_id=request.id, run_id=request.run_id, sender=self.name)
