"""Sweep specs (TOML): datasets x methods x backends x budgets x seeds.

```toml
name = "smoke"
concurrency = 8                      # cells in flight at once, over all backends
budgets = [2048]                     # the matched sequential budget B_seq of each cell
seeds = [0]                          # (top-level keys come before the first [[table]] in TOML)

[[datasets]]
name = "gsm8k"                       # a built-in name or a .jsonl path
limit = 5
offset = 0                           # optional: skip the first N problems (a held-out slice)
sample_seed = 0                      # optional: a seeded sample instead of the first `limit`
stratify = "subject"                 # optional: spread `limit` over the subjects in proportion

[[methods]]
name = "long-cot"                    # any registered method (agentkit.registry; `agentkit solve --help` lists them)
[[methods]]
name = "pdr"
label = "pdr-2x4"                    # optional, defaults to the name
params = { rounds = 2, drafts = 4, kappa = 512, variant = "summary" }
[[methods]]
name = "bci"
params = { store = ".agentkit/handbook", k = 4, retrieval = "embedding" }

[[backends]]
spec = "local"                       # any backend spec (see agentkit.backends.backend_from_spec)
concurrency = 4                      # cells in flight on this backend
price_per_million = { input = 0.1, output = 0.4 }    # optional, for reports
```

A method may list its own ``budgets = [...]`` (instead of the spec's). ``min_draft_tokens`` (default 64) is
the smallest per-call output cap ``agentkit sweep validate`` (run first by ``sweep run``) accepts: it plans
every cell with the real prompts and names each infeasible one.

``budget`` means ``B_seq`` by default: each method's per-call ``max_tokens`` is planned from it
(``plan_draft_tokens``) and a ``Ledger(Budget(sequential=...))`` enforces it. A method with
``budget_kind = "output"`` takes the budget as each answering call's output cap instead (the reuse paper's
comparisons, where behaviors are input paid for separately). Method names and ``params`` are checked against the
method registry when the spec loads (a user's own methods: ``plugins = ["path/to/module.py"]`` at the top of the
spec, imported first). Validation errors name the field at fault.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agentkit.errors import ConfigError, validation_problems
from agentkit.evaluation.datasets import numeric_answers
from agentkit.messages import Problem
from agentkit.methods import get_method
from agentkit.registry import load_plugin

BudgetKind = Literal["sequential", "output"]
"""What a cell's budget bounds (``MethodEntry.budget_kind``)."""

__all__ = [
    "BackendEntry",
    "BudgetKind",
    "Cell",
    "DatasetEntry",
    "MethodEntry",
    "SweepSpec",
    "iter_cells",
    "load_spec",
    "require_handbooks",
    "shipped_specs",
    "spec_grid",
]

class DatasetEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    limit: int | None = Field(default=None, ge=1)
    offset: int = Field(default=0, ge=0)
    """Drop the dataset's first N problems before ``limit`` applies (a slice held out from another run's)."""
    sample_seed: int | None = None
    stratify: Literal["subject"] | None = None
    """Spread ``limit`` over the subjects in proportion to their shares (``agentkit.evaluation.datasets.
    stratified_sample``), seeded by ``sample_seed``."""
    problem_field: str = "problem"
    answer_field: str = "answer"
    id_field: str = "id"
    subject_field: str = "subject"
    final_number: bool | None = None
    """Whether the last number of a finished answer counts when it has no ``\\boxed{}`` (GSM8K's rule); None:
    only for the GSM8K datasets."""

    @property
    def numeric(self) -> bool:
        return self.final_number if self.final_number is not None else numeric_answers(self.name)

    def load(self) -> list[Problem]:
        """This entry's problems (the one loader ``run_sweep`` and ``sweep validate`` share)."""
        from agentkit.evaluation.datasets import load_dataset

        return load_dataset(self.name, limit=self.limit, seed=self.sample_seed, stratify=self.stratify,
                            offset=self.offset,
                            problem_field=self.problem_field, answer_field=self.answer_field, id_field=self.id_field,
                            subject_field=self.subject_field)


class MethodEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """A registered method (``agentkit.registry``)."""
    label: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    """The method's parameters (checked against its parameter model)."""
    budgets: list[int] | None = Field(default=None, min_length=1)
    """This method's budgets, instead of the spec's: a method whose critical path is longer (PDR with many rounds
    and a large workspace) is compared where it is feasible."""
    budget_kind: BudgetKind = "sequential"
    """What the budget bounds. ``sequential`` (default): ``B_seq``, the tokens on the run's critical path, prompts
    included, which the method plans its calls from (PDR, SR, long CoT and self-consistency compare at matched
    B_seq). ``output``: the output cap (``max_tokens``) of each answering call, prompts not counted (the reuse
    paper's BCI-vs-plain comparisons: behaviors are input, reported in their own columns). Rows, keys and
    reports carry it, so cells of the two kinds are never compared with each other."""

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        try:
            get_method(name)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return name

    @model_validator(mode="after")
    def _params(self) -> MethodEntry:
        try:
            get_method(self.name).params(**self.params)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    @model_validator(mode="after")
    def _output_cap(self) -> MethodEntry:
        if self.budget_kind == "output" and "max_tokens" in self.params:
            raise ValueError("params.max_tokens and budget_kind = \"output\" both set the output cap; "
                             "give the cap as the budget")
        return self

    @property
    def key(self) -> str:
        """The method's identity in result keys: its label, or its name and parameters."""
        if self.label or not self.params:
            return self.label or self.name
        return f"{self.name}(" + ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(self.params.items())) + ")"


