"""Metacognitive reuse with the scripted backend: exact call sequences of curation, BCI, self-improvement,
critique-and-revise and BC-SFT data generation, against a real embedded handbook."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentkit.bus import Bus, Recorder, read_recording
from agentkit.errors import ConfigError
from agentkit.memory import QdrantBehaviorStore
from agentkit.messages import Problem, Solution, SolveRequest
from agentkit.methods import MethodServer, bci, critique_revise, retrieve_behaviors, self_improve
from agentkit.methods.bci import BCIRecord
from agentkit.pipelines import build_handbook, curate, generate_bc_sft
from agentkit.testing import Fault, Reply, ScriptedBackend, count_words, prompt_kind, run_agentkit

PROBLEMS = [Problem(problem_id=f"p{i}", text=f"Janet has {16 + i} eggs, eats 3 and bakes with 4. How many are left?",
                    reference=str(9 + i), topics=("Prealgebra",) if i % 2 == 0 else (), dataset="unit-train")
            for i in range(3)]
BEHAVIORS = {"behavior_count_leftovers": "Subtract everything used from the starting amount, one use at a time.",
             "behavior_check_units": "Check that every quantity is in the same unit before adding."}
DEMO_SPEC = Path(__file__).resolve().parents[2] / "benchmarks" / "sweeps" / "demo.toml"
EXTRACTION = "Here you go:\n```json\n" + json.dumps(BEHAVIORS) + "\n```"


def reply(body: dict[str, Any], *, extraction: str = EXTRACTION) -> Reply:
    kind = prompt_kind(body)
    if kind == "reflect":
        return Reply("The answer is right; behavior_count_leftovers would have shortened it.")
    if kind == "extract":
        return Reply(extraction)
    if kind == "bci":
        return Reply("Using behavior_count_leftovers: 16 - 3 - 4 = 9, so \\boxed{9}")
    if kind == "revise":
        return Reply("The earlier steps hold. \\boxed{9}")
    return Reply("16 - 3 - 4 = 9 \\boxed{9}")


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def calls(backend: ScriptedBackend) -> list[str]:
    return [prompt_kind(b) for b in backend.requests]


async def test_curate_solves_reflects_extracts_with_exact_usage() -> None:
    backend = ScriptedBackend(reply)
    c = await curate(PROBLEMS[0], backend)
    assert calls(backend) == ["solve", "reflect", "extract"]
    reflect_prompt = " ".join(m["content"] for m in backend.requests[1]["messages"])
    assert c.solution.text in reflect_prompt and "reference answer is 9" in reflect_prompt
    assert "is correct" in reflect_prompt
    assert "The answer is right" in " ".join(m["content"] for m in backend.requests[2]["messages"])
    assert c.proposal.behaviors == BEHAVIORS and c.proposal.trace_correct is True
    assert c.proposal.topics == ("Prealgebra",) and c.proposal.source_trace_id == c.solution.id
    expected_in = sum(count_words(" ".join(m["content"] for m in b["messages"])) for b in backend.requests)
    assert c.proposal.usage.input_tokens == expected_in and c.proposal.usage.calls == 3
    # without revealing the reference, the Strategist is not told
    hidden = ScriptedBackend(reply)
    await curate(PROBLEMS[0], hidden, reveal_reference=False)
    assert "reference" not in " ".join(m["content"] for m in hidden.requests[1]["messages"])


async def test_build_handbook_stores_with_provenance_and_topics_and_resumes(handbook: QdrantBehaviorStore,
                                                                            tmp_path: Path) -> None:
    failing = {"p2"}

    def script(body: dict[str, Any]) -> Reply | Fault:
        if any(f"{16 + int(p[1:])} eggs" in body["messages"][-1]["content"] for p in failing):
            return Fault.http(400, "scripted refusal")
        return reply(body)

    backend = ScriptedBackend(script)
    seen: list[tuple[str, bool]] = []
    async with Bus() as bus:
        recorder = Recorder(tmp_path / "run.jsonl").attach(bus)
        report = await build_handbook(PROBLEMS, backend, handbook, bus=bus, concurrency=2,
                                      on_problem=lambda pid, prop: seen.append((pid, prop is not None)))
        await bus.drain()
        await recorder.close()
    assert report.problems == 2 and set(report.failed) == {"p2"} and report.skipped == 0
    assert report.stored == 2 and report.merged == 2  # the second problem's behaviors merge by name
    assert report.usage.calls == 6 and report.traces_correct == 1  # the script answers 9; only p0's reference is 9
    assert sorted(seen) == [("p0", True), ("p1", True), ("p2", False)]
    stored = await handbook.get("behavior_count_leftovers")
    assert {(p.problem_id, p.trace_correct) for p in stored.provenance} == {("p0", True), ("p1", False)}
    assert all(p.model == "scripted" for p in stored.provenance)
    assert set(stored.topics) == {"Prealgebra", "unit-train"}  # the subject where there is one, else the dataset
    kinds = [m.kind for m in read_recording(tmp_path / "run.jsonl")]
    assert kinds.count("curate_request") == 3 and kinds.count("behavior_proposal") == 2
    assert kinds.count("solution") == 2 and kinds.count("reflection") == 2 and kinds.count("failure") == 1
    # resume: finished problems are skipped, the failed one is retried
    failing.clear()
    before = len(backend.requests)
    again = await build_handbook(PROBLEMS, backend, handbook)
    assert again.skipped == 2 and again.problems == 1 and not again.failed
    assert len(backend.requests) - before == 3
    log = read_jsonl(tmp_path / "hb" / "curation.jsonl")
    assert sorted(e["problem_id"] for e in log) == ["p0", "p1", "p2"]
    assert await handbook.count() == 2


async def test_curation_with_several_traces_per_problem_is_resumable_per_trace(handbook: QdrantBehaviorStore,
                                                                                 tmp_path: Path) -> None:
    backend = ScriptedBackend(reply)
    with pytest.raises(ConfigError, match="temperature > 0"):
        await build_handbook(PROBLEMS[:1], backend, handbook, traces=2)
    with pytest.raises(ConfigError, match="traces must be >= 1"):
        await build_handbook(PROBLEMS[:1], backend, handbook, traces=0)
    log = tmp_path / "hb" / "curation.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(json.dumps({"problem_id": "p0", "behaviors": []}) + "\n")  # an older log: no trace field
    report = await build_handbook(PROBLEMS[:2], backend, handbook, traces=3, temperature=0.7, seed=10,
                                  concurrency=1)
    assert report.traces == 3 and report.skipped == 1 and report.problems == 5 and report.usage.calls == 15
    solves = [b for b in backend.requests if prompt_kind(b) == "solve"]
    seeds = [(b["messages"][-1]["content"].split(" eggs")[0][-2:], b["seed"], b["temperature"]) for b in solves]
    assert seeds == [("16", 11, 0.7), ("16", 12, 0.7), ("17", 10, 0.7), ("17", 11, 0.7), ("17", 12, 0.7)]
    entries = read_jsonl(log)
    assert sorted((e["problem_id"], e.get("trace", 0)) for e in entries) == [
        ("p0", 0), ("p0", 1), ("p0", 2), ("p1", 0), ("p1", 1), ("p1", 2)]
    again = await build_handbook(PROBLEMS[:2], backend, handbook, traces=3, temperature=0.7, seed=10)
    assert again.problems == 0 and again.skipped == 6
    more = await build_handbook(PROBLEMS[:2], backend, handbook, traces=4, temperature=0.7, seed=10)
    assert more.problems == 2 and more.skipped == 6  # only the new fourth trace of each problem


async def test_bci_and_its_twin_differ_only_by_the_behavior_block(handbook: QdrantBehaviorStore) -> None:
    from agentkit.methods import METHODS
    from agentkit.testing import call_step

    plain = ScriptedBackend(reply)
    twin = await METHODS["bci-plain"].solve(PROBLEMS[0], plain, params=METHODS["bci-plain"].params(max_tokens=64))
    assert [call_step(b)[1] for b in plain.requests] == ["bci_plain"]
    assert twin.record == BCIRecord() and twin.solution.method == "bci-plain"
    empty = ScriptedBackend(reply)  # an empty handbook: BCI retrieves nothing and answers with the same twin
    none = await METHODS["bci"].solve(PROBLEMS[0], empty, params=METHODS["bci"].params(max_tokens=64),
                                    handbook=handbook)
    assert none.record.behaviors_in_context == 0 and none.record.behavior_tokens == 0
    assert empty.requests[0]["messages"] == plain.requests[0]["messages"]  # word for word
    full = ScriptedBackend(reply)
    some = await METHODS["bci"].solve(PROBLEMS[0], full, params=METHODS["bci"].params(
        max_tokens=64, behaviors=BEHAVIORS))
    assert [call_step(b)[1] for b in full.requests] == ["bci"] and some.record.behaviors_in_context == 2
    with_block = full.requests[0]["messages"][-1]["content"]
    assert all(line in with_block for line in plain.requests[0]["messages"][-1]["content"].splitlines() if line)
    assert some.record.behavior_tokens == some.solution.behavior_tokens > 0


async def test_malformed_extraction_stores_nothing(handbook: QdrantBehaviorStore) -> None:
    backend = ScriptedBackend(lambda body: reply(body, extraction='{"area": "not a behavior name", '
                                                                  '"behavior_x": "short"}'))
    report = await build_handbook(PROBLEMS[:1], backend, handbook)
    assert report.problems == 1 and report.stored == 0 and report.dropped == 2
    assert await handbook.count() == 0


async def test_copies_of_the_prompts_own_example_are_dropped() -> None:
    copied = json.dumps({"behavior_area_of_circle": "area of a circle is pi*r^2",
                         "behavior_<short_name>": "<one general instruction>", **BEHAVIORS})
    c = await curate(PROBLEMS[0], ScriptedBackend(lambda body: reply(body, extraction=copied)))
    assert c.proposal.behaviors == BEHAVIORS
    assert sorted(reason.split(":")[0] for _, reason in c.proposal.dropped) == ["copies the prompt's example", "name"]


async def test_bci_retrieves_k_counts_citations_and_usage(handbook: QdrantBehaviorStore) -> None:
    await build_handbook(PROBLEMS[:1], ScriptedBackend(reply), handbook)
    # Curated from PROBLEMS[0] itself: by default never retrieved for it (no leakage of an item into its own prompt).
    assert await retrieve_behaviors(handbook, PROBLEMS[0], k=2, record=False) == []
    backend = ScriptedBackend(reply)
    solution = await bci(PROBLEMS[0], backend, handbook=handbook, k=2, exclude_own=False)  # opted out, on purpose
    assert calls(backend) == ["bci"]
    prompt = backend.requests[0]["messages"][-1]["content"]
    assert all(f"{name}: {text}" in prompt for name, text in BEHAVIORS.items())
    assert set(solution.behaviors) == set(BEHAVIORS) and solution.cited == ("behavior_count_leftovers",)
    assert solution.answer == "9" and solution.method == "bci" and solution.behavior_tokens > 0
    assert solution.b_total == solution.usage.input_tokens + solution.usage.output_tokens
    cited = await handbook.get("behavior_count_leftovers")
    assert (cited.stats.retrieved, cited.stats.cited, cited.stats.cited_correct) == (1, 1, 1)
    other = await handbook.get("behavior_check_units")
    assert (other.stats.retrieved, other.stats.cited) == (1, 0)
    # topic retrieval finds them under the subject; a problem of another topic gets none
    assert len(await retrieve_behaviors(handbook, PROBLEMS[2], retrieval="topic", record=False)) == 2
    stranger = PROBLEMS[2].with_(topics=("Geometry",), dataset="other")
    assert await retrieve_behaviors(handbook, stranger, retrieval="topic", record=False) == []


async def test_utility_retrieval_reranks_similar_behaviors_by_their_graded_record(handbook: QdrantBehaviorStore) -> None:
    from agentkit.memory import Behavior
    from agentkit.memory.retrieval import utility_score
    from agentkit.methods import METHODS

    problem = Problem(problem_id="q", text="A shop sells 12 apples and then 5 more; how many apples in all?",
                      reference="17")
    await handbook.add(Behavior(name="behavior_count_apples_sold",
                                instruction="Count the apples a shop sells, one sale at a time."))
    await handbook.add(Behavior(name="behavior_add_each_batch",
                                instruction="Add each batch of fruit sold to get how many in all."))
    await handbook.add(Behavior(name="behavior_draw_triangles", instruction="Sketch the triangle before any angle."))
    hits = await handbook.search(problem.text, 2)
    first, second = hits[0].behavior.name, hits[1].behavior.name
    assert {first, second} == {"behavior_count_apples_sold", "behavior_add_each_batch"}
    assert hits[0].score - hits[1].score < 0.2  # close enough in similarity for a record to decide
    assert [b.name for b in await retrieve_behaviors(handbook, problem, k=1, retrieval="utility", record=False)] == \
        [first]  # nothing graded yet: similarity decides
    # the most similar one has a bad record, the other a good one: the rerank flips them
    await handbook.record_usage(first, "cited_wrong", 6)
    await handbook.record_usage(second, "cited_correct", 6)
    await handbook.flush_usage()
    assert [b.name for b in await retrieve_behaviors(handbook, problem, k=1, retrieval="utility", record=False)] == \
        [second]
    assert [b.name for b in await retrieve_behaviors(handbook, problem, k=1, record=False)] == [first]  # plain
    # a frozen evaluation with utility retrieval leaves every count as it was
    before = {b.name: b.stats for b in await handbook.list_behaviors()}
    method = METHODS["bci"]
    frozen = await method.solve(problem, ScriptedBackend(lambda body: Reply(f"Using {second}: \\boxed{{17}}")),
                              params=method.params(k=1, retrieval="utility"), handbook=handbook)
    assert frozen.solution.cited == (second,) and frozen.record.handbook_mode == "frozen"
    assert {b.name: b.stats for b in await handbook.list_behaviors()} == before
    # the score: never graded is neutral with the largest exploration bonus; a good record beats a bad one
    from agentkit.memory import BehaviorStats
    fresh, good, bad = BehaviorStats(), BehaviorStats(cited_correct=6), BehaviorStats(cited_wrong=6)
    assert utility_score(0.5, good, 12) > utility_score(0.5, fresh, 12) > utility_score(0.5, bad, 12)
    assert utility_score(0.5, fresh, 0) == 0.5


async def test_self_improve_and_critique_revise_call_sequences() -> None:
    backend = ScriptedBackend(reply)
    improved = await self_improve(PROBLEMS[0], backend, max_tokens=64)
    assert calls(backend) == ["solve", "reflect", "extract", "bci"]
    assert "reference" not in " ".join(m["content"] for m in backend.requests[1]["messages"])
    final_prompt = " ".join(m["content"] for m in backend.requests[3]["messages"])
    assert improved.attempts[0].text not in final_prompt  # behaviors and question only
    assert improved.behaviors == BEHAVIORS and improved.solution.method == "self-improve"
    assert {b["max_tokens"] for b in (backend.requests[0], backend.requests[3])} == {64}
    total = sum(count_words(" ".join(m["content"] for m in b["messages"])) for b in backend.requests)
    assert improved.solution.b_total > total  # inputs plus outputs of all four calls

    baseline = ScriptedBackend(reply)
    revised = await critique_revise(PROBLEMS[0], baseline, max_tokens=64)
    assert calls(baseline) == ["solve", "revise"]
    assert revised.attempts[0].text in baseline.requests[1]["messages"][-1]["content"]
    assert revised.solution.answer == "9" and revised.solution.method == "critique-revise"
    assert revised.solution.b_seq == revised.solution.b_total  # strictly sequential


async def test_critique_revise_with_several_attempts_revises_self_improvements_first_answers_in_one_call() -> None:
    from agentkit.methods import METHODS
    from agentkit.testing import call_step

    improving = ScriptedBackend(reply)
    improved = await self_improve(PROBLEMS[0], improving, attempts=3, max_tokens=64, temperature=0.7)
    revising = ScriptedBackend(reply)
    result = await METHODS["critique-revise"].solve(PROBLEMS[0], revising, params=METHODS["critique-revise"].params(
        attempts=3, max_tokens=64, temperature=0.7))
    revised = result.record
    first_seeds = sorted(b["seed"] for b in revising.requests if call_step(b)[1] == "long_cot")
    assert len(first_seeds) == 3 and len(set(first_seeds)) == 3
    assert first_seeds == sorted(b["seed"] for b in improving.requests if call_step(b)[1] == "long_cot")
    assert [call_step(b)[1] for b in revising.requests][3:] == ["critique_revise_many"]
    prompt = revising.requests[3]["messages"][-1]["content"]
    assert "Here are 3 earlier solutions" in prompt and all(f"Solution {i}:" in prompt for i in (1, 2, 3))
    assert all(text in prompt for text in revised.attempts) and len(revised.attempts) == 3
    assert result.solution.usage.calls == 4 and len(improved.attempts) == 3
    with pytest.raises(ConfigError, match="attempts must be >= 1"):
        await critique_revise(PROBLEMS[0], revising, attempts=0)


async def test_the_method_server_runs_any_method_on_the_bus(handbook: QdrantBehaviorStore) -> None:
    await build_handbook(PROBLEMS[:1], ScriptedBackend(reply), handbook)
    backend = ScriptedBackend(reply)
    async with Bus() as bus:
        MethodServer(backend, handbook=handbook, k=1).attach(bus, concurrency=2)
        out: dict[str, Solution] = {}
        for method in ("long-cot", "bci", "self-improve", "critique-revise"):
            out[method] = await bus.request(SolveRequest(problem=PROBLEMS[1], method=method), Solution, timeout=30)
        given = await bus.request(SolveRequest(problem=PROBLEMS[1], method="bci",
                                               behaviors={"behavior_own": "An instruction given by the caller."}),
                                  Solution, timeout=30)
    assert {m: s.usage.calls for m, s in out.items()} == {"long-cot": 1, "bci": 1, "self-improve": 4,
                                                          "critique-revise": 2}
    assert len(out["bci"].behaviors) == 1 and out["long-cot"].behaviors == ()
    assert given.behaviors == ("behavior_own",)
    assert [s.method for s in out.values()] == list(out)


async def test_bc_sft_files_keep_behaviors_out_of_the_student_prompt(tmp_path: Path,
                                                                     handbook: QdrantBehaviorStore) -> None:
    teacher, strategist = ScriptedBackend(reply), ScriptedBackend(reply)
    report = await generate_bc_sft(PROBLEMS, teacher, tmp_path / "sft", strategist=strategist)
    assert report.problems == 3 and report.conditioned_rows == 3 and report.plain_rows == 3
    # the Teacher's cap is generous by default (a cut trace is a bad target); the Strategist has its own
    assert {b["max_tokens"] for b in teacher.requests} == {8192}
    assert {b["max_tokens"] for b in strategist.requests} == {2048}
    assert report.conditioned_correct == 1 and report.plain_correct == 1  # only p0's reference is 9
    bc, plain = read_jsonl(report.conditioned_path), read_jsonl(report.plain_path)
    for row in bc + plain:
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
        assert "behavior_" not in row["messages"][0]["content"] + row["messages"][1]["content"]
    assert all("behavior_count_leftovers" in row["messages"][2]["content"] for row in bc)
    assert calls(teacher).count("bci") == 3 and calls(teacher).count("solve") == 3
    filtered = await generate_bc_sft(PROBLEMS, ScriptedBackend(reply), tmp_path / "f", handbook=await _filled(
        handbook), only_correct=True)
    assert filtered.conditioned_rows == 1 and filtered.plain_rows == 1


async def _filled(store: QdrantBehaviorStore) -> QdrantBehaviorStore:
    await build_handbook(PROBLEMS[:1], ScriptedBackend(reply), store)
    return store


async def test_cli_builds_a_handbook_then_solves_with_bci(tmp_path: Path) -> None:
    from agentkit.testing import ScriptedServer

    store = str(tmp_path / "hb")
    async with ScriptedServer(reply) as server:
        spec = f"openai-compatible:{server.base_url}?model=scripted"
        code, out, err = await run_agentkit("handbook", "build", "--dataset", "gsm8k-train", "--limit", "2",
                                       "--store", store, "--backend", spec, "--json")
        assert code == 0, err
        built = json.loads(out)
        assert built["problems"] == 2 and built["active"] == 2 and built["usage"]["calls"] == 6
        code, out, err = await run_agentkit("handbook", "build", "--dataset", "gsm8k-train", "--limit", "2",
                                       "--store", store, "--backend", spec, "--json")
        assert code == 0 and json.loads(out)["skipped"] == 2, err  # resumed: nothing redone
        code, out, err = await run_agentkit("solve", "--method", "bci", "--store", store, "--behaviors", "2",
                                       "--limit", "2", "--backend", spec, "--json")
        assert code == 0, err
        rows = [json.loads(line) for line in out.splitlines()]
        assert len(rows) == 2 and all(len(r["behaviors"]) == 2 for r in rows)
        assert all(r["cited"] == ["behavior_count_leftovers"] and r["behavior_tokens"] > 0 for r in rows)
        code, out, err = await run_agentkit("solve", "--method", "bci", "--limit", "1", "--backend", spec)
        assert code == 2 and "needs --store" in err and "Traceback" not in err
        for method, calls in (("self-improve", 4), ("critique-revise", 2)):
            code, out, err = await run_agentkit("solve", "--method", method, "--limit", "1", "--backend", spec, "--json")
            assert code == 0, err
            assert json.loads(out)["calls"] == calls  # the whole method, not only the final call


async def test_the_demo_pipeline_runs_every_method_of_its_spec(tmp_path: Path) -> None:
    """`make demo`'s three commands on `benchmarks/sweeps/demo.toml` as shipped (budget, method parameters),
    with the scripted server for the local model: every method fits the budget (no cell fails), and the report
    and plot are written."""
    from agentkit.testing import ScriptedServer

    store = tmp_path / "hb"
    async with ScriptedServer(reply) as server:
        backend = f"openai-compatible:{server.base_url}?model=scripted"
        spec = DEMO_SPEC.read_text()
        assert 'spec = "local"' in spec and '".agentkit/demo-handbook"' in spec
        spec = spec.replace('spec = "local"', f'spec = "{backend}"').replace(
            '".agentkit/demo-handbook"', json.dumps(str(store))).replace("limit = 12", "limit = 2")
        (tmp_path / "demo.toml").write_text(spec)
        code, out, err = await run_agentkit("handbook", "build", "--dataset", "gsm8k-train", "--limit", "1",
                                       "--max-tokens", "320", "--store", str(store), "--backend", backend, "--json")
        assert code == 0, err
        db = tmp_path / "demo" / "results.sqlite"
        code, out, err = await run_agentkit("sweep", "run", str(tmp_path / "demo.toml"), "--db", str(db), "--json")
        assert code == 0, err
        summary = json.loads(out)
        assert summary["cells"] == 8 and summary["ran"] == 8 and summary["failed"] == 0, err
        code, out, err = await run_agentkit("sweep", "report", str(db), "--out", str(tmp_path / "report"),
                                       "--spec", str(tmp_path / "demo.toml"))
        assert code == 0, err
    assert "report:" in out and "plot:" in out
    report = (tmp_path / "report" / "report.md").read_text()
    for method in ("long-cot", "bci-k2", "sr-2rounds", "pdr-2x2-topk"):
        assert f"| {method} |" in report and method in out
    # the handbook's build cost (one curation: solve, reflect, extract) is listed beside the results it served
    assert f"- `{store}` (all-MiniLM-L6-v2): 1 curations, 3 calls, " in report


async def test_evaluation_leaves_a_frozen_handbook_unchanged_and_online_mode_says_so(
        handbook: QdrantBehaviorStore) -> None:
    """Through the registry (the CLI, sweeps and the method server all go there), BCI is frozen by default: retrieval
    order cannot depend on usage graded against the test references; the events are in the result instead."""
    from agentkit.methods import METHODS

    await build_handbook(PROBLEMS[:1], ScriptedBackend(reply), handbook)
    before = {b.name: b.stats for b in await handbook.list_behaviors()}
    method = METHODS["bci"]
    frozen = await method.solve(PROBLEMS[2], ScriptedBackend(reply), params=method.params(k=2), handbook=handbook)
    assert {b.name: b.stats for b in await handbook.list_behaviors()} == before
    assert frozen.record.handbook_mode == "frozen"
    assert sorted(e for _, e, _ in frozen.record.usage) == ["cited", "cited_wrong", "retrieved", "retrieved"]
    online = await method.solve(PROBLEMS[2], ScriptedBackend(reply), params=method.params(k=2, handbook_mode="online"),
                              handbook=handbook)
    assert online.record == BCIRecord(handbook_mode="online", behaviors_in_context=2,
                                      behavior_tokens=online.solution.behavior_tokens)
    assert online.solution.behavior_tokens > 0
    after = await handbook.get("behavior_count_leftovers")
    assert (after.stats.retrieved, after.stats.cited_wrong) == (before["behavior_count_leftovers"].retrieved + 1, 1)


async def test_a_split_guard_keeps_behaviors_curated_from_the_evaluated_split_out(
        handbook: QdrantBehaviorStore) -> None:
    test_split = [p.with_(dataset="unit-test") for p in PROBLEMS]
    await build_handbook(test_split[:1], ScriptedBackend(reply), handbook)  # curated from the test split itself
    stored = await handbook.get("behavior_count_leftovers")
    assert [(p.problem_id, p.dataset) for p in stored.provenance] == [("p0", "unit-test")]
    other_item = test_split[1]
    # Another item of the same split: retrieved by default (only the item's own behaviors are excluded) ...
    assert len(await retrieve_behaviors(handbook, other_item, k=2, record=False)) == 2
    # ... and by nothing with the split guard on; a problem of another split still gets them.
    assert await retrieve_behaviors(handbook, other_item, k=2, record=False, exclude_split=True) == []
    elsewhere = other_item.with_(dataset="unit-train")
    assert len(await retrieve_behaviors(handbook, elsewhere, k=2, record=False, exclude_split=True)) == 2
    # Through the registry: BCI's exclude_split parameter answers with the plain prompt when all is excluded. It is
    # on by default for a frozen evaluation of an evaluation split (this one), off for a training split or online.
    from agentkit.methods import get_method
    backend = ScriptedBackend(reply)
    bci_method = get_method("bci")
    for params in ({"exclude_split": True}, {}):
        guarded = await bci_method.solve(other_item, backend, params=bci_method.params(k=2, **params), handbook=handbook)
        assert guarded.solution.behaviors == ()
    opened = await bci_method.solve(other_item, backend, params=bci_method.params(k=2, exclude_split=False),
                                  handbook=handbook)
    assert len(opened.solution.behaviors) == 2
    online = await bci_method.solve(other_item, backend, params=bci_method.params(k=2, handbook_mode="online"),
                                  handbook=handbook)
    assert len(online.solution.behaviors) == 2
    trained = await bci_method.solve(elsewhere, backend, params=bci_method.params(k=2), handbook=handbook)
    assert len(trained.solution.behaviors) == 2
