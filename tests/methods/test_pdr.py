"""PDR / SR: the exact call graph and budgets against the scripted backend, then end to end on the real
local model (2 rounds x 2 drafts)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentkit.backends import OpenAICompatible
from agentkit.backends.local import LocalServer
from agentkit.errors import BackendError, BudgetExceeded
from agentkit.ledger import Budget, Ledger
from agentkit.messages import Problem
from agentkit.methods.pdr import PDRConfig, pdr, plan_draft_tokens, sr
from agentkit.testing import Fault, Reply, ScriptedBackend, call_step, count_words

PROBLEM = Problem(problem_id="p1", text="Janet has 16 eggs, eats 3 and bakes with 4. How many are left?",
                  reference="9", run_id="r1")
SUMMARY = "Agreements: most attempts reach 9. Contradictions: one says 8."


def script(draft_answers: list[str], *, long: bool = False) -> Any:
    """Replies by prompt kind; the n-th draft call answers draft_answers[n % len]."""
    n = {"drafts": 0}

    def reply(body: dict[str, Any]) -> Reply | Fault:
        _, step = call_step(body)  # chosen by the call's context, not by the prompt's wording
        if step in {"pdr_summary", "sr_error_analysis"}:
            return Reply(SUMMARY)
        if step == "pdr_judge":
            return Reply("2, 1")
        answer = draft_answers[n["drafts"] % len(draft_answers)]
        n["drafts"] += 1
        if answer == "FAIL":
            return Fault.http(500, "draft backend down")
        filler = "step " * (300 if long else 3)
        return Reply(f"{filler}so the answer is \\boxed{{{answer}}}")

    return reply


def by_role(backend: ScriptedBackend) -> list[tuple[str, int, int]]:
    return [(b["context"]["role"], b["context"]["round"], b["context"]["branch"]) for b in backend.requests]


async def test_summary_pdr_call_graph_and_budgets() -> None:
    backend = ScriptedBackend(script(["9", "9", "8", "9", "9"]))
    ledger = Ledger(run_id="r1")
    config = PDRConfig(rounds=2, drafts=4, kappa=64, variant="summary", max_tokens=100)
    result = await pdr(PROBLEM, backend, config, ledger=ledger)
    assert sorted(by_role(backend)[:4]) == [("student", 1, b) for b in range(4)]  # concurrent: any order
    assert by_role(backend)[4:] == [("distiller", 1, 0), ("refiner", 2, 0)]
    distill, final = backend.requests[4], backend.requests[5]
    assert distill["max_tokens"] == 64  # kappa bounds the summary
    assert SUMMARY in final["messages"][-1]["content"]  # the round-2 prompt carries the workspace
    assert result.answer == "9" and len(result.drafts) == 5 and len(result.workspaces) == 1
    assert result.workspaces[0].tokens == count_words(SUMMARY) <= 64 and result.workspaces[0].drafts_seen == 4
    # Budgets, recomputed independently from what the server saw (one token per word).
    costs = [(sum(count_words(m["content"]) for m in b["messages"]), r.output_tokens)
             for b, r in zip(backend.requests, ledger.records, strict=True)]
    assert [c[0] for c in costs] == [r.input_tokens for r in ledger.records]
    total = sum(i + o for i, o in costs)
    seq = max(i + o for i, o in costs[:4]) + sum(i + o for i, o in costs[4:])
    assert (ledger.b_total, ledger.b_seq) == (total, seq) == (result.budget["B_total"], result.budget["B_seq"])
    diag = result.diagnostics["rounds"]
    assert diag[0]["answers"].count("9") == 3 and diag[0]["agreement"] == 0.75 and diag[0]["correct_drafts"] == 3
    assert diag[0]["correct_in_workspace"] == [True] and diag[1]["correct_drafts"] == 1


async def test_topk_by_agreement_needs_no_distill_call_and_respects_kappa() -> None:
    backend = ScriptedBackend(script(["7", "9", "9", "5"], long=True))
    result = await pdr(PROBLEM, backend, PDRConfig(rounds=2, drafts=4, kappa=120, variant="topk", k=2))
    assert [role for role, _, _ in by_role(backend)] == ["student"] * 4 + ["refiner"]
    [workspace] = result.workspaces
    assert workspace.tokens <= 120 and "[...]" in workspace.text  # long drafts keep their tails
    assert workspace.text.count("(answer: 9)") == 2  # the agreeing drafts were chosen
    assert workspace.text in backend.requests[-1]["messages"][-1]["content"]


async def test_per_sample_and_random_workspaces_differ_per_draft_and_are_seeded() -> None:
    def chosen(result: Any) -> list[list[tuple[int, int]]]:
        """Each workspace's source drafts as (round, branch): comparable across runs (message ids are not)."""
        where = {d.id: (d.round, d.branch) for d in result.drafts}
        return [[where[i] for i in w.source_draft_ids] for w in result.workspaces]

    async def run(variant: str, seed: int) -> Any:
        backend = ScriptedBackend(script(["1", "2", "3", "4", "5", "6"]))
        config = PDRConfig(rounds=3, drafts=(6, 3, 1), kappa=200, variant=variant, k=2, seed=seed)
        return await pdr(PROBLEM, backend, config)

    for variant in ("topk-per-sample", "random-k"):
        first, again, other = await run(variant, 5), await run(variant, 5), await run(variant, 6)
        assert len(first.workspaces) == 3 + 1  # one per next-round draft
        assert all(len(w.source_draft_ids) == 2 for w in first.workspaces)
        # Seeded: the same seed picks the same drafts for every next-round draft, with the same text.
        assert chosen(first) == chosen(again)
        assert [w.text for w in first.workspaces] == [w.text for w in again.workspaces]
        # Per draft: the three round-2 drafts do not all get the same workspace.
        assert len({tuple(c) for c in chosen(first)[:3]}) > 1
        assert len({w.text for w in first.workspaces[:3]}) > 1
        # And the seed matters: another seed picks differently somewhere.
        assert chosen(first) != chosen(other)