class BackendEntry(BaseModel):
    """One backend of a sweep. ``spec`` is a backend spec (``backend_from_spec``); ``replicas`` lists more URLs
    serving the same model (``backends/replicas.py``: fewest in flight, one replica per cell, failover)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str
    concurrency: int = Field(default=8, ge=1)
    price_per_million: dict[str, float] = Field(default_factory=dict)
    """USD per million ``input`` and ``output`` tokens, for the report's cost column."""
    replicas: list[str] = Field(default_factory=list, max_length=256)
    """Replica endpoints of the spec's model (``http://b:8000/v1``, ...), used besides the spec's own URL. They
    never enter the cells' keys: replicas can be added or removed between runs without orphaning a row."""
    name: str | None = Field(default=None, min_length=1, max_length=200)
    """The backend's name in cell keys and reports (default: ``spec``, with only its first URL when it lists
    several)."""

    @model_validator(mode="after")
    def _replicas_are_urls(self) -> Self:
        if any(not r.startswith(("http://", "https://")) for r in self.replicas):
            raise ValueError("replicas are endpoint URLs (http://host:8000/v1)")
        return self

    @property
    def key(self) -> str:
        """The logical backend, as cell keys and reports name it: ``name``, else ``spec`` with its first URL only
        (a spec written before replicas existed keeps its keys)."""
        if self.name:
            return self.name
        head, sep, query = self.spec.partition("?")
        scheme, colon, target = head.partition(":")
        first = target.split(",")[0] if target.startswith(("http://", "https://")) else target
        return f"{scheme}{colon}{first}{sep}{query}"

    @property
    def build_spec(self) -> str:
        """The spec to build the backend from: ``spec`` with ``replicas`` added to its URL list."""
        if not self.replicas:
            return self.spec
        head, sep, query = self.spec.partition("?")
        scheme, _, target = head.partition(":")
        urls = [u for u in target.split(",") if u] + [r for r in self.replicas if r not in target.split(",")]
        return f"{scheme}:{','.join(urls)}{sep}{query}"


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "sweep"
    plugins: list[str] = Field(default_factory=list)
    """Modules that register methods (``.py`` paths or dotted names), imported before the methods are checked."""
    concurrency: int = Field(default=16, ge=1)
    datasets: list[DatasetEntry] = Field(min_length=1)
    methods: list[MethodEntry] = Field(min_length=1)
    backends: list[BackendEntry] = Field(min_length=1)
    budgets: list[int] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    temperature: float = 0.0
    grader_timeout: float = Field(default=10.0, gt=0)
    lenient_answers: bool = False
    """Take answers as the methods extracted them (the last number of a cut-off text included) instead of the
    strict rule (``agentkit.evaluation.answers.extract_strict``); every row records which."""
    min_draft_tokens: int = Field(default=64, ge=1)
    """The smallest output cap per answering call that ``sweep validate`` accepts as a useful cell."""
    starved_fraction: float = Field(default=0.1, gt=0, le=1)
    """``sweep validate`` warns about a method whose output cap per answering call is below this share of what
    one long chain of thought gets at the same budget on the same problem (a starved arm: PDR drafts of ~300
    tokens at a B_seq where long CoT writes 16k)."""
    store_traces: bool = True
    """Keep each cell's run (every call's figures, drafts, workspaces, behaviors; compressed) for
    ``agentkit view``; off for grids whose drafts are too large to keep."""
    embedder: str = "minilm"
    """The embedder the handbooks (methods' ``params.store``) are opened with: ``minilm``, ``minilm:DIR`` or
    ``bge-m3:DIR`` (``agentkit.memory.embedder_from_spec``); a store refuses one other than the embedder that
    made its vectors. Recorded in every row that used a handbook."""

    @field_validator("embedder")
    @classmethod
    def _embedder(cls, value: str) -> str:
        from agentkit.memory import embedder_from_spec

        try:
            embedder_from_spec(value)  # checked at load (the directory, BGE-M3's heads); loaded when first used
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _unique(self) -> SweepSpec:
        keys = [m.key for m in self.methods]
        if len(set(keys)) != len(keys):
            raise ValueError("two methods have the same label/parameters; give each a distinct label")
        if any(b < 64 for b in self.budgets + [b for m in self.methods for b in m.budgets or []]):
            raise ValueError("every budget must be at least 64 tokens")
        grid: tuple[tuple[str, list[str]], ...] = (
            ("budgets", [str(b) for b in self.budgets]), ("seeds", [str(s) for s in self.seeds]),
            ("datasets", [d.name for d in self.datasets]), ("backends", [b.key for b in self.backends]),
            *((f"methods.{m.key}.budgets", [str(b) for b in m.budgets]) for m in self.methods if m.budgets))
        for field, values in grid:
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"{field} lists {', '.join(repeated)} more than once (each cell would run twice)")
        return self

    @model_validator(mode="after")
    def _limits(self) -> SweepSpec:
        """Every cell within what one run may cause (``agentkit.registry.LIMITS``), checked at load."""
        for entry in self.methods:
            method = get_method(entry.name)
            for budget in entry.budgets or self.budgets:
                output = entry.budget_kind == "output"
                try:
                    params = method.params(**{**entry.params, **({"max_tokens": budget} if output else {})})
                    method.check_limits(params, None if output else budget)
                except ConfigError as exc:
                    raise ValueError(f"methods.{entry.key} at budget {budget}: {exc}") from None
        return self


