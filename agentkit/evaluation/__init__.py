"""Evaluation: everything that turns answers into numbers, apart from the methods that produce them.

- ``datasets``: the offline problem sets under ``benchmarks/data/`` (and any JSON Lines file) as ``Problem``\\ s;
- ``answers``: answer *extraction* from model text (``extract_answer``, ``last_boxed``) and a light numeric
  *match* (``answers_match``), used in the hot path (PDR agreement, curation verdicts);
- ``grader``: the math-verify *grader* (``MathVerifyGrader``) for sweeps, in worker processes
  (``python -m agentkit.evaluation._grader_worker``) with its own timeout;
- ``stats``: Wilson intervals, unbiased pass@k, accuracy summaries.

Moved here from ``agentkit.datasets``, ``agentkit.grading``, ``agentkit.grader``, ``agentkit._grade_worker`` and
``agentkit.stats`` (0.1 development line); the names are unchanged.
"""

from .answers import answers_match, extract_answer, last_boxed
from .datasets import DATASETS, data_dir, load_dataset
from .grader import Grade, MathVerifyGrader, grader_version
from .stats import accuracy_summary, pass_at_k, wilson_interval

__all__ = [
    "DATASETS",
    "Grade",
    "MathVerifyGrader",
    "accuracy_summary",
    "answers_match",
    "data_dir",
    "extract_answer",
    "grader_version",
    "last_boxed",
    "load_dataset",
    "pass_at_k",
    "wilson_interval",
]
