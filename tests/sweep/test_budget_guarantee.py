"""A sequential budget is a guarantee: no sweep row's measured B_seq exceeds its budget, whatever the server's
tokenizer, when the backend can count prompts (``Backend.count_prompt_tokens``: llama.cpp's and vLLM's tokenize
endpoints). Against a server whose tokenizer agentkit cannot reach, later calls learn from the first ones, and any
row that still exceeds is counted by the report."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from agentkit.backends.base import make_request
from agentkit.calls import budgeted_chat
from agentkit.ledger import Budget, Ledger, estimate_prompt_tokens
from agentkit.sweep import ResultsDB, load_spec, run_sweep
from agentkit.sweep.report import summarise
from agentkit.testing import Reply, ScriptedBackend, ScriptedServer, count_words

METHODS = """
[[methods]]
name = "long-cot"

[[methods]]
name = "bci-plain"

[[methods]]
name = "sr"
label = "sr"
params = {{ rounds = 2, kappa = 64 }}

[[methods]]
name = "pdr"
label = "pdr"
params = {{ rounds = 2, drafts = 2, kappa = 96, variant = "summary" }}

[[methods]]
name = "pdr"
label = "pdr-topk"
params = {{ rounds = 3, drafts = 3, kappa = 96, variant = "topk" }}

[[methods]]
name = "self-consistency"
label = "sc"
params = {{ samples = 3 }}

[[methods]]
name = "rsa"
label = "rsa"
params = {{ population = 3, subset = 2, loops = 1 }}
"""

SPEC = """
name = "budgets"
concurrency = 8
budgets = {budgets}
seeds = [0]

[[datasets]]
name = "{dataset}"
limit = 2
""" + METHODS + """
[[backends]]
spec = "openai-compatible:{url}?model=scripted&retries=1"
concurrency = 8
"""


def counter(factor: float) -> Callable[[Sequence[dict[str, Any]]], int]:
    """A server tokenizer that counts ``factor`` times agentkit's pre-call estimate."""
    return lambda messages: math.ceil(factor * estimate_prompt_tokens(messages))


def filler(factor: float) -> Callable[[dict[str, Any]], Reply]:
    """Fills every cap: far more words than any call may write (a boxed answer at the end, never reached). Each
    word is sized so that the server's tokenizer counts it as about one token when it comes back in a later
    prompt (a draft inside a distill prompt), as a real tokenizer counts the text it generated."""
    word = "x" * (round(4 / factor) - 1)
    return lambda body: Reply(f"{word} " * 6000 + "\\boxed{18}")


async def sweep(tmp_path: Path, factor: float, *, tokenize: bool, budgets: str, dataset: str = "gsm8k"
                ) -> list[dict[str, Any]]:
    async with ScriptedServer(filler(factor), prompt_tokens=counter(factor), tokenize=tokenize) as server:
        spec = tmp_path / f"spec-{factor}-{tokenize}-{dataset}.toml"
        spec.write_text(SPEC.format(url=server.base_url, budgets=budgets, dataset=dataset))
        db = tmp_path / f"r-{factor}-{tokenize}-{dataset}.sqlite"
        await run_sweep(load_spec(spec), db)
    results = ResultsDB(db, create=False)
    try:
        return list(results.rows())
    finally:
        results.close()


@pytest.mark.parametrize("factor", [0.7, 1.5])
async def test_no_row_exceeds_its_budget_when_the_server_counts_prompts(tmp_path: Path, factor: float) -> None:
    rows = [r for dataset in ("gsm8k", "math500")
            for r in await sweep(tmp_path, factor, tokenize=True, budgets="[1024, 2048, 4096]", dataset=dataset)]
    assert len(rows) == 2 * 2 * 7 * 3  # datasets x problems x methods x budgets
    over = [(r["method"], r["budget"], r["b_seq"]) for r in rows if r["b_seq"] is not None and r["b_seq"] > r["budget"]]
    assert over == []
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == len(rows), [r["error"] for r in rows if r["status"] != "ok"]
    # The budget is used, not hoarded: a single chain of thought's call takes all that is left, so it lands on the
    # budget exactly; PDR/SR's last round takes what the earlier ones left.
    assert all(r["b_seq"] == r["budget"] for r in ok if r["method"] in ("long-cot", "bci-plain"))
    assert all(r["b_seq"] >= 0.9 * r["budget"] for r in ok if r["method"] in ("sr", "pdr", "pdr-topk"))
    assert all(g["over_budget"] == 0 for g in summarise(rows))


