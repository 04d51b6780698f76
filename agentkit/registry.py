"""The method registry: every test-time method agentkit can run, by name, in one place.

A method is an object that declares

- ``name`` (what ``agentkit solve --method``, sweep specs, ``SolveRequest.method`` and results call it) and a
  one-line ``summary``;
- ``params_model``: its parameters as a pydantic model (defaults, bounds, ``Literal`` choices), always including
  ``max_tokens`` (the output cap of each answering call when no budget is given) and ``temperature``;
- ``templates``: the prompt templates it renders (their hashes make ``prompt_hash``, stored with every result);
- ``run(problem, backend, *, params, budget, seed, handbook, bus, ledger)``: one run on one problem, returning a
  ``MethodResult`` (the final ``Solution``, the run's ``Ledger``, and method-specific ``details``).

``budget`` is the run's **sequential budget** ``B_seq`` (the latency proxy of "Rethinking Thinking Tokens"): a
method plans its per-call ``max_tokens`` from it so methods compare at the same ``B_seq``, and enforces it where
its calls are all on the answering path. None: no budget, ``params.max_tokens`` per call.

``METHODS`` maps names to methods; the CLI, sweep specs and runner, the Student role and the prompt hash all
read it, and nothing else lists methods. The built-in methods live in ``agentkit.methods`` and register when
it is imported (``get_method`` imports it on first use, so a lookup never misses them). A user registers their
own with ``register(MyMethod())`` in any module; ``load_plugin("path/to/file.py")`` (the ``--plugin`` option of
``agentkit solve`` and ``agentkit sweep``, and a sweep spec's ``plugins``) imports such a module by path or name.

This module sits below both ``agentkit.roles`` and ``agentkit.methods``: roles read the registry, methods fill
it, and neither imports the other's package to do so.
"""

from __future__ import annotations

import abc
import functools
import hashlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentkit.backends.base import Backend
from agentkit.bus import Bus
from agentkit.errors import ConfigError, validation_problems
from agentkit.ledger import Ledger, estimate_prompt_tokens
from agentkit.memory.store import BehaviorStore
from agentkit.messages import Problem, Solution
from agentkit.prompts import load_prompt

__all__ = ["METHODS", "Method", "MethodParams", "MethodResult", "Plan", "get_method", "load_plugin", "method_names",
           "register"]


class MethodParams(BaseModel):
    """Parameters every method has. A method's own parameter model subclasses this."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tokens: int = Field(default=768, ge=1)
    """Output cap of each answering call when the run has no budget (with one, it is planned from it)."""
    temperature: float = Field(default=0.0, ge=0.0, le=5.0)
    """Sampling temperature of the answering calls."""


class MethodResult(BaseModel):
    """What one run of a method produced."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    solution: Solution
    """The final answer; its ``usage``, ``b_seq`` and ``b_total`` cover the whole run."""
    ledger: Ledger = Field(exclude=True)
    """Every call of the run (``ledger.summary()`` gives B_seq, B_total and the rest)."""
    details: dict[str, Any] = Field(default_factory=dict)
    """Method-specific results: PDR's drafts, workspaces and per-round diagnostics; self-consistency's votes."""

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


