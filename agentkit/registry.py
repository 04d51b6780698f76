"""The method contract and registry: every test-time method agentkit can run, by name, in one place.

A method (``Method[P]``, generic over its parameter model ``P``) declares

- ``name`` (what ``agentkit solve --method``, sweep specs, ``SolveRequest.method`` and results call it) and a
  one-line ``summary``; ``baseline = True`` for a method the others are compared against by default (the
  report's paired comparisons);
- ``params_model``: its parameters as a pydantic model (defaults, bounds, ``Literal`` choices), a
  ``MethodParams`` subclass, so always with ``max_tokens`` (the output cap of each answering call when no
  budget is given) and ``temperature``;
- ``record_model``: what it records of a run besides the answer, a ``MethodRecord`` (diagnostics that sweep
  rows keep, trace fields that the viewer shows); the runner, the report, the proxy and the CLI read a method's
  results only through it;
- ``templates``: the prompt templates it renders (their hashes make ``prompt_hash``, stored with every result);
- ``run(problem, ctx)``: one run on one problem, with a ``RunContext[P]`` (the backend, the typed params, the
  budget, the seed, the handbook, the bus and the run's ledger), returning a ``MethodResult``.

Callers run a method with ``Method.solve(problem, backend, params=..., budget=..., ...)``, which validates the
parameters, starts the run (its id and budgeted ledger) and calls ``run``.

``budget`` is the run's **sequential budget** ``B_seq`` (the latency proxy of "Rethinking Thinking Tokens"): a
method plans its per-call ``max_tokens`` from it (``RunContext.call_cap`` for one answering call) so methods
compare at the same ``B_seq``. None: no budget, ``params.max_tokens`` per call.

``METHODS`` maps names to methods. The built-in methods live in ``agentkit.methods`` and register when it is
imported; the faces (CLI, service, proxy, MCP server, sweeps) import it. Third-party packages register theirs
through the entry-point group ``agentkit.methods`` (loaded on the first lookup of a name the registry lacks),
or a user calls ``register(MyMethod())`` in any module that ``load_plugin("path/to/file.py")`` (``--plugin``,
a sweep spec's ``plugins``) imports.

This module sits below ``agentkit.roles`` and ``agentkit.methods`` and imports neither.
"""

from __future__ import annotations

import abc
import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentkit import tracing
from agentkit.backends.base import Backend
from agentkit.bus import Bus
from agentkit.calls import counted_prompt_tokens
from agentkit.errors import BudgetExceeded, ConfigError, LimitExceeded, validation_problems
from agentkit.ledger import Ledger, estimate_prompt_tokens
from agentkit.log import get_logger
from agentkit.memory.store import BehaviorStore
from agentkit.messages import Problem, Solution
from agentkit.prompts import load_prompt
from agentkit.seeds import derive_seed

__all__ = ["DEFAULT_MAX_TOKENS", "ENTRY_POINT_GROUP", "LIMITS", "MAX_CALL_TOKENS", "METHODS", "Method", "MethodParams", "MethodRecord", "MethodResult", "Plan",
           "RunContext", "RunLimits", "baseline_names", "get_method", "load_plugin", "method_names", "record_of", "register", "single_call_plan", "start_run"]

_log = get_logger(__name__)

ENTRY_POINT_GROUP = "agentkit.methods"
"""The entry-point group a package names its method modules under (``[project.entry-points."agentkit.methods"]
my-method = "my_package.my_method"``): importing the module registers its methods."""

DEFAULT_MAX_TOKENS = 768
"""The output cap of an answering call when neither a budget nor the caller sets one (``MethodParams``)."""

MAX_CALL_TOKENS = 131_072
"""The largest output cap one call may be given (``MethodParams.max_tokens``, a budget per call)."""


@dataclass(frozen=True)
class RunLimits:
    """The most work one run of a method may cause, whoever asks for it: a proxy, MCP or service request, a CLI
    command or a sweep cell (``Method.check_limits``; ``Method.solve`` checks every run, and the faces and spec
    loading check before anything waits or runs).

    - ``calls``: model calls at most (what ``Method.calls`` counts from the parameters: samples, drafts per
      round times rounds, population times loops, probes, attempts, workspace and curation calls);
    - ``tokens``: generated tokens at most, every call at its output cap (``Method.generated``); this also bounds
      the memory a run holds (its drafts' texts).

    Each parameter that multiplies calls also has its own bound in its method's parameter model. A run over a
    limit is refused before its first call with a ``LimitExceeded`` naming the parameters to lower."""

    calls: int = 1024
    tokens: int = 1 << 20