async def test_judge_selection_calls_the_model() -> None:
    backend = ScriptedBackend(script(["9", "8", "7"]))
    result = await pdr(PROBLEM, backend, PDRConfig(rounds=2, drafts=3, kappa=200, variant="topk", k=2,
                                                   select="judge"))
    assert ("distiller", 1, 0) in by_role(backend)
    # The judge said "2, 1": drafts 2 and 1 in that order.
    assert result.workspaces[0].text.startswith("Attempt 1 (answer: 8)")


async def test_a_failing_draft_is_dropped_and_counted() -> None:
    backend = ScriptedBackend(script(["9", "FAIL", "9", "9"]))
    result = await pdr(PROBLEM, backend, PDRConfig(rounds=2, drafts=4, kappa=64))
    assert result.workspaces[0].drafts_seen == 3 and result.diagnostics["rounds"][0]["failed"] == 1
    assert result.answer == "9"
    with pytest.raises(BackendError, match="every draft of round 1 failed"):
        await pdr(PROBLEM, ScriptedBackend(script(["FAIL"])), PDRConfig(rounds=2, drafts=2))


async def test_sr_and_error_analysis() -> None:
    backend = ScriptedBackend(script(["8", "9", "9"]))
    result = await sr(PROBLEM, backend, rounds=3, kappa=300)
    assert [role for role, _, _ in by_role(backend)] == ["student", "refiner", "refiner"]
    assert "(answer: 8)" in backend.requests[1]["messages"][-1]["content"]  # the previous draft is the workspace
    backend = ScriptedBackend(script(["8", "9"]))
    result = await sr(PROBLEM, backend, rounds=2, error_analysis=True, kappa=50)
    assert [role for role, _, _ in by_role(backend)] == ["student", "distiller", "refiner"]
    assert result.workspaces[0].variant == "error-analysis" and backend.requests[1]["max_tokens"] == 50


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="end in 1"):
        PDRConfig(rounds=2, drafts=(4, 2))
    with pytest.raises(ValueError, match="for SR"):
        PDRConfig(rounds=2, drafts=4, variant="error-analysis")
    assert PDRConfig(rounds=3, drafts=4).schedule == (4, 4, 1)


