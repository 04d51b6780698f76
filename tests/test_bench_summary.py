"""The performance summary table (benchmarks/perf/summary.py): the README quotes the committed results, a missing or
broken result is a row rather than a crash, and a figure past its target says so."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
PERF = ROOT / "benchmarks" / "perf"


@pytest.fixture(scope="module")
def summary() -> ModuleType:
    spec = importlib.util.spec_from_file_location("perf_summary", PERF / "summary.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["perf_summary"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_readme_table_is_the_committed_results(summary: ModuleType) -> None:
    assert summary.main(["--check"]) == 0, "run: python benchmarks/perf/summary.py"


def _copy(tmp_path: Path) -> tuple[Path, Path]:
    results = tmp_path / "results"
    shutil.copytree(PERF / "results", results)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{'<!-- perf-summary:begin -->'}\nold table\n{'<!-- perf-summary:end -->'}\n\nafter\n")
    return results, readme


def test_missing_and_broken_results_are_rows_not_crashes(summary: ModuleType, tmp_path: Path) -> None:
    results, readme = _copy(tmp_path)
    (results / "bus.json").unlink()
    (results / "overhead.json").write_text("{not json")
    (results / "proxy.json").write_text(json.dumps({"agentkit_over_direct": {}}))
    assert summary.main(["--results", str(results), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "| bus.json | - | - | - | - | no result (missing) |" in text
    assert "| overhead.json |" in text and "no result (unreadable: JSONDecodeError" in text
    assert "| proxy.json |" in text and "no result (unreadable: KeyError" in text
    assert "old table" not in text and text.endswith("<!-- perf-summary:end -->\n\nafter\n")
    assert (results / "SUMMARY.md").read_text().startswith("# Performance summary")
    # the README now differs from the real results: --check on it fails
    assert summary.main(["--check", "--readme", str(readme)]) == 1


def test_a_figure_past_its_target_prints_not_met(summary: ModuleType, tmp_path: Path) -> None:
    results, readme = _copy(tmp_path)
    bus = json.loads((results / "bus.json").read_text())
    bus["agentkit_time_over_bare_queue"] = {"median": 2.01, "min": 1.5, "max": 3.0}
    (results / "bus.json").write_text(json.dumps(bus))
    pdr = json.loads((results / "pdr_concurrency.json").read_text())
    pdr["ratio"] = 1.0
    (results / "pdr_concurrency.json").write_text(json.dumps(pdr))
    found = {r.figure: r for r in summary.rows(results)}
    slow = found["bus time / bare queue time, 100k messages"]
    assert slow.measured == "2.01x (1.50-3.00)" and slow.status() == "**not met**"
    assert found["PDR round of 8 drafts / one draft"].status() == "met"
    assert summary.main(["--results", str(results), "--readme", str(readme)]) == 0
    assert "| 2.01x (1.50-3.00) | <= 2x | **not met** |" in readme.read_text()


def test_a_readme_without_markers_is_one_line_and_exit_2(summary: ModuleType, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# no table here\n")
    assert summary.main(["--readme", str(readme)]) == 2
    assert "no <!-- perf-summary:begin -->" in capsys.readouterr().err
    assert readme.read_text() == "# no table here\n"