async def test_without_a_tokenizer_later_calls_learn_and_the_report_counts_rows_over(tmp_path: Path) -> None:
    rows = await sweep(tmp_path, 1.5, tokenize=False, budgets="[2048]")
    groups = {g["method"]: g for g in summarise(rows)}
    over = {r["method"] for r in rows if r["b_seq"] is not None and r["b_seq"] > r["budget"]}
    # One call's prompt, estimated at two thirds of its size before anything was learned, overruns the budget by
    # that error; the report says so per method.
    assert "long-cot" in over and groups["long-cot"]["over_budget"] == 2
    assert sum(g["over_budget"] for g in groups.values()) == sum(
        1 for r in rows if r["b_seq"] is not None and r["b_seq"] > r["budget"])


async def test_exact_counts_cap_the_call_and_learn_what_the_server_bills_beyond_them() -> None:
    # The backend counts the prompt exactly (6 words): a planned call keeps its planned cap, the final call of a
    # sequential budget takes all that is left.
    backend = ScriptedBackend(lambda body: Reply("word " * 100))
    ledger = Ledger(Budget(sequential=40))
    await budgeted_chat(ledger, backend, "a b c d e f", role="student", round=1, max_tokens=5)
    assert backend.requests[-1]["max_tokens"] == 5 and ledger.b_seq == 11
    [(record, _)] = await budgeted_chat(ledger, backend, "a b c d e f", role="student", round=2, max_tokens=5,
                                        final=True)
    assert backend.requests[-1]["max_tokens"] == 40 - 11 - 6 and ledger.b_seq == 40 and not ledger.over_budget
    # A server that bills 2 tokens beyond its own count: the difference is learned and later caps leave room.
    bills_more = ScriptedBackend(lambda body: Reply("word " * 100),
                                 prompt_tokens=lambda messages: sum(count_words(m["content"]) for m in messages) + 2)

    async def its_own_count(request: Any) -> int:
        return sum(count_words(m.content) for m in request.messages)

    bills_more.count_prompt_tokens = its_own_count  # type: ignore[method-assign]
    ledger = Ledger(Budget(sequential=100))
    await budgeted_chat(ledger, bills_more, "a b c d", role="student", round=1, max_tokens=10)
    assert ledger.exact_reserve == 2 and ledger.b_seq == 16
    [(record, _)] = await budgeted_chat(ledger, bills_more, "a b c d", role="refiner", round=2, final=True)
    assert ledger.b_seq == 100 and record.output_tokens == 100 - 16 - 6
    assert await backend.count_prompt_tokens(make_request("a b c")) == 3
    assert await ScriptedBackend(tokenize=False).count_prompt_tokens(make_request("a b c")) is None


async def test_a_backend_without_a_tokenizer_widens_estimates_by_the_spread_it_saw() -> None:
    ratios = iter([1.2, 1.8])
    backend = ScriptedBackend(lambda body: Reply("word " * 100), tokenize=False,
                              prompt_tokens=lambda m: math.ceil(next(ratios) * estimate_prompt_tokens(m)))
    ledger = Ledger(Budget(sequential=10_000))
    prompt = "x" * 400  # 101 + 4 estimated
    await budgeted_chat(ledger, backend, prompt, role="student", round=1, max_tokens=5)
    await budgeted_chat(ledger, backend, prompt, role="student", round=2, max_tokens=5)
    assert ledger.prompt_scale == pytest.approx(1.8, rel=0.01)
    assert ledger.prompt_tokens([{"content": prompt}]) == math.ceil(105 * ledger.prompt_scale * 1.5)


async def test_a_call_far_from_the_budget_is_not_counted_the_final_one_is() -> None:
    backend = ScriptedBackend(lambda body: Reply("word " * 50))
    counted: list[int] = []
    plain_count = backend.count_prompt_tokens

    async def counting(request: Any) -> int | None:
        counted.append(len(request.messages))
        return await plain_count(request)

    backend.count_prompt_tokens = counting  # type: ignore[method-assign]
    ledger = Ledger(Budget(sequential=4000))
    await budgeted_chat(ledger, backend, "a b c", role="student", round=1, max_tokens=100)
    assert counted == []  # 100 + at most 3 bytes' worth of prompt: far from 4,000, no tokenize request
    await budgeted_chat(ledger, backend, "a b c", role="student", round=2, max_tokens=3900)
    assert len(counted) == 1  # near the limit: counted
    await budgeted_chat(ledger, backend, "a b c", role="refiner", round=3, final=True)
    assert len(counted) == 2 and not ledger.over_budget  # the final call takes what is left: counted
