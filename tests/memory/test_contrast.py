"""Contrastive curation: strategies from what correct attempts did, pitfalls from the wrong ones; labels come from
the grader only, and a wrong draft never yields a strategy labelled as from a correct one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentkit.errors import ConfigError
from agentkit.memory import Behavior, QdrantBehaviorStore, render_behaviors
from agentkit.memory.extract import parse_contrast
from agentkit.messages import GradedAttempt, Problem
from agentkit.pipelines import build_handbook
from agentkit.roles.strategist import contrast
from agentkit.testing import Reply, ScriptedBackend, ScriptedServer, call_step, run_agentkit

PROBLEM = Problem(problem_id="p1", text="Janet has 16 eggs, eats 3 and bakes with 4. How many are left?",
                  reference="9", topics=("Prealgebra",), dataset="unit")
OUTPUT = """Comparing them:
Strategies:
```json
{"behavior_subtract_each_use": "Subtract every use from the start, one at a time.",
 "behavior_both_ways": "Given twice on purpose."}
```
Pitfalls:
```json
{"behavior_skip_a_use": "Forgetting one of the uses gives a larger remainder.",
 "behavior_both_ways": "Given twice on purpose."}
```
"""


def attempts(*grades: bool) -> tuple[GradedAttempt, ...]:
    return tuple(GradedAttempt(text=f"attempt {i}: \\boxed{{{9 if ok else 12}}}", answer="9" if ok else "12",
                               correct=ok, trace_id=f"cell:r1b{i}") for i, ok in enumerate(grades))


def test_the_parser_takes_the_two_sections_and_nothing_outside() -> None:
    text = "behavior_stray: an entry before any section heading.\n" + OUTPUT
    parsed = parse_contrast(text)
    assert set(parsed.strategies.behaviors) == {"behavior_subtract_each_use", "behavior_both_ways"}
    assert set(parsed.pitfalls.behaviors) == {"behavior_skip_a_use", "behavior_both_ways"}
    assert any("outside the Strategies and Pitfalls" in reason for _, reason in parsed.strategies.dropped)
    none = parse_contrast('{"behavior_x": "no headings at all, so nothing is taken"}')
    assert not none.strategies.behaviors and not none.pitfalls.behaviors


def test_a_section_written_as_a_plain_list_is_read_item_by_item() -> None:
    """What the packaged 1.5B model wrote when asked to contrast (a real output, trimmed): the two headings, then
    bullets with no names. Each top-level item becomes a behavior named from its first words; a 0.5B's nested
    outline (items that are headings of sub-lists) yields nothing rather than headings as behaviors."""
    listed = parse_contrast("Strategies:\n- Sum up all the rainfall amounts to get the total rainfall.\n"
                            "- Divide the total by the number of months.\n\nPitfalls:\n"
                            "1. **Did not** sum up all the rainfall amounts.\n2) Did not divide by the number of months.\n")
    assert listed.strategies.source == listed.pitfalls.source == "bullets"
    assert listed.strategies.behaviors == {
        "behavior_sum_up_all_the_rainfall": "Sum up all the rainfall amounts to get the total rainfall.",
        "behavior_divide_the_total_by_the": "Divide the total by the number of months."}
    assert listed.pitfalls.behaviors == {
        "behavior_did_not_sum_up_all": "Did not sum up all the rainfall amounts.",
        "behavior_did_not_divide_by_the": "Did not divide by the number of months."}
    outline = parse_contrast("### Strategies\n\n1. **Identify the price tag on the shirt:**\n"
                             "   - **Correct Attempt:** The price tag on the shirt is $80.\n\n### Pitfalls\n"
                             "- ok\n")
    assert outline.strategies.behaviors == {} and outline.strategies.source == "none"
    assert outline.pitfalls.behaviors == {}  # "ok" is shorter than any instruction may be
    assert parse_contrast("- Check units.\nStrategies:\n{}\n").strategies.behaviors == {}  # outside: never


async def test_the_guards_hold_whatever_the_model_writes() -> None:
    backend = ScriptedBackend(lambda body: Reply(OUTPUT))
    mixed = await contrast(PROBLEM, backend, attempts(True, False, True))
    assert call_step(backend.requests[0])[1] == "strategist_contrast"
    prompt = backend.requests[0]["messages"][-1]["content"]
    assert "Attempt 1 (correct)" in prompt and "Attempt 2 (wrong)" in prompt and "Here are 3 attempts" in prompt
    assert mixed.behaviors == {"behavior_subtract_each_use": "Subtract every use from the start, one at a time."}
    assert mixed.pitfalls == {"behavior_skip_a_use": "Forgetting one of the uses gives a larger remainder."}
    assert ("behavior_both_ways", "given both as a strategy and as a pitfall") in mixed.dropped
    all_wrong = await contrast(PROBLEM, ScriptedBackend(lambda body: Reply(OUTPUT)), attempts(False, False))
    assert all_wrong.behaviors == {} and set(all_wrong.pitfalls) == {"behavior_skip_a_use"}
    assert any(reason == "a strategy, but no attempt was correct" for _, reason in all_wrong.dropped)
    all_right = await contrast(PROBLEM, ScriptedBackend(lambda body: Reply(OUTPUT)), attempts(True, True))
    assert all_right.pitfalls == {} and set(all_right.behaviors) == {"behavior_subtract_each_use"}
    assert mixed.usage.calls == 1 and mixed.usage.input_tokens > 0
    with pytest.raises(ConfigError, match="at least one graded attempt"):
        await contrast(PROBLEM, backend, ())


async def test_stored_provenance_is_exactly_the_graded_attempts_and_categories_never_merge(
        handbook: QdrantBehaviorStore) -> None:
    group = attempts(True, False, False, True)
    report = await build_handbook([PROBLEM, PROBLEM.with_(problem_id="p2")], ScriptedBackend(lambda b: Reply(OUTPUT)),
                                  handbook, contrast={"p1": group}, progress=None)
    assert report.problems == 1 and report.traces_correct == 2  # p2 had no attempts: skipped
    strategy = await handbook.get("behavior_subtract_each_use")
    pitfall = await handbook.get("behavior_skip_a_use")
    assert strategy.category == "strategy" and pitfall.category == "pitfall"
    assert {(p.trace_id, p.trace_correct) for p in strategy.provenance} == {("cell:r1b0", True), ("cell:r1b3", True)}
    assert {(p.trace_id, p.trace_correct) for p in pitfall.provenance} == {("cell:r1b1", False), ("cell:r1b2", False)}
    assert strategy.topics == ("Prealgebra",)
    assert render_behaviors([strategy, pitfall], header=None, bullet="").splitlines() == [
        "behavior_subtract_each_use: Subtract every use from the start, one at a time.",
        "behavior_skip_a_use: [pitfall: avoid this] Forgetting one of the uses gives a larger remainder."]
    # the same name as a strategy: a new entry with a suffix, never a merge across categories
    same = await handbook.add(Behavior(name="behavior_skip_a_use", instruction="Skip nothing: list every use."))
    assert same.name == "behavior_skip_a_use_strategy" and same.category == "strategy" and same.version == 1
    assert (await handbook.get("behavior_skip_a_use")).version == 1
    # a near-duplicate text in the other category is not merged either
    twin = await handbook.add(Behavior(name="behavior_forgot_one_use", category="strategy",
                                       instruction="Forgetting one of the uses gives a larger remainder."))
    assert twin.name == "behavior_forgot_one_use" and twin.version == 1


def _draft_or_contrast(body: dict[str, Any]) -> Reply:
    """PDR drafts answer 18 or 17 by seed parity (gsm8k-test-0's reference is 18); the Strategist's contrast call
    names one strategy and one pitfall."""
    if call_step(body)[1] == "strategist_contrast":
        return Reply(OUTPUT)
    if call_step(body)[1] == "strategist_reflect":
        return Reply("The attempt subtracted one use too few.")
    if call_step(body)[1] == "strategist_extract":
        return Reply('```json\n{"behavior_list_every_use": "List every use before subtracting."}\n```')
    if call_step(body)[1] == "pdr_summary":
        return Reply("The attempts disagree between 17 and 18.")
    return Reply(f"so \\boxed{{{18 if body.get('seed', 0) % 2 else 17}}}")


async def _pdr_sweep(tmp_path: Path, backend: str) -> None:
    """A real sweep (PDR, 2 rounds x 4 drafts, 2 GSM8K problems) into ``tmp_path / "r.sqlite"``."""
    from agentkit.sweep import load_spec, run_sweep

    spec = tmp_path / "pdr.toml"
    spec.write_text(f'name = "pdr"\nbudgets = [4000]\n[[datasets]]\nname = "gsm8k"\nlimit = 2\n[[methods]]\n'
                    f'name = "pdr"\nparams = {{ rounds = 2, drafts = 4, kappa = 128 }}\n[[backends]]\nspec = "{backend}"\n')
    await run_sweep(load_spec(spec), tmp_path / "r.sqlite")


async def test_from_a_real_sweep_database_through_the_cli_labels_are_the_graders(tmp_path: Path) -> None:
    from agentkit.sweep import ResultsDB, graded_drafts

    async with ScriptedServer(_draft_or_contrast) as server:
        backend = f"openai-compatible:{server.base_url}?model=scripted&retries=1"
        await _pdr_sweep(tmp_path, backend)
        problems, groups = await graded_drafts(tmp_path / "r.sqlite", max_drafts=4)
        db = ResultsDB(tmp_path / "r.sqlite", readonly=True)
        stored = {row["item_id"]: (row["reference"], db.trace(row["key"])) for row in db.rows()}
        db.close()
        for item_id, group in groups.items():
            reference, trace = stored[item_id]
            answers = {f"r{d[0]}b{d[1]}": d[2] for d in trace["drafts"]}
            assert 0 < len(group) <= 4
            for attempt in group:  # every label is "the draft's answer equals the reference"
                assert attempt.correct == (answers[attempt.trace_id.rsplit(":", 1)[1]] == reference)
        assert {p.problem_id for p in problems} == {"gsm8k-test-0", "gsm8k-test-1"}
        mixed = groups["gsm8k-test-0"]  # reference 18: both kinds, alternating, last round first
        assert {a.correct for a in mixed} == {True, False}
        assert mixed[0].correct != mixed[1].correct and mixed[0].trace_id.endswith(("r2b0", "r1b0", "r1b1", "r1b2"))
        code, out, err = await run_agentkit("handbook", "--store", str(tmp_path / "hb"), "--json", "build", "--from-sweep",
                                    str(tmp_path / "r.sqlite"), "--max-drafts", "4", "--backend", backend)
        assert code == 0, err
        built = json.loads(out)
        assert built["problems"] == 2 and built["usage"]["calls"] == 2
    store = await QdrantBehaviorStore(path=tmp_path / "hb").open()
    try:
        behaviors = await store.list_behaviors()
        assert {b.category for b in behaviors} == {"strategy", "pitfall"}
        for behavior in behaviors:
            for source in behavior.provenance:
                group = groups[str(source.problem_id)]
                graded = next(a for a in group if a.trace_id == source.trace_id)
                assert source.trace_correct == graded.correct  # the grader's label, carried through
                assert graded.correct == (behavior.category == "strategy")  # a wrong draft never backs a strategy
    finally:
        await store.close()
    code, _, err = await run_agentkit("handbook", "--store", str(tmp_path / "hb2"), "build", "--from-sweep",
                              str(tmp_path / "nothing.sqlite"))
    assert code == 2 and "no results database" in err and "Traceback" not in err
    code, _, err = await run_agentkit("handbook", "--store", str(tmp_path / "hb2"), "build", "--single-trace")
    assert code == 2 and "--from-sweep" in err and "Traceback" not in err


async def test_single_trace_baseline_reflects_on_each_problems_first_draft_alone(tmp_path: Path) -> None:
    """The baseline contrastive curation is measured against: the same sweep's drafts, one per problem (round 1,
    branch 0 of its first cell, whatever its grade), each reflected on alone: two calls, strategies only."""
    from agentkit.sweep import ResultsDB, graded_drafts

    async with ScriptedServer(_draft_or_contrast) as server:
        backend = f"openai-compatible:{server.base_url}?model=scripted&retries=1"
        await _pdr_sweep(tmp_path, backend)
        problems, firsts = await graded_drafts(tmp_path / "r.sqlite", single=True)
        db = ResultsDB(tmp_path / "r.sqlite", readonly=True)
        first = {row["item_id"]: (row["key"], db.trace(row["key"])["drafts"]) for row in db.rows()}
        db.close()
        assert {p.problem_id for p in problems} == set(firsts) == {"gsm8k-test-0", "gsm8k-test-1"}
        for item_id, (key, drafts) in first.items():
            (only,) = firsts[item_id]
            r1b0 = next(d for d in drafts if (d[0], d[1]) == (1, 0))
            assert only.trace_id == f"{key}:r1b0" and only.text == r1b0[5] and only.answer == str(r1b0[2])
        code, out, err = await run_agentkit("handbook", "--store", str(tmp_path / "hb"), "--json", "build",
                                            "--from-sweep", str(tmp_path / "r.sqlite"), "--single-trace",
                                            "--backend", backend)
        assert code == 0, err
        built = json.loads(out)
        assert built["problems"] == 2 and built["usage"]["calls"] == 4  # reflect + extract, no solving
    store = await QdrantBehaviorStore(path=tmp_path / "hb").open()
    try:
        (behavior,) = await store.list_behaviors()
        assert behavior.name == "behavior_list_every_use" and behavior.category == "strategy"
        assert {p.trace_id for p in behavior.provenance} == {firsts[p.problem_id][0].trace_id
                                                             for p in behavior.provenance}
    finally:
        await store.close()
