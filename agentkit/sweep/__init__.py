"""Concurrent benchmark sweeps: TOML specs (``spec``), a resumable SQLite runner (``runner``, ``db``) and
reports with confidence intervals and Pareto plots (``report``). The CLI is ``agentkit sweep
run|resume|merge|report``."""

from .db import ResultsDB
from .drafts import graded_drafts
from .report import report_data, report_row, write_report
from .runner import BackendUnreachable, SweepSummary, run_cell, run_sweep
from .spec import Cell, SweepSpec, iter_cells, load_spec, require_handbooks, spec_grid
from .validate import CellPlan, implied_comparisons, infeasible, starved, validate_spec

__all__ = ["BackendUnreachable", "Cell", "CellPlan", "ResultsDB", "SweepSpec", "SweepSummary", "graded_drafts", "implied_comparisons",
           "infeasible", "iter_cells", "load_spec", "report_data", "report_row", "require_handbooks", "run_cell", "run_sweep", "spec_grid", "starved",
           "validate_spec", "write_report"]