LIMITS = RunLimits()
"""The limits every run is checked against."""


class MethodParams(BaseModel):
    """Parameters every method has. A method's own parameter model subclasses this."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tokens: int = Field(default=DEFAULT_MAX_TOKENS, ge=1, le=MAX_CALL_TOKENS)
    """Output cap of each answering call when the run has no budget (with one, it is planned from it)."""
    temperature: float = Field(default=0.0, ge=0.0, le=5.0)
    """Sampling temperature of the answering calls."""


class MethodRecord(BaseModel):
    """What a method records of one run besides its answer, as a typed model (a method's ``record_model``).

    ``diagnostics()`` is what a sweep row keeps (its ``details`` column, always), ``trace()`` what only a stored
    trace keeps (the fields named in ``trace_fields``: texts, drafts), ``summary()`` what the CLI and the proxy
    show (the diagnostics by default) and ``aggregate`` what the report adds to a group of rows of the method
    (nothing by default). ``record_of`` reads a row's record back into the model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trace_fields: ClassVar[tuple[str, ...]] = ()
    """Fields kept only in a row's trace (large texts), not in its diagnostics."""

    def diagnostics(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude=set(self.trace_fields), exclude_none=True)

    def trace(self) -> dict[str, Any]:
        return self.model_dump(mode="json", include=set(self.trace_fields)) if self.trace_fields else {}

    def summary(self) -> dict[str, Any]:
        return self.diagnostics()

    @classmethod
    def aggregate(cls, diagnostics: list[dict[str, Any]]) -> dict[str, Any]:
        """Fields the report adds to a group's summary from its finished rows' diagnostics (one dict per row,
        ``{}`` for a row without)."""
        return {}


class MethodResult(BaseModel):
    """What one run of a method produced."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    solution: Solution
    """The final answer; its ``usage``, ``b_seq`` and ``b_total`` cover the whole run."""
    ledger: Ledger = Field(exclude=True)
    """Every call of the run (``ledger.summary()`` gives B_seq, B_total and the rest)."""
    record: MethodRecord | None = None
    """The method's own record of the run (its ``record_model``): PDR's rounds, drafts and workspaces,
    self-consistency's votes, BCI's behaviors in context; None for a method that records nothing."""

    @property
    def answer(self) -> str | None:
        return self.solution.answer

    @property
    def text(self) -> str:
        return self.solution.text


@dataclass(frozen=True)
class Plan:
    """How a sequential budget splits for one method on one problem (``Method.plan``)."""

    max_tokens: int
    """The output cap of each answering call the budget leaves (below 1: the budget is infeasible)."""
    fixed: int
    """What the critical path spends apart from those caps: prompts, workspaces, fixed-size outputs."""
    per_token: int = 1
    """How many times each token of the cap lies on the critical path (PDR: once per round and distill)."""

    def needs(self, tokens: int) -> int:
        """The sequential budget that gives each answering call ``tokens`` output tokens."""
        return self.fixed + self.per_token * tokens


P = TypeVar("P", bound=MethodParams)


def single_call_plan(problem: Problem, budget: int) -> Plan:
    """How ``budget`` (B_seq) splits for one chain of thought on ``problem``: its prompt (estimated), then the
    output cap (what a single-call method plans, and what ``sweep validate`` measures other plans against)."""
    prompt = estimate_prompt_tokens(load_prompt("long_cot").render(problem=problem.text))
    return Plan(max_tokens=budget - prompt, fixed=prompt)


def baseline_names() -> tuple[str, ...]:
    """The registered methods that are baselines (``Method.baseline``): what the report compares the others with
    by default."""
    _load_entry_points()
    return tuple(name for name, method in METHODS.items() if method.baseline)


def start_run(problem: Problem, ledger: Ledger) -> Problem:
    """``problem`` as a run's messages carry it: ``run_id`` set (the run's roles take only its requests), and
    ``ledger``'s ``run_id`` defaulting to the same."""
    run_id = problem.run_id or problem.id
    ledger.run_id = ledger.run_id or run_id
    return problem if problem.run_id == run_id else problem.with_(run_id=run_id)


