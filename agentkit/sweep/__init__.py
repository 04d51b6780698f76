"""Concurrent benchmark sweeps: TOML specs (``spec``), a resumable SQLite runner (``runner``, ``db``) and
reports with confidence intervals and Pareto plots (``report``). The CLI is ``agentkit sweep
run|resume|merge|report``."""

from .db import ResultsDB
from .drafts import graded_drafts
from .report import write_report
from .runner import SweepSummary, run_cell, run_sweep
from .spec import Cell, SweepSpec, iter_cells, load_spec
from .validate import CellPlan, infeasible, validate_spec

__all__ = ["Cell", "CellPlan", "ResultsDB", "SweepSpec", "SweepSummary", "graded_drafts", "infeasible", "iter_cells",
           "load_spec", "run_cell", "run_sweep", "validate_spec", "write_report"]