class Method(abc.ABC):
    """A registered test-time method (see the module doc)."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    params_model: ClassVar[type[MethodParams]] = MethodParams
    templates: ClassVar[tuple[str, ...]] = ()

    def params(self, **values: Any) -> MethodParams:
        """Validate ``values`` into this method's parameters; a ``ConfigError`` names each field at fault."""
        try:
            return self.params_model.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(f"{field}: {reason}" for field, reason in validation_problems(exc, root=self.name))
            known = ", ".join(self.params_model.model_fields)
            raise ConfigError(f"invalid parameters for method {self.name!r}: {problems} (its parameters: {known})"
                              ) from None

    def coerce(self, params: MethodParams | None) -> MethodParams:
        """``params`` checked to be this method's, or its defaults."""
        if params is None:
            return self.params_model()
        if not isinstance(params, self.params_model):
            return self.params(**params.model_dump())
        return params

    @functools.cached_property
    def prompt_hash(self) -> str:
        """One hash over every template the method uses (a changed prompt changes it). Computed once per method
        object: templates are loaded once per process (``load_prompt`` caches them), and every sweep row asks."""
        joined = "".join(load_prompt(name).hash for name in self.templates)
        return hashlib.sha256(joined.encode()).hexdigest()[:16]

    def plan(self, problem: Problem, params: MethodParams | None, budget: int) -> Plan:
        """How ``budget`` (B_seq) splits on ``problem`` with the real prompts: by default one chain of thought
        (its prompt, then the output cap). Methods with another critical path override it; ``agentkit sweep
        validate`` plans every cell with it before anything runs."""
        prompt = estimate_prompt_tokens(load_prompt("long_cot").render(problem=problem.text))
        return Plan(max_tokens=budget - prompt, fixed=prompt)

    def max_output(self, problem: Problem, params: MethodParams | None, budget: int, *,
                   output_cap: bool = False) -> int:
        """The most tokens one run can generate: every call at its cap, an upper bound (prefill left out), for
        ``agentkit sweep validate --throughput``. ``budget`` is B_seq, or with ``output_cap`` each answering
        call's cap."""
        p = self.coerce(params)
        cap = budget if output_cap else max(self.plan(problem, p, budget).max_tokens, 0)
        return self.generated(p, cap)

    def generated(self, params: MethodParams, cap: int) -> int:
        """Tokens generated at most when each answering call is capped at ``cap``: one call by default; methods
        with more calls override it."""
        return cap

    def describe(self) -> str:
        """``name``, the summary and the parameters with their defaults (CLI help)."""
        fields = ", ".join(f"{n}={f.default!r}" for n, f in self.params_model.model_fields.items()
                           if n not in MethodParams.model_fields)
        return f"{self.name}: {self.summary}" + (f" [{fields}]" if fields else "")

    @abc.abstractmethod
    async def run(self, problem: Problem, backend: Backend, *, params: MethodParams | None = None,
                  budget: int | None = None, seed: int | None = 0, handbook: BehaviorStore | None = None,
                  bus: Bus | None = None, ledger: Ledger | None = None) -> MethodResult:
        """One run on ``problem``. ``budget``: the sequential budget B_seq (see the module doc); ``handbook``:
        behaviors for methods that use them; ``bus``: the bus to attach the run's roles to (None: its own);
        ``ledger``: where the run's calls are recorded (None: a new one), which keeps what a failed run spent."""


METHODS: dict[str, Method] = {}
"""name -> method, built-in and user-registered."""


def register(method: Method, *, replace: bool = False) -> Method:
    """Add ``method`` to ``METHODS`` under its name; a name already taken is a ``ConfigError`` unless
    ``replace``. Returns the method (so ``register(MyMethod())`` can be assigned)."""
    name = getattr(method, "name", "")
    if not isinstance(method, Method) or not name:
        raise ConfigError(f"register() needs a Method instance with a name, got {method!r}")
    if name in METHODS and METHODS[name] is not method and not replace:
        raise ConfigError(f"a method named {name!r} is already registered; pick another name or pass replace=True")
    METHODS[name] = method
    return method


_builtins_loaded = False


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:  # method_names() sits on the proxy's per-request path: import once, then a flag
        importlib.import_module("agentkit.methods")
        _builtins_loaded = True


def method_names() -> tuple[str, ...]:
    """Every registered method name (built-ins loaded), in registration order."""
    _load_builtins()
    return tuple(METHODS)


def get_method(name: str) -> Method:
    """The method registered as ``name``; a ``ConfigError`` lists the known names otherwise."""
    method = METHODS.get(name)
    if method is None:
        _load_builtins()
        method = METHODS.get(name)
    if method is None:
        raise ConfigError(f"unknown method {name!r}; registered methods: {', '.join(METHODS)} (register your own "
                          "with agentkit.registry.register, and load its module with --plugin)")
    return method


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