@dataclass
class RunContext(Generic[P]):
    """Everything one run of a method gets besides its problem (``Method.run(problem, ctx)``)."""

    backend: Backend
    params: P
    """The method's own parameters, validated and typed."""
    ledger: Ledger = field(default_factory=Ledger)
    """The run's ledger, enforcing ``budget``; it keeps what a failed run spent."""
    budget: int | None = None
    """The sequential budget B_seq (None: none; ``params.max_tokens`` caps each call)."""
    seed: int | None = 0
    handbook: BehaviorStore | None = None
    """Behaviors for methods that use them (opened by the caller: ``params.store``, ``--store``)."""
    bus: Bus | None = None
    """The bus the run's roles attach to (None: a bus of the run's own)."""
    enforce_budget: bool = True
    """The ledger enforces ``budget`` (off for a method whose budget only caps its answering calls)."""

    def __post_init__(self) -> None:
        if self.budget is not None and self.enforce_budget:
            self.ledger.budget = self.ledger.budget.model_copy(update={"sequential": self.budget})

    @classmethod
    def begin(cls, problem: Problem, backend: Backend, params: P, *, ledger: Ledger | None = None,
              budget: int | None = None, seed: int | None = 0, handbook: BehaviorStore | None = None,
              bus: Bus | None = None, enforce_budget: bool = True) -> tuple[Problem, RunContext[P]]:
        """A run's context (its ledger: ``ledger``, or a new one) and ``problem`` as the run's messages carry it
        (``start_run``): what ``Method.solve`` and the methods' free-function forms start a run with."""
        ctx = cls(backend=backend, params=params, ledger=ledger if ledger is not None else Ledger(), budget=budget,
                  seed=seed, handbook=handbook, bus=bus, enforce_budget=enforce_budget)
        return ctx.start_run(problem), ctx

    def start_run(self, problem: Problem) -> Problem:
        """``problem`` as this run's messages carry it (``start_run``)."""
        return start_run(problem, self.ledger)

    def derive_seed(self, *parts: str | int) -> int | None:
        """A seed for one call from the run's seed and the call's identity (None stays None): calls that must
        differ (samples, drafts) get different seeds, and the same run reproduces them."""
        return derive_seed(self.seed, *parts)

    async def call_cap(self, problem: Problem, template: str = "long_cot") -> int:
        """The output cap of one answering call: ``params.max_tokens``, or what the sequential budget leaves one
        call of ``template`` on ``problem`` (its prompt counted by the backend where it can). A budget that
        leaves no output token is ``BudgetExceeded``."""
        if self.budget is None:
            return self.params.max_tokens
        prompt = await counted_prompt_tokens(self.backend, load_prompt(template).render(problem=problem.text))
        if self.budget - prompt < 1:
            raise BudgetExceeded(f"a sequential budget of {self.budget} tokens leaves no room for an answer "
                                 f"(prompt {prompt} tokens); raise the budget")
        return self.budget - prompt