async def test_matched_sequential_budget() -> None:
    # Long CoT: the whole budget minus the prompt.
    assert plan_draft_tokens(1000, prompt_tokens=100) == 900
    # PDR 2 rounds x 4 drafts, summary, kappa 64, prompt 50: 1000 = (50 + m) + (50 + 4m + 64) + (50 + 64 + m)
    config = PDRConfig(rounds=2, drafts=4, kappa=64, variant="summary")
    assert plan_draft_tokens(1000, prompt_tokens=50, config=config) == (1000 - 50 - 114 - 114) // 6
    topk = PDRConfig(rounds=2, drafts=4, kappa=64, variant="topk")
    assert plan_draft_tokens(1000, prompt_tokens=50, config=topk) == (1000 - 50 - 114) // 2
    with pytest.raises(BudgetExceeded):
        plan_draft_tokens(100, prompt_tokens=80, config=config)
    # Planned and enforced: plan m from the largest prompt (the refine template), run under a sequential budget
    # (the ledger caps each call to what is left) and the run lands within the target.
    from agentkit.prompts import load_prompt

    prompt = sum(count_words(m["content"]) + 4 for m in load_prompt("pdr_refine").render(
        problem=PROBLEM.text, workspace="")) + 16
    run = PDRConfig(rounds=2, drafts=2, kappa=64, variant="summary")
    m = plan_draft_tokens(900, prompt_tokens=prompt, config=run)
    backend = ScriptedBackend(script(["9"], long=True))
    ledger = Ledger(Budget(sequential=900), count_tokens=count_words)
    result = await pdr(PROBLEM, backend, run.model_copy(update={"max_tokens": m}), ledger=ledger)
    drafts = [b for b in backend.requests if b["context"]["role"] != "distiller"]
    assert all(b["max_tokens"] <= m for b in drafts[:-1])
    # the final draft may take all that the earlier calls left
    assert drafts[-1]["max_tokens"] >= m
    assert 0.7 * 900 <= ledger.b_seq <= 900 and result.budget["B_seq"] == ledger.b_seq


@pytest.mark.model
async def test_pdr_end_to_end_on_the_local_model(local_server: LocalServer) -> None:
    backend = OpenAICompatible(local_server.model, base_url=local_server.base_url, supports_n=False, timeout=300)
    problem = Problem(problem_id="gsm8k-test-1", reference="3", run_id="e2e",
                      text="A robe takes 2 bolts of blue fiber and half that much white fiber. "
                           "How many bolts in total does it take?")
    try:
        result = await pdr(problem, backend, PDRConfig(rounds=2, drafts=2, kappa=96, variant="summary",
                                                       max_tokens=192, temperature=0.7, seed=1))
    finally:
        await backend.aclose()
    assert len(result.drafts) == 3 and len(result.workspaces) == 1
    assert 0 < result.workspaces[0].tokens <= 96
    assert result.budget["calls"] == 4 and result.budget["B_total"] > result.budget["B_seq"] > 0
    assert result.diagnostics["rounds"][0]["drafts"] == 2
    assert result.text.strip()


async def test_pdr_on_the_bus_one_message_per_draft(tmp_path: Any) -> None:
    from agentkit.bus import Bus, Recorder, read_recording

    backend = ScriptedBackend(script(["9", "FAIL", "9", "8"]), latency=0.05)
    path = tmp_path / "run.jsonl"
    async with Bus() as bus:
        recorder = Recorder(path).attach(bus)
        ledger = Ledger()
        result = await pdr(PROBLEM, backend, PDRConfig(rounds=2, drafts=4, kappa=64), ledger=ledger, bus=bus)
        again = await pdr(PROBLEM.with_(run_id="r2"), backend, PDRConfig(rounds=2, drafts=2, kappa=64), bus=bus)
    await recorder.close()
    kinds = [m.kind for m in read_recording(path)]
    # Draft replies cycle 9, FAIL, 9, 8 over both runs: run 1 drafts 9 FAIL 9 8 then 9; run 2 FAIL 9 then 8.
    assert kinds.count("refine_request") == 5 + 3 and kinds.count("draft") == 4 + 2
    assert kinds.count("failure") == 2  # each failing draft: published, dropped, its round went on
    assert kinds.count("distill_request") == 2 and kinds.count("distill_result") == 2
    assert result.workspaces[0].drafts_seen == 3 and result.answer == "9" and again.answer is not None
    assert backend.max_in_flight >= 3  # the drafts of a round ran at once
    assert ledger.calls == 5 and result.budget["calls"] == 5


