"""Loading benchmark problems as ``Problem`` messages.

Built-in names map to the JSON Lines files in ``benchmarks/data/`` (copied from ``shared/data`` with their
attribution table): ``gsm8k`` (test), ``gsm8k-train``, ``math500``, ``math-curation``, ``aime24``, ``aime25``,
``amc23``. Any other JSON Lines file loads by path. The data directory is ``$AGENTKIT_DATA_DIR`` when set,
else ``benchmarks/data`` of the source checkout agentkit runs from, else the copy the wheel installs
(``agentkit/data``).

``limit`` takes the first N problems; with ``seed`` it takes a seeded random sample of N instead
(the same seed gives the same sample). ``stratify="subject"`` spreads the N over the subjects in proportion to
each subject's share of the file (``stratified_sample``), so a curation sample of MATH is not all Algebra
because the file happens to start with Algebra.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from pathlib import Path

from agentkit.errors import ConfigError
from agentkit.messages import Problem

__all__ = ["DATASETS", "STRATIFY", "data_dir", "is_training_split", "load_dataset", "numeric_answers", "split_guarded",
           "stratified_sample"]

STRATIFY = ("subject",)
"""What a sample can be stratified by: a problem's subject (``Problem.topics[0]``; no subject is its own
stratum)."""

DATASETS: dict[str, str] = {
    "gsm8k": "gsm8k_test.jsonl",
    "gsm8k-train": "gsm8k_train.jsonl",
    "math500": "math500.jsonl",
    "math-curation": "math_curation.jsonl",
    "aime24": "aime24.jsonl",
    "aime25": "aime25.jsonl",
    "amc23": "amc23.jsonl",
}


def numeric_answers(dataset: str) -> bool:
    """Whether the last number of a finished answer counts as its answer when it has no ``\\boxed{}``
    (GSM8K's rule, ``extract_strict``'s ``final_number``): the GSM8K datasets."""
    return dataset.startswith("gsm8k")


def is_training_split(dataset: str | None) -> bool:
    """Whether a dataset (``Problem.dataset``) is one that handbooks are curated from: a training or curation
    split (``gsm8k-train``, ``math-curation``, any name ending ``-train`` or containing ``curation``); every other
    one (``gsm8k``, ``math500``, ``aime24``, a file of the user's) is treated as an evaluation split, which a
    frozen evaluation keeps behaviors curated from out of its prompts by default (``exclude_split``)."""
    name = (dataset or "").lower()
    return name.endswith(("-train", "_train")) or "curation" in name


def split_guarded(exclude_split: bool | None, mode: str | None, dataset: str | None) -> bool:
    """Whether retrieval keeps behaviors curated from ``dataset`` (the split being answered) out of the prompts:
    ``exclude_split`` as set, or by default (None) for a frozen evaluation (``mode`` not ``online``) of an
    evaluation split. The one rule the methods, the sweep's warnings and the report apply."""
    if exclude_split is not None:
        return exclude_split
    return mode != "online" and dataset is not None and not is_training_split(dataset)


def data_dir() -> Path:
    """Where the built-in datasets live: ``$AGENTKIT_DATA_DIR``, else ``benchmarks/data`` of the source checkout
    agentkit runs from, else the copy installed with the package (``agentkit/data``)."""
    env = os.environ.get("AGENTKIT_DATA_DIR")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2] / "benchmarks" / "data"
    return checkout if checkout.is_dir() else Path(__file__).resolve().parents[1] / "data"


def _path(name: str) -> tuple[str, Path]:
    if name in DATASETS:
        path = data_dir() / DATASETS[name]
        if not path.is_file():
            raise ConfigError(
                f"dataset {name!r} expects {path}, which is missing; reinstall agentkit (the wheel ships the "
                "datasets) or set $AGENTKIT_DATA_DIR to a folder holding the benchmark JSON Lines files"
            )
        return name, path
    path = Path(name).expanduser()
    if path.suffix in {".jsonl", ".json"} and path.is_file():
        return path.stem, path
    raise ConfigError(f"unknown dataset {name!r}; use one of {', '.join(DATASETS)} or a .jsonl path")


