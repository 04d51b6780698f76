"""The method contract: a method is typed end to end (``Method[P]``, ``RunContext[P]``, its own record), roles are
leaves, every face runs methods through one path, and nothing outside a method's own module names it.

- A plugin defined here (its own params, record with a trace field, prompt) runs through ``solve``, a sweep and
  ``MethodServer``; its record round-trips through a sweep row and ``sweep report --json --rows`` unchanged.
- The faces, the runner, the report and the method server hold no method name (an AST scan of their string
  constants); no module imports an agentkit module by a string (``import_module`` / ``__import__``), which
  import-linter could not see.
- Reports of committed results are unchanged by the contract: ``sweep report --json`` of six committed databases
  equals what it printed before (``tests/data/report_golden``, written by the previous code).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from agentkit.bus import Bus
from agentkit.errors import ConfigError
from agentkit.messages import AnswerRequest, Problem, Solution, SolveRequest
from agentkit.methods import (
    METHODS,
    Method,
    MethodParams,
    MethodRecord,
    MethodResult,
    MethodServer,
    RunContext,
    register,
    result_summary,
    run_method,
)
from agentkit.registry import baseline_names, record_of
from agentkit.roles import Student, ask, attached
from agentkit.testing import Reply, ScriptedBackend, ScriptedServer, call_step

ROOT = Path(__file__).resolve().parents[2]
PROBLEM = Problem(problem_id="p1", text="What is 4 + 5?", reference="9")


class TwiceParams(MethodParams):
    times: int = Field(default=2, ge=1, le=8)
    """How many chains of thought, one after another."""


class TwiceRecord(MethodRecord):
    trace_fields = ("texts",)

    answers: list[str | None]
    same: bool
    texts: list[str] = Field(default_factory=list)


class Twice(Method[TwiceParams]):
    """A plugin as a user writes one: typed params (no assert, no private helper), its own record."""

    name = "test-twice"
    summary = "answer `times` times, one after another; the last answer stands"
    params_model = TwiceParams
    record_model = TwiceRecord
    templates = ("long_cot",)

    async def run(self, problem: Problem, ctx: RunContext[TwiceParams]) -> MethodResult:
        answers: list[Solution] = []
        async with attached(ctx.bus, problem.run_id, [(Student(ctx.backend, ledger=ctx.ledger), 1)]) as active:
            for i in range(ctx.params.times):  # typed: ctx.params is TwiceParams
                answers.append(await ask(active, problem.derive(
                    AnswerRequest, sender=self.name, problem=problem, max_tokens=await ctx.call_cap(problem),
                    temperature=ctx.params.temperature, seed=ctx.derive_seed(problem.problem_id, i), round=i + 1,
                    final=i == ctx.params.times - 1, method=self.name), Solution))
        record = TwiceRecord(answers=[a.answer for a in answers], same=len({a.answer for a in answers}) == 1,
                             texts=[a.text for a in answers])
        return MethodResult(solution=answers[-1], ledger=ctx.ledger, record=record)


@pytest.fixture(scope="module", autouse=True)
def twice() -> Twice:
    return METHODS.get("test-twice") or register(Twice())  # type: ignore[return-value]


def numbered(body: dict[str, Any]) -> Reply:
    return Reply("so \\boxed{9}")


async def test_a_plugin_is_typed_end_to_end_and_runs_through_the_one_path() -> None:
    backend = ScriptedBackend(numbered)
    result = await run_method("test-twice", PROBLEM, backend, params={"times": 3}, seed=5)
    assert isinstance(result.record, TwiceRecord) and result.record.answers == ["9", "9", "9"]
    assert result.record.diagnostics() == {"answers": ["9", "9", "9"], "same": True}  # texts: trace only
    assert result.record.trace() == {"texts": ["so \\boxed{9}"] * 3}
    assert len({b["seed"] for b in backend.requests}) == 3 and [call_step(b)[1] for b in backend.requests] == [
        "long_cot"] * 3
    summary = result_summary("test-twice", result)
    assert summary["method"] == "test-twice" and summary["answer"] == "9" and summary["calls"] == 3
    assert summary["same"] is True  # the record's own summary, for any method
    with pytest.raises(ConfigError, match="times"):
        await run_method("test-twice", PROBLEM, backend, params={"times": 0})
    # an output-cap budget sets each call's cap and leaves the run without a B_seq budget
    capped = ScriptedBackend(numbered)
    await run_method("test-twice", PROBLEM, capped, params={"times": 1}, budget=33, budget_kind="output")
    assert [b["max_tokens"] for b in capped.requests] == [33]


async def test_the_method_server_answers_solve_requests_with_a_plugin_and_the_default_baseline() -> None:
    backend = ScriptedBackend(numbered)
    async with Bus() as bus:
        MethodServer(backend, max_tokens=40).attach(bus, concurrency=2)
        plugin = await bus.request(SolveRequest(problem=PROBLEM, method="test-twice", params={"times": 2}),
                                   Solution, timeout=10)
        default = await bus.request(SolveRequest(problem=PROBLEM), Solution, timeout=10)
    assert plugin.answer == "9" and plugin.usage.calls == 1  # the last answer's own usage
    assert default.method == baseline_names()[0] and default.answer == "9"
    assert {b["max_tokens"] for b in backend.requests} == {40}


async def test_a_plugin_record_round_trips_through_a_sweep_row_and_the_report(tmp_path: Path) -> None:
    from agentkit.faces.cli import main
    from agentkit.sweep import ResultsDB, load_spec, run_sweep

    spec = tmp_path / "s.toml"
    async with ScriptedServer(numbered) as server:
        spec.write_text(f'''name = "contract"
budgets = [2000]
[[datasets]]
name = "gsm8k"
limit = 2
[[methods]]
name = "test-twice"
params = {{ times = 2 }}
[[methods]]
name = "long-cot"
[[backends]]
spec = "openai-compatible:{server.base_url}?model=scripted&retries=1"
''')
        summary = await run_sweep(load_spec(spec), tmp_path / "r.sqlite")
    assert summary.ran == 4 and summary.failed == 0
    db = ResultsDB(tmp_path / "r.sqlite")
    rows = {(r["item_id"], r["method"]): r for r in db.rows()}
    db.close()
    row = rows[("gsm8k-test-0", "test-twice(times=2)")]
    assert json.loads(row["details"]) == {"answers": ["9", "9"], "same": True}
    db = ResultsDB(tmp_path / "r.sqlite")
    trace = db.trace(row["key"])
    db.close()
    assert trace is not None and trace["texts"] == ["so \\boxed{9}"] * 2
    back = record_of("test-twice", json.loads(row["details"]), trace)
    assert back == TwiceRecord(answers=["9", "9"], same=True, texts=["so \\boxed{9}"] * 2)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # the CLI runs its own event loop: from a thread
        assert await asyncio.to_thread(main, ["sweep", "report", str(tmp_path / "r.sqlite"), "--json", "--rows"]) == 0
    report = json.loads(out.getvalue())
    records = {(r["item_id"], r["method"]): r["record"] for r in report["rows"]}
    assert records[("gsm8k-test-0", "test-twice(times=2)")] == back.model_dump(mode="json")
    assert records[("gsm8k-test-0", "long-cot")] is None  # a method that records nothing
    # the plugin is not a baseline: the report compares it with long CoT, which is
    assert [(c["a"], c["b"]) for c in report["comparisons"]] == [("test-twice(times=2)", "long-cot")]


# -- the code says so ------------------------------------------------------------------------------------------

FACES = [p for p in (ROOT / "agentkit" / "faces").rglob("*.py")]
NAMELESS = [*FACES, *sorted((ROOT / "agentkit" / "sweep").glob("*.py")), ROOT / "agentkit" / "methods" / "server.py",
            ROOT / "agentkit" / "registry.py", ROOT / "agentkit" / "messages.py"]


def _strings(path: Path) -> list[tuple[int, str]]:
    return [(node.lineno, node.value) for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def test_no_face_runner_or_report_names_a_method() -> None:
    builtins = set(METHODS) - {"test-twice"}
    named = [f"{path.relative_to(ROOT)}:{line}: {value!r}" for path in NAMELESS for line, value in _strings(path)
             if value in builtins]
    assert named == []


def _names_agentkit(arg: ast.expr) -> bool:
    """Whether an import's name is (or starts as) a literal naming an agentkit module or a relative one; names
    computed from data (a user's ``--plugin``, the model-weight packages) are not agentkit's modules."""
    head = arg.values[0] if isinstance(arg, ast.JoinedStr) and arg.values else arg
    return isinstance(head, ast.Constant) and isinstance(head.value, str) and head.value.startswith(("agentkit", "."))


def test_no_module_imports_agentkit_by_a_string() -> None:
    """import-linter sees ``import`` statements only: a by-string import of an agentkit module would bypass the
    layer contracts (the registry once imported ``agentkit.methods`` so)."""
    found = []
    for path in [*(ROOT / "agentkit").rglob("*.py"), *(ROOT / "memory").rglob("*.py"), *(ROOT / "backends").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and _names_agentkit(node.args[0]):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_roles_import_neither_the_registry_nor_methods() -> None:
    """What the import-linter contract says, checked here too for the modules as written."""
    for path in (ROOT / "agentkit" / "roles").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("agentkit.registry", "agentkit.methods")), path


# -- compatibility: committed results report as before ----------------------------------------------------------

GOLDEN = sorted((ROOT / "tests" / "data" / "report_golden").glob("*.json"))


@pytest.mark.parametrize("golden", GOLDEN, ids=[g.stem for g in GOLDEN])
def test_committed_results_report_as_before(golden: Path) -> None:
    from agentkit.faces.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["sweep", "report", str(ROOT / "benchmarks" / "results" / f"{golden.stem}.sqlite"), "--json"]) == 0
    assert json.loads(out.getvalue()) == json.loads(golden.read_text(encoding="utf-8"))


# -- plugins through the entry-point group ----------------------------------------------------------------------

def test_a_package_registers_methods_through_the_entry_point_group(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin package names its module in the ``agentkit.methods`` group; the registry imports it on the first
    miss. A plugin that fails to import is logged and skipped, the others still load."""
    import importlib.metadata
    import sys

    from agentkit import registry

    (tmp_path / "ak_entry_plugin.py").write_text(
        "from agentkit.methods import METHODS, register\n"
        "from agentkit.methods.long_cot import LongCoT\n"
        "class Entry(LongCoT):\n    name = 'test-entry'\n    baseline = False\n"
        "if 'test-entry' not in METHODS:\n    register(Entry())\n")
    (tmp_path / "ak_broken_plugin.py").write_text("raise RuntimeError('a broken plugin')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    points = [importlib.metadata.EntryPoint("broken", "ak_broken_plugin", registry.ENTRY_POINT_GROUP),
              importlib.metadata.EntryPoint("entry", "ak_entry_plugin", registry.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group: [p for p in points if p.group == group])
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    try:
        assert registry.get_method("test-entry").name == "test-entry"  # loaded on the first miss
        assert "test-entry" in registry.method_names()
    finally:
        METHODS.pop("test-entry", None)
        sys.modules.pop("ak_entry_plugin", None)
        sys.modules.pop("ak_broken_plugin", None)
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        registry.get_method("nope")


def test_how_many_behaviors_has_one_parameter_per_method() -> None:
    """A caller's "how many behaviors" (``--behaviors``, ``SolveRequest.k``) reaches BCI's ``k`` and PDR's
    ``behavior_k``, never PDR's ``k`` (its workspace's top-k drafts) or the examples' ``k``."""
    from agentkit.methods import behavior_count_field

    assert behavior_count_field(METHODS["pdr"]) == "behavior_k" and behavior_count_field(METHODS["bci"]) == "k"
    assert behavior_count_field(METHODS["examples"]) is None and behavior_count_field(METHODS["long-cot"]) is None
    assert METHODS["pdr"].params(behaviors=3).behavior_k == 3  # the name it had before still reads
    assert METHODS["pdr"].params(behavior_k=2, k=1).k == 1
