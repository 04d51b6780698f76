"""Streaming test-time learning: answer with the handbook as it is, then learn from that attempt; frozen and
no-handbook twins on the same stream; resumable, refusing another stream; no grade reaches the handbook when the
reference is not revealed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentkit.errors import ConfigError
from agentkit.memory import QdrantBehaviorStore
from agentkit.messages import Problem
from agentkit.pipelines import learn_from_stream, learning_curve, stream_order
from agentkit.testing import Reply, ScriptedBackend, call_step

PROBLEMS = [Problem(problem_id=f"s{i}", text=f"A farm has {10 + i} hens and buys {i} more. How many hens now?",
                    reference=str(10 + 2 * i), topics=("Prealgebra",), dataset="unit") for i in range(4)]


LESSONS = [("behavior_count_purchases", "Add every purchase to the starting count before answering."),
           ("behavior_check_units", "Convert every quantity to one unit before any arithmetic."),
           ("behavior_draw_a_table", "Lay the quantities out in a small table, one row per item."),
           ("behavior_work_backwards", "Start from the final state and undo each step in reverse.")]


def script(body: dict[str, Any]) -> Reply:
    step = call_step(body)[1]
    if step == "strategist_reflect":
        return Reply("Counting the hens bought separately would have helped.")
    if step == "strategist_extract":
        text = body["messages"][-1]["content"]
        n = int(text.split(" hens")[0].split()[-1]) - 10  # one distinct behavior per problem: the handbook grows
        return Reply(json.dumps(dict([LESSONS[n]])))
    return Reply("10 + 0 = \\boxed{10}")  # right only for the first problem


async def test_online_answers_then_learns_per_item_and_records_the_version(handbook: QdrantBehaviorStore,
                                                                           tmp_path: Path) -> None:
    backend = ScriptedBackend(script)
    rows = await learn_from_stream(PROBLEMS[:3], backend, mode="online", handbook=handbook, log=tmp_path / "on.jsonl",
                                   k=4, max_tokens=64, curation_tokens=64)
    steps = [call_step(b)[1] for b in backend.requests]
    assert steps == ["bci_plain", "strategist_reflect", "strategist_extract",
                     "bci", "strategist_reflect", "strategist_extract",
                     "bci", "strategist_reflect", "strategist_extract"]  # answer, then learn, item by item
    assert [r.handbook_version for r in rows] == [0, 1, 2] and [r.handbook_size for r in rows] == [0, 1, 2]
    assert [r.behaviors_in_context for r in rows] == [0, 1, 2] and [r.correct for r in rows] == [True, False, False]
    assert all(r.curation_input_tokens > 0 and r.answer_input_tokens > 0 for r in rows)
    # resume: nothing is redone; a longer stream continues where it stopped (version 3)
    more = await learn_from_stream(PROBLEMS, backend, mode="online", handbook=handbook, log=tmp_path / "on2.jsonl")
    assert len(more) == 4
    again = ScriptedBackend(script)
    same = await learn_from_stream(PROBLEMS[:3], again, mode="online", handbook=handbook, log=tmp_path / "on.jsonl")
    assert again.requests == [] and same == rows
    with pytest.raises(ConfigError, match="another stream"):
        await learn_from_stream(list(reversed(PROBLEMS[:3])), again, mode="online", handbook=handbook,
                                log=tmp_path / "on.jsonl")
    with pytest.raises(ConfigError, match="another stream or mode"):
        await learn_from_stream(PROBLEMS[:3], again, mode="frozen", handbook=handbook, log=tmp_path / "on.jsonl")
    curve = learning_curve(rows, every=2)
    assert [p["seen"] for p in curve] == [2, 3] and curve[0]["accuracy"] == 0.5
    assert curve[1]["ci_low"] < curve[1]["accuracy"] < curve[1]["ci_high"]


async def test_frozen_leaves_the_handbook_unchanged_and_none_uses_no_behaviors(handbook: QdrantBehaviorStore) -> None:
    await learn_from_stream(PROBLEMS[:2], ScriptedBackend(script), mode="online", handbook=handbook)
    before = {b.name: (b.version, b.stats) for b in await handbook.list_behaviors()}
    frozen = await learn_from_stream(PROBLEMS, ScriptedBackend(script), mode="frozen", handbook=handbook)
    assert {b.name: (b.version, b.stats) for b in await handbook.list_behaviors()} == before
    assert all(r.handbook_version == 0 and r.handbook_size == 2 for r in frozen)
    assert all(r.curation_input_tokens == 0 and not r.stored for r in frozen)
    plain = ScriptedBackend(script)
    none = await learn_from_stream(PROBLEMS, plain, mode="none")
    assert {call_step(b)[1] for b in plain.requests} == {"bci_plain"} and all(r.behaviors_in_context == 0 for r in none)
    with pytest.raises(ConfigError, match="needs a handbook"):
        await learn_from_stream(PROBLEMS, plain, mode="online")


async def test_without_the_reference_no_grade_reaches_the_handbook(handbook: QdrantBehaviorStore) -> None:
    backend = ScriptedBackend(script)
    rows = await learn_from_stream(PROBLEMS, backend, mode="online", handbook=handbook, reveal_reference=False)
    assert any(not r.correct for r in rows)  # there were labels to leak
    for body in backend.requests:
        for message in body["messages"]:
            assert "reference answer" not in message["content"]
    for behavior in await handbook.list_behaviors():
        assert behavior.stats.cited_correct == behavior.stats.cited_wrong == 0
        assert all(p.trace_correct is None for p in behavior.provenance)


def test_the_stream_order_is_seeded() -> None:
    a, b = stream_order(PROBLEMS, 1), stream_order(PROBLEMS, 1)
    assert [p.problem_id for p in a] == [p.problem_id for p in b]
    assert sorted(p.problem_id for p in a) == [p.problem_id for p in PROBLEMS]