def stratified_sample(problems: Sequence[Problem], n: int, *, seed: int | None = None) -> list[Problem]:
    """``n`` problems spread over the subjects in proportion to their shares of ``problems``.

    Each subject gets ``n * share`` rounded down, and the problems left over go to the largest remainders (ties:
    the larger subject, then the subject seen first); while ``n`` is at least the number of subjects, every
    subject gets at least one (taken from the largest quotas). Within a subject, ``seed`` draws a seeded random
    sample; without one, the subject's first rows. The result keeps the file's order.
    """
    if n < 0:
        raise ConfigError(f"limit must be >= 0, got {n}")
    strata: dict[str, list[int]] = {}
    for index, problem in enumerate(problems):
        strata.setdefault(problem.topics[0] if problem.topics else "", []).append(index)
    total = len(problems)
    n = min(n, total)
    if n == 0:
        return []
    order = list(strata)  # first seen first
    exact = {s: n * len(strata[s]) / total for s in order}
    quota = {s: int(exact[s]) for s in order}
    by_remainder = sorted(order, key=lambda s: (-(exact[s] - quota[s]), -len(strata[s]), order.index(s)))
    for s in by_remainder[:n - sum(quota.values())]:
        quota[s] += 1
    if n >= len(order):  # every subject represented: move one from the largest quotas to each empty one
        for s in [s for s in order if quota[s] == 0]:
            donor = max(order, key=lambda d: (quota[d], -order.index(d)))
            quota[donor] -= 1
            quota[s] = 1
    rng = random.Random(seed)
    chosen: list[int] = []
    for s in order:
        members = strata[s]
        chosen.extend(rng.sample(members, quota[s]) if seed is not None else members[:quota[s]])
    return [problems[i] for i in sorted(chosen)]


def load_dataset(name: str, *, limit: int | None = None, seed: int | None = None, stratify: str | None = None,
                 offset: int = 0, problem_field: str = "problem", answer_field: str = "answer", id_field: str = "id",
                 subject_field: str = "subject") -> list[Problem]:
    """Load a dataset as ``Problem`` messages (``reference`` = the answer; ``topics`` = the subject).

    ``limit`` keeps N problems: the first N, a seeded random sample (``seed``), or with ``stratify="subject"``
    a sample spread over the subjects in proportion (``stratified_sample``, seeded or the first of each).
    ``offset`` first drops the dataset's first N problems (a held-out slice: ``offset=100, limit=30`` never meets
    a run over ``limit=100``)."""
    if offset < 0:
        raise ConfigError(f"offset must be >= 0, got {offset}")
    if stratify is not None and stratify not in STRATIFY:
        raise ConfigError(f"stratify must be one of {', '.join(STRATIFY)}, got {stratify!r}")
    label, path = _path(name)
    problems: list[Problem] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text = row[problem_field]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ConfigError(f"{path}:{number}: not a problem row ({type(exc).__name__}: {exc})") from None
            subject = row.get(subject_field)
            answer = row.get(answer_field)
            problems.append(Problem(
                problem_id=str(row.get(id_field, f"{label}-{number - 1}")), text=str(text),
                reference=None if answer is None else str(answer), topics=(str(subject),) if subject else (),
                dataset=label, sender="dataset",
            ))
    problems = problems[offset:]
    if limit is not None:
        if limit < 0:
            raise ConfigError(f"limit must be >= 0, got {limit}")
        if stratify is not None:
            problems = stratified_sample(problems, limit, seed=seed)
        else:
            problems = random.Random(seed).sample(problems, min(limit, len(problems))) if seed is not None \
                else problems[:limit]
    return problems