class Method(abc.ABC, Generic[P]):
    """A registered test-time method (see the module doc)."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    baseline: ClassVar[bool] = False
    """The report compares every other method against the baselines (long CoT, BCI's matched twin)."""
    params_model: type[P]
    record_model: ClassVar[type[MethodRecord] | None] = None
    enforces_budget: ClassVar[bool] = True
    """The run's ledger enforces the sequential budget; False for a method whose budget only caps each answering
    call (self-improvement: its curation calls come on top, as in the paper)."""
    templates: ClassVar[tuple[str, ...]] = ()

    def params(self, **values: Any) -> P:
        """Validate ``values`` into this method's parameters; a ``ConfigError`` names each field at fault."""
        try:
            return self.params_model.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(f"{field}: {reason}" for field, reason in validation_problems(exc, root=self.name))
            known = ", ".join(self.params_model.model_fields)
            raise ConfigError(f"invalid parameters for method {self.name!r}: {problems} (its parameters: {known})"
                              ) from None

    def coerce(self, params: MethodParams | Mapping[str, Any] | None) -> P:
        """``params`` as this method's parameter model: its defaults for None, a mapping or another model
        validated."""
        if params is None:
            return self.params_model()
        if isinstance(params, self.params_model):
            return params
        return self.params(**(params.model_dump() if isinstance(params, MethodParams) else dict(params)))

    @functools.cached_property
    def prompt_hash(self) -> str:
        """One hash over every template the method uses (a changed prompt changes it). Computed once per method
        object: templates are loaded once per process (``load_prompt`` caches them), and every sweep row asks."""
        joined = "".join(load_prompt(name).hash for name in self.templates)
        return hashlib.sha256(joined.encode()).hexdigest()[:16]

    def plan(self, problem: Problem, params: P | None, budget: int) -> Plan:
        """How ``budget`` (B_seq) splits on ``problem`` with the real prompts: by default one chain of thought
        (``single_call_plan``). Methods with another critical path override it; ``agentkit sweep validate`` plans
        every cell with it before anything runs."""
        return single_call_plan(problem, budget)

    def max_output(self, problem: Problem, params: P | None, budget: int, *, output_cap: bool = False) -> int:
        """The most tokens one run can generate: every call at its cap, an upper bound (prefill left out), for
        ``agentkit sweep validate --throughput``. ``budget`` is B_seq, or with ``output_cap`` each answering
        call's cap."""
        p = self.coerce(params)
        cap = budget if output_cap else max(self.plan(problem, p, budget).max_tokens, 0)
        return self.generated(p, cap)

    def generated(self, params: P, cap: int) -> int:
        """Tokens generated at most when each answering call is capped at ``cap``: one call by default; methods
        with more calls override it."""
        return cap

    call_fields: ClassVar[tuple[str, ...]] = ()
    """The parameters that multiply the run's calls (what ``check_limits`` tells a caller to lower)."""

    def calls(self, params: P) -> int:
        """The most model calls one run with ``params`` makes: one by default; methods with more override it."""
        return 1

    def check_limits(self, params: P, budget: int | None = None) -> None:
        """Refuse a run with ``params`` (and B_seq ``budget``) that could cause more than ``LIMITS`` allows:
        a ``LimitExceeded`` (a ``ConfigError``) naming the parameters to lower, before anything runs."""
        calls = self.calls(params)
        multipliers = {f: getattr(params, f) for f in self.call_fields}
        named = ", ".join(f"{f}={v}" for f, v in multipliers.items())
        if calls > LIMITS.calls:
            raise LimitExceeded(
                f"method {self.name!r} with {named} makes up to {calls} calls; one run may make at most "
                f"{LIMITS.calls}: lower {' or '.join(multipliers)}", param=next(iter(multipliers), "params"))
        cap = budget if budget is not None else params.max_tokens  # with a budget, calls are planned from it
        tokens = self.generated(params, cap)
        if tokens > LIMITS.tokens:
            lower = [*multipliers, "budget" if budget is not None else "max_tokens"]
            raise LimitExceeded(
                f"method {self.name!r} with {', '.join(filter(None, [named, f'max_tokens={cap}']))} may generate "
                f"up to {tokens} tokens; one run may generate at most {LIMITS.tokens}: lower {' or '.join(lower)}",
                param=lower[-1])

    def cap_for_output(self, params: P, output: int, *, most: int = MAX_CALL_TOKENS) -> int:
        """The largest output cap of each answering call (at most ``most``) under which one run with ``params``
        generates at most ``output`` tokens, every call at its cap (``generated``): how a bound on a run's
        completion tokens (the proxy's ``max_tokens``) becomes a per-call cap. A bound too small for even one
        token per call is a ``LimitExceeded`` naming ``max_tokens``."""
        if self.generated(params, 1) > output:
            raise LimitExceeded(
                f"max_tokens={output} cannot cover one run of method {self.name!r}: with these parameters it makes "
                f"{self.calls(params)} calls and needs at least {self.generated(params, 1)} completion tokens; raise "
                "max_tokens or lower " + (" or ".join(self.call_fields) or "its parameters"), param="max_tokens")
        low, high = 1, max(1, most)
        while low < high:  # generated() grows with the cap
            mid = (low + high + 1) // 2
            low, high = (mid, high) if self.generated(params, mid) <= output else (low, mid - 1)
        return low

    def needs_handbook(self, params: P) -> bool:
        """Whether a run with ``params`` retrieves behaviors, so that a caller must open a handbook for it (none
        by default)."""
        return False

    def describe(self) -> str:
        """``name``, the summary and the parameters with their defaults (CLI help)."""
        fields = ", ".join(f"{n}={f.default!r}" for n, f in self.params_model.model_fields.items()
                           if n not in MethodParams.model_fields)
        return f"{self.name}: {self.summary}" + (f" [{fields}]" if fields else "")

    async def solve(self, problem: Problem, backend: Backend, *,
                    params: MethodParams | Mapping[str, Any] | None = None, budget: int | None = None,
                    seed: int | None = 0, handbook: BehaviorStore | None = None, bus: Bus | None = None,
                    ledger: Ledger | None = None) -> MethodResult:
        """One run on ``problem``: ``params`` validated (a mapping, this method's model, or None for the
        defaults) and checked against ``LIMITS``, the run started with its ledger (``ledger``, or a new one; given, it keeps what a failed run
        spent) enforcing ``budget`` (B_seq), then ``run``."""
        checked = self.coerce(params)
        self.check_limits(checked, budget)
        started, ctx = RunContext.begin(problem, backend, checked, ledger=ledger, budget=budget, seed=seed,
                                        handbook=handbook, bus=bus, enforce_budget=self.enforces_budget)
        with tracing.span(lambda: f"agentkit.method {self.name}", lambda: {
                "agentkit.method": self.name, "openinference.span.kind": "CHAIN", "agentkit.run_id": started.run_id, "agentkit.problem_id": started.problem_id,
                "agentkit.budget": budget, "agentkit.seed": seed, "gen_ai.request.model": backend.model,
                "agentkit.params": checked.model_dump(mode="json", exclude_none=True)}) as current:
            result = await self.run(started, ctx)
            tracing.set_attributes(current, lambda: {
                "agentkit.answer": result.answer, "agentkit.b_seq": ctx.ledger.b_seq, "agentkit.b_total": ctx.ledger.b_total,
                "agentkit.calls": ctx.ledger.calls, "gen_ai.usage.input_tokens": ctx.ledger.input_tokens,
                "gen_ai.usage.output_tokens": ctx.ledger.output_tokens})
            return result

    @abc.abstractmethod
    async def run(self, problem: Problem, ctx: RunContext[P]) -> MethodResult:
        """One run on ``problem`` (its ``run_id`` set by ``solve``); everything else comes with ``ctx``."""


METHODS: dict[str, Method[Any]] = {}
"""name -> method, built-in and user-registered."""


def register(method: Method[Any], *, replace: bool = False) -> Method[Any]:
    """Add ``method`` to ``METHODS`` under its name; a name already taken is a ``ConfigError`` unless
    ``replace``. Returns the method (so ``register(MyMethod())`` can be assigned)."""
    name = getattr(method, "name", "")
    if not isinstance(method, Method) or not name:
        raise ConfigError(f"register() needs a Method instance with a name, got {method!r}")
    if name in METHODS and METHODS[name] is not method and not replace:
        raise ConfigError(f"a method named {name!r} is already registered; pick another name or pass replace=True")
    METHODS[name] = method
    return method


_entry_points_loaded = False


def _load_entry_points() -> None:
    """Import every module named in the ``agentkit.methods`` entry-point group, once per process. A plugin that
    fails to import is logged and skipped: one broken package does not take every method down."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()
        except Exception as exc:
            _log.warning("method plugin failed to load", entry_point=entry.name, value=entry.value, error=str(exc))


def method_names() -> tuple[str, ...]:
    """Every registered method name (entry-point plugins loaded), in registration order."""
    _load_entry_points()
    return tuple(METHODS)


def get_method(name: str) -> Method[Any]:
    """The method registered as ``name``; a ``ConfigError`` lists the known names otherwise."""
    method = METHODS.get(name)
    if method is None:
        _load_entry_points()
        method = METHODS.get(name)
    if method is None:
        raise ConfigError(f"unknown method {name!r}; registered methods: {', '.join(METHODS) or 'none'} (the "
                          "built-ins register when agentkit.methods is imported; register your own with "
                          "agentkit.registry.register, and load its module with --plugin)")
    return method


def record_of(method: str, diagnostics: Mapping[str, Any] | None, trace: Mapping[str, Any] | None = None
              ) -> MethodRecord | dict[str, Any] | None:
    """A row's record: its diagnostics (and a stored trace's record fields) read back into ``method``'s
    ``record_model``; the plain dict when the method is not registered here (a plugin not loaded) or the row's
    record no longer validates (written by an older agentkit)."""
    data = {**(diagnostics or {})}
    registered = METHODS.get(method)
    model = registered.record_model if registered is not None else None
    if model is not None:
        data.update({k: v for k, v in (trace or {}).items() if k in model.trace_fields})
    if not data:
        return None
    if model is None:
        return data
    try:
        return model.model_validate(data)
    except ValidationError:
        return data


def load_plugin(spec: str) -> None:
    """Import a module that registers methods: a ``.py`` file path or a dotted module name."""
    if spec.endswith(".py"):
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"no plugin file at {spec}")
        name = f"agentkit_plugin_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
        if name in sys.modules:
            return
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise ConfigError(f"cannot load plugin {spec}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return
    try:
        importlib.import_module(spec)
    except ImportError as exc:
        raise ConfigError(f"cannot import plugin module {spec!r}: {exc}") from None