async def test_cli_methods_at_one_matched_budget() -> None:
    import asyncio
    import json
    import sys

    from agentkit.testing import ScriptedServer

    long_reply = "think " * 2000 + "\\boxed{18}"
    async with ScriptedServer(lambda body: Reply(long_reply)) as server:
        spec = f"openai-compatible:{server.base_url}?model=scripted"
        rows = {}
        for method in ("long-cot", "sr", "pdr"):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agentkit", "solve", "--backend", spec, "--method", method, "--limit", "1",
                "--budget", "3000", "--rounds", "2", "--drafts", "3", "--kappa", "128", "--json",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 120)
            assert proc.returncode in (0, 1), err.decode()
            rows[method] = json.loads(out.decode().splitlines()[0])
    for method, row in rows.items():
        assert 0 < row["B_seq"] <= 3000, (method, row["B_seq"])
    assert rows["long-cot"]["calls"] == 1 and rows["sr"]["calls"] == 2 and rows["pdr"]["calls"] == 5
    assert rows["pdr"]["rounds"] == 2 and rows["pdr"]["schedule"] == [3, 1]
    record = rows["pdr"]["record"]  # the method's whole record: per-round diagnostics, drafts and workspaces
    assert [d[0] for d in record["drafts"]] == [1, 1, 1, 2] and record["workspaces"][0][1] <= 128
    assert rows["pdr"]["B_total"] > rows["pdr"]["B_seq"]


async def test_runs_on_two_backends_share_one_bus() -> None:
    from agentkit.bus import Bus

    a = ScriptedBackend(script(["1"]), model="a")
    b = ScriptedBackend(script(["2"]), model="b")
    async with Bus() as bus:
        ra, rb = await asyncio.gather(
            pdr(PROBLEM.with_(run_id="on-a"), a, PDRConfig(rounds=2, drafts=2, variant="topk"), bus=bus),
            pdr(PROBLEM.with_(run_id="on-b"), b, PDRConfig(rounds=2, drafts=2, variant="topk"), bus=bus))
    assert (ra.answer, rb.answer) == ("1", "2")
    assert len(a.requests) == 3 and len(b.requests) == 3  # each run's drafts went to its own backend, once


async def test_behaviors_inside_pdr_are_in_every_prompt_and_citations_are_counted() -> None:
    from agentkit.memory import Behavior

    class Handbook:
        def __init__(self) -> None:
            self.events: list[tuple[str, str]] = []

        async def record_usage(self, name: str, event: str, count: int = 1) -> None:
            self.events.append((name, event))

    behaviors = [Behavior(name="behavior_count_leftovers", instruction="subtract everything used from the start"),
                 Behavior(name="behavior_check_units", instruction="use one unit")]

    def reply(body: dict[str, Any]) -> Reply:
        text = " ".join(m["content"] for m in body["messages"])
        if "compress several attempts" in text:
            return Reply(SUMMARY)
        return Reply("Using behavior_count_leftovers: 16 - 3 - 4 = 9, so \\boxed{9}")

    backend = ScriptedBackend(reply)
    handbook = Handbook()
    result = await pdr(PROBLEM, backend, PDRConfig(rounds=2, drafts=2, kappa=64), behaviors=behaviors,
                       handbook=handbook)
    drafts_prompts = [b["messages"][0]["content"] for b in backend.requests if b["context"]["role"] != "distiller"]
    assert len(drafts_prompts) == 3 and all("- behavior_check_units: use one unit" in p for p in drafts_prompts)
    assert all(d.cited == ("behavior_count_leftovers",) for d in result.drafts)
    assert result.diagnostics["rounds"][0]["citations"] == {"behavior_count_leftovers": 2}
    assert handbook.events.count(("behavior_count_leftovers", "cited")) == 3
    assert handbook.events.count(("behavior_count_leftovers", "cited_correct")) == 1
    assert not any(name == "behavior_check_units" for name, _ in handbook.events)


def test_find_citations() -> None:
    from agentkit.memory import find_citations

    names = ["behavior_a", "behavior_ab", "behavior_b"]
    assert find_citations("use behavior_ab then behavior_b; xbehavior_a no", names) == ("behavior_ab", "behavior_b")
    assert find_citations("nothing", names) == ()


async def test_draft_seeds_do_not_collide_across_a_16_seed_by_8_draft_grid() -> None:
    """seed + 1000 * round + branch gave 23 distinct first-round seeds on this grid; hashed seeds give 128."""
    first_round: list[int] = []
    for seed in range(16):
        backend = ScriptedBackend(script(["9"]))
        await pdr(PROBLEM, backend, PDRConfig(rounds=2, drafts=8, kappa=64, variant="topk", k=2, seed=seed))
        first_round += [b["seed"] for b in backend.requests if b["context"]["round"] == 1]
    assert len(first_round) == 128 and len(set(first_round)) == 128
    again = ScriptedBackend(script(["9"]))
    await pdr(PROBLEM, again, PDRConfig(rounds=2, drafts=8, kappa=64, variant="topk", k=2, seed=15))
    assert sorted(b["seed"] for b in again.requests if b["context"]["round"] == 1) == sorted(first_round[-8:])
