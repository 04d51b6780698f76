"""Running a method for a caller: the one path from a request to a ``MethodResult`` and its summary.

- ``run_method``: a registered method by name, the caller's parameters validated against its model, the budget
  as a sequential budget (``budget_kind="sequential"``) or as each answering call's output cap (``"output"``);
  ``agentkit solve``, the sweep runner, the OpenAI proxy and ``MethodServer`` all run methods through it.
- ``result_summary``: what a caller is told of a run: the answer, the run's budgets and calls, the behaviors
  given and cited, and the method's own record summary (``MethodRecord.summary``), for any method alike.
- ``MethodServer``: a bus agent that answers ``SolveRequest`` messages with any registered method (the request
  names it and its parameters; the server adds its defaults: output cap, handbook, retrieval), replying with
  the method's ``Solution``. Attach it with ``MethodServer(backend).attach(bus)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from agentkit.backends.base import Backend
from agentkit.bus import Bus, Subscription
from agentkit.errors import ConfigError
from agentkit.ledger import Ledger
from agentkit.memory.retrieval import RETRIEVALS, Retrieval
from agentkit.memory.store import BehaviorStore
from agentkit.messages import Problem, Solution, SolveRequest
from agentkit.registry import Method, MethodParams, MethodResult, baseline_names, get_method

__all__ = ["BudgetKind", "MethodServer", "behavior_count_field", "result_summary", "run_method"]

BudgetKind = Literal["sequential", "output"]


async def run_method(method: str | Method[Any], problem: Problem, backend: Backend, *,
                     params: MethodParams | Mapping[str, Any] | None = None, budget: int | None = None,
                     budget_kind: BudgetKind = "sequential", seed: int | None = 0,
                     handbook: BehaviorStore | None = None, bus: Bus | None = None,
                     ledger: Ledger | None = None) -> MethodResult:
    """Run ``method`` (a registered name or a method) on ``problem``: ``params`` validated by the method's model
    (a ``ConfigError`` names the fields at fault), ``budget`` the run's sequential budget B_seq, or with
    ``budget_kind="output"`` each answering call's output cap (the run then has no B_seq budget). ``ledger``,
    when given, records the calls even if the run fails."""
    chosen = get_method(method) if isinstance(method, str) else method
    values = dict(params.model_dump() if isinstance(params, MethodParams) else params or {})
    sequential = budget
    if budget_kind == "output" and budget is not None:
        values["max_tokens"], sequential = budget, None
    return await chosen.solve(problem, backend, params=chosen.params(**values), budget=sequential, seed=seed,
                              handbook=handbook, bus=bus, ledger=ledger)


def behavior_count_field(method: Method[Any]) -> str | None:
    """The parameter that says how many behaviors a method retrieves: PDR's ``behavior_k``, BCI's ``k`` (BCI is
    the method whose ``behaviors`` is the list itself), none for a method without behaviors. A caller's "how many
    behaviors" (``--behaviors``, ``SolveRequest.k``) goes there and nowhere else (PDR's ``k`` is its workspace's
    top-k drafts, the examples method's ``k`` its examples)."""
    fields = method.params_model.model_fields
    if "behavior_k" in fields:
        return "behavior_k"
    return "k" if "behaviors" in fields and "k" in fields else None


def result_summary(method: str, result: MethodResult) -> dict[str, Any]:
    """What a caller is told of one run (see the module doc): JSON-ready, the same keys for every method plus
    its record's summary."""
    figures = result.ledger.summary()
    solution = result.solution
    out: dict[str, Any] = {
        "method": method, "answer": solution.answer, "finish_reason": solution.finish_reason,
        "B_seq": figures["B_seq"], "B_total": figures["B_total"], "calls": figures["calls"],
        "input_tokens": figures["input_tokens"], "output_tokens": figures["output_tokens"],
        "reasoning_tokens": figures["reasoning_tokens"],
        "hidden_output_tokens": result.ledger.hidden_output_tokens, "behaviors": list(solution.behaviors),
        "cited": list(solution.cited), "behavior_tokens": solution.behavior_tokens}
    if result.record is not None:
        out.update({k: v for k, v in result.record.summary().items() if k not in out})
    return out


class MethodServer:
    """Answers ``SolveRequest`` messages on a bus with any registered method (see the module doc).

    Args:
        max_tokens: the output cap of a request that brings none.
        handbook: a ``BehaviorStore`` for methods that retrieve behaviors (BCI, PDR with ``behavior_k``).
        k, retrieval: how many behaviors to retrieve and how, for methods that have those parameters and
            requests that do not set them.
        keep_ledgers: keep each request's ``Ledger`` in ``ledgers`` (by request id) for callers that want every
            call; off by default so a long-lived server does not grow.
    """

    name = "method-server"

    def __init__(self, backend: Backend, *, max_tokens: int | None = None, handbook: BehaviorStore | None = None,
                 k: int | None = None, retrieval: Retrieval | None = None, queue_size: int | None = None,
                 keep_ledgers: bool = False) -> None:
        if retrieval is not None and retrieval not in RETRIEVALS:
            raise ConfigError(f"retrieval must be one of {', '.join(RETRIEVALS)}, got {retrieval!r}")
        self.backend = backend
        self.max_tokens = max_tokens
        self.handbook = handbook
        self.k = k
        self.retrieval = retrieval
        self.queue_size = queue_size
        self.keep_ledgers = keep_ledgers
        self.ledgers: dict[str, Ledger] = {}
        """The ledger of each handled request, by request id (with ``keep_ledgers``)."""

    def attach(self, bus: Bus, *, concurrency: int = 1) -> Subscription:
        """Handle ``SolveRequest`` on ``bus``, up to ``concurrency`` at once."""
        return bus.subscribe(SolveRequest, self.handle, name=self.name, concurrency=concurrency,
                             queue_size=self.queue_size)

    async def handle(self, request: SolveRequest) -> Solution:
        method = get_method(request.method or baseline_names()[0])
        fields = method.params_model.model_fields
        values: dict[str, Any] = {"temperature": request.temperature}
        cap = request.max_tokens or self.max_tokens
        if cap is not None:
            values["max_tokens"] = cap
        count = behavior_count_field(method)
        if count is not None and (request.k or self.k) is not None:
            values[count] = request.k or self.k
        if "retrieval" in fields and self.retrieval is not None:
            values["retrieval"] = self.retrieval
        if request.behaviors:
            if "behaviors" not in fields:
                raise ConfigError(f"method {method.name!r} takes no behaviors")
            values["behaviors"] = request.behaviors
        values.update(request.params)
        result = await run_method(method, request.problem.with_(run_id=request.run_id or request.id), self.backend,
                                  params=values, seed=request.seed, handbook=self.handbook)
        if self.keep_ledgers:
            self.ledgers[request.id] = result.ledger
        return result.solution.with_(parent_id=request.id, run_id=request.run_id, sender=self.name)
