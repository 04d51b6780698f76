"""The drafts a sweep kept, graded: the material of contrastive curation (``agentkit handbook build --from-sweep``).

A sweep stores each PDR/SR cell's drafts with its run (``store_traces``, the default). ``graded_drafts`` reads
them back and grades every draft's answer against its row's reference with the sweep's own grader
(``MathVerifyGrader``: the label is the grader's, never a model's; a draft with no answer is wrong). Per problem it
keeps at most ``max_drafts``, alternating correct and wrong drafts, last rounds first, so that a group shows the
model both what worked and what did not. With ``single=True`` it keeps one draft per problem instead: the first
draft of its first cell (round 1, branch 0: what one plain attempt gives), whatever its grade, the material of
single-trace curation, the baseline contrastive curation is measured against.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agentkit.errors import ConfigError
from agentkit.evaluation.datasets import load_dataset
from agentkit.evaluation.grader import MathVerifyGrader
from agentkit.messages import GradedAttempt, Problem

from .db import ResultsDB

__all__ = ["graded_drafts"]


async def graded_drafts(db_path: str | Path, *, method: str | None = None, max_drafts: int = 8,
                        grader: MathVerifyGrader | None = None, single: bool = False) -> tuple[list[Problem], dict[str, list[GradedAttempt]]]:
    """The problems of a sweep database whose cells kept drafts (of ``method``, a method key, when given) and each
    problem's graded drafts. Problems come from their dataset (with subjects, for topics) when it loads, else
    from the stored run's text; a problem appears once however many cells it had. ``single``: one draft per
    problem, its first cell's first draft (see the module doc)."""
    if max_drafts < 1:
        raise ConfigError(f"max_drafts must be >= 1, got {max_drafts}")
    db = await asyncio.to_thread(ResultsDB, db_path, readonly=True)
    try:
        found: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for row in await asyncio.to_thread(lambda: list(db.rows())):
            if row["status"] != "ok" or row["reference"] is None or (method is not None and row["method"] != method):
                continue
            trace = await asyncio.to_thread(db.trace, row["key"])
            if trace and trace.get("drafts"):
                found.append((row, trace))
    finally:
        db.close()
    if not found:
        raise ConfigError(f"{db_path} has no stored drafts{f' of method {method!r}' if method else ''} "
                          "(PDR/SR cells of a sweep run with store_traces on)")
    own = grader is None
    active = grader or MathVerifyGrader(workers=2)
    problems: dict[str, Problem] = {}
    datasets: dict[str, dict[str, Problem]] = {}  # each dataset loaded once, for this call only
    groups: dict[str, tuple[list[GradedAttempt], list[GradedAttempt]]] = {}
    try:
        for row, trace in found:
            if single and row["item_id"] in problems:
                continue
            problem = problems.get(row["item_id"]) or _problem(row, trace, datasets)
            problems[row["item_id"]] = problem
            right, wrong = groups.setdefault(row["item_id"], ([], []))
            drafts = [min(trace["drafts"], key=lambda d: (d[0], d[1]))] if single else \
                sorted(trace["drafts"], key=lambda d: (-d[0], d[1]))
            for rnd, branch, answer, _finish, _tokens, text in drafts:
                correct = answer is not None and (await active.grade(str(answer), row["reference"],
                                                                     extracted=True)).correct
                attempt = GradedAttempt(text=str(text), answer=None if answer is None else str(answer),
                                        correct=correct, trace_id=f"{row['key']}:r{rnd}b{branch}")
                (right if correct else wrong).append(attempt)
    finally:
        if own:
            await active.aclose()
    attempts: dict[str, list[GradedAttempt]] = {}
    for item_id, (right, wrong) in groups.items():
        mixed: list[GradedAttempt] = []
        for i in range(max(len(right), len(wrong))):
            mixed.extend(a for a in (right[i:i + 1] + wrong[i:i + 1]))
        attempts[item_id] = mixed[:max_drafts]
    return list(problems.values()), attempts


def _problem(row: dict[str, Any], trace: dict[str, Any], datasets: dict[str, dict[str, Problem]]) -> Problem:
    """The row's problem from its dataset (subjects included; ``datasets`` caches them), else from the stored
    run's text."""
    name = str(row["dataset"])
    if name not in datasets:
        try:
            datasets[name] = {p.problem_id: p for p in load_dataset(name)}
        except ConfigError:
            datasets[name] = {}
    known = datasets[name].get(str(row["item_id"]))
    if known is not None:
        return known
    return Problem(problem_id=str(row["item_id"]), text=str(trace.get("problem", "")), reference=row["reference"],
                   dataset=name, sender="sweep")