class Cell(BaseModel):
    """One unit of work: a problem under one method, backend, budget and seed."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    item_id: str
    method: str
    """The method's key (label, or name and parameters)."""
    backend: str
    budget: int
    seed: int
    budget_kind: BudgetKind = "sequential"

    @property
    def key(self) -> str:
        fields: list[Any] = [self.dataset, self.item_id, self.method, self.backend, self.budget, self.seed]
        if self.budget_kind != "sequential":  # sequential cells keep the keys they had before budget kinds existed
            fields.append(self.budget_kind)
        raw = json.dumps(fields)
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    def in_shard(self, index: int, count: int) -> bool:
        return int(self.key[:8], 16) % count == index


def shipped_specs() -> dict[str, Path]:
    """The sweep specs that come with agentkit, by name (``demo``, ``smoke``, ``math500_vllm``, ...):
    ``benchmarks/sweeps`` of the source checkout, or the copy installed with the package (``agentkit/specs``)."""
    checkout = Path(__file__).resolve().parents[2] / "benchmarks" / "sweeps"
    folder = checkout if checkout.is_dir() else Path(__file__).resolve().parents[1] / "specs"
    return {p.stem: p for p in sorted(folder.glob("*.toml"))}


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a TOML spec; errors name the file and the fields. A name without a folder that is no
    file here (``demo``, ``smoke.toml``) is one of the specs shipped with agentkit (``shipped_specs``)."""
    given = Path(path)
    if not given.exists() and given.parent == Path() and given.name.removesuffix(".toml") in shipped_specs():
        path = shipped_specs()[given.name.removesuffix(".toml")]
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no sweep spec at {path} (shipped with agentkit: {', '.join(shipped_specs())})"
                          ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    plugins = raw.get("plugins", []) if isinstance(raw, dict) else []
    for plugin in plugins if isinstance(plugins, list) else []:
        if isinstance(plugin, str):
            relative = Path(path).parent / plugin
            load_plugin(str(relative) if plugin.endswith(".py") and not Path(plugin).exists() and relative.exists()
                        else plugin)
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{field}: {reason}" for field, reason in validation_problems(exc, root="spec"))
        raise ConfigError(f"{path}: {problems}") from None


def is_service_url(store: str) -> bool:
    """Whether a method's ``params.store`` names a handbook service (``agentkit serve``) rather than a directory."""
    return store.startswith(("http://", "https://"))


def require_handbooks(spec: SweepSpec) -> list[str]:
    """The handbooks the spec's methods name (``params.store``: store directories, or service URLs, which are not
    checked here), each once; a ``ConfigError`` if a directory does not exist (opening one would create an empty handbook, and every cell would answer without behaviors
    while its row said it used that store). ``sweep validate`` and ``sweep run`` both check this first."""
    paths = [p for p in dict.fromkeys(m.params.get("store") for m in spec.methods) if isinstance(p, str) and p]
    missing = [p for p in paths if not is_service_url(p) and not Path(p).exists()]
    if missing:
        raise ConfigError(f"no handbook at {', '.join(missing)}: build one first (agentkit handbook --store DIR "
                          "build ...) or import an export (agentkit handbook --store DIR import FILE.jsonl)")
    return paths


def spec_grid(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every cell of ``spec`` as the results database's ``grid`` table keeps it (its datasets loaded): the grid a
    report checks an older database against when it is given the spec."""
    items = {d.name: [p.problem_id for p in d.load()] for d in spec.datasets}
    return [{**c.model_dump(), "key": c.key} for c in iter_cells(spec, items)]


def iter_cells(spec: SweepSpec, items: dict[str, list[str]]) -> Iterator[Cell]:
    """Every cell, lazily (``items``: dataset name -> problem ids)."""
    for dataset in spec.datasets:
        for item_id in items[dataset.name]:
            for method in spec.methods:
                for backend in spec.backends:
                    for budget in method.budgets or spec.budgets:
                        for seed in spec.seeds:
                            yield Cell(dataset=dataset.name, item_id=item_id, method=method.key,
                                       backend=backend.key, budget=budget, seed=seed,
                                       budget_kind=method.budget_kind)
