from __future__ import annotations

import pytest

from agentkit.calls import budgeted_chat
from agentkit.errors import BudgetExceeded, ConfigError
from agentkit.ledger import Budget, Ledger
from agentkit.testing import Reply, ScriptedBackend


def pdr_shaped_ledger() -> Ledger:
    """2 rounds x 4 drafts, a distill call after each, and a single final draft (round 3)."""
    ledger = Ledger()
    for branch, (i, o) in enumerate([(100, 200), (100, 250), (100, 300), (100, 150)]):
        ledger.record(role="student", round=1, branch=branch, input_tokens=i, output_tokens=o, accepted=False)
    ledger.record(role="distiller", round=1, input_tokens=900, output_tokens=100)
    for branch, (i, o) in enumerate([(300, 200), (300, 100), (300, 400), (300, 250)]):
        ledger.record(role="refiner", round=2, branch=branch, input_tokens=i, output_tokens=o, accepted=branch == 2)
    ledger.record(role="distiller", round=2, input_tokens=1100, output_tokens=120)
    final = ledger.record(role="refiner", round=3, input_tokens=350, output_tokens=300)
    ledger.mark_final(final.call_id)
    return ledger


def test_budgets_of_a_pdr_shaped_call_graph_by_hand() -> None:
    ledger = pdr_shaped_ledger()
    # B_seq: largest branch per stage: 400 + 1000 + 700 + 1220 + 650
    assert ledger.b_seq == 3970
    # B_total: (300+350+400+250) + 1000 + (500+400+700+550) + 1220 + 650
    assert ledger.b_total == 6320
    # accepted path: distill 1 (1000) + accepted refine draft (700) + distill 2 (1220) + final (650)
    assert ledger.accepted_path_tokens == 3570
    assert ledger.answer_output_tokens == 300
    assert ledger.calls == 11
    assert ledger.summary()["B_seq"] == 3970 and ledger.summary()["B_total"] == 6320
    assert ledger.input_tokens + ledger.output_tokens == ledger.b_total


def test_sequential_calls_in_one_branch_add_up() -> None:
    ledger = Ledger()
    ledger.record(role="a", stage="s", branch=0, input_tokens=10, output_tokens=10)
    ledger.record(role="a", stage="s", branch=0, input_tokens=10, output_tokens=10)
    ledger.record(role="a", stage="s", branch=1, input_tokens=30, output_tokens=0)
    assert ledger.b_seq == 40 and ledger.b_total == 70


def test_cap_uses_what_the_budgets_leave() -> None:
    ledger = Ledger(Budget(sequential=1000, total=1500))
    assert ledger.cap(2000, prompt_tokens=100, stage="1:student", branch=0) == 900
    ledger.record(role="student", round=1, branch=0, input_tokens=100, output_tokens=500)
    # A parallel branch of the same stage still has the whole sequential budget (1000 - 100 prompt), but
    # the total budget has only 1500 - 600 = 900 left, so the total binds: 900 - 100.
    assert ledger.cap(2000, prompt_tokens=100, stage="1:student", branch=1) == 800
    # n choices share the total: 900 // 2 - 100.
    assert ledger.cap(2000, prompt_tokens=100, stage="1:student", branch=1, n=2) == 350
    assert Ledger(Budget(sequential=1000)).cap(2000, prompt_tokens=100, stage="s", branch=1) == 900
    # The same branch, or a later stage, has what is left of the critical path.
    assert ledger.cap(2000, prompt_tokens=100, stage="1:student", branch=0) == 300
    assert ledger.cap(2000, prompt_tokens=100, stage="1:distiller") == 300
    assert ledger.cap(50, prompt_tokens=100, stage="1:distiller") == 50
    with pytest.raises(BudgetExceeded, match="no token budget left"):
        ledger.cap(2000, prompt_tokens=400, stage="2:refiner")
    assert Ledger().cap(None, prompt_tokens=10) is None


def test_bad_records_are_rejected() -> None:
    with pytest.raises(ConfigError):
        Ledger().record(role="x", input_tokens=-1, output_tokens=0)
    with pytest.raises(ConfigError):
        Ledger().mark_accepted(42)


async def test_chat_records_exact_usage_caps_max_tokens_and_passes_context() -> None:
    # A backend that cannot count prompts (tokenize=False): caps come from the ledger's estimates.
    backend = ScriptedBackend(lambda body: Reply("one two three four five six seven eight nine ten"), tokenize=False)
    ledger = Ledger(Budget(sequential=30), run_id="run-7",
                    count_tokens=lambda text: len(text.split()))  # the scripted server's tokenizer
    pairs = await budgeted_chat(ledger, backend, "a b c d e f", role="student", round=1, branch=2, sample=1,
                              max_tokens=100, n=2, temperature=0.5, seed=1)
    # Prompt estimate: 6 words + 4 per message = 10, so each branch may write at most 20 tokens.
    body = backend.requests[0]
    assert body["max_tokens"] == 20 and body["n"] == 2
    assert body["context"] == {"run_id": "run-7", "role": "student", "round": 1, "branch": 2, "sample": 1}
    assert [r.branch for r, _ in pairs] == [2, 3]
    assert [(r.input_tokens, r.output_tokens) for r, _ in pairs] == [(6, 10), (6, 10)]
    assert ledger.b_total == 32 and ledger.b_seq == 16
    # The next sequential stage has 30 - 16 = 14 left: prompt 10 -> max_tokens 4, reply truncated.
    [(record, completion)] = await budgeted_chat(ledger, backend, "a b c d e f", role="distiller", round=1, final=True)
    assert backend.requests[-1]["max_tokens"] == 4
    assert completion.finish_reason == "length" and record.output_tokens == 4 and record.final
    assert ledger.b_seq == 26 and ledger.answer_output_tokens == 4


async def test_prompt_estimates_are_calibrated_on_reported_usage() -> None:
    from agentkit.testing import count_words

    # The pre-call counter sees a quarter of the words: the first call's cap is too generous, later ones are not.
    backend = ScriptedBackend(lambda body: Reply("word " * 500), tokenize=False)
    ledger = Ledger(Budget(sequential=400), count_tokens=lambda text: count_words(text) // 4)
    prompt = "a " * 80
    await budgeted_chat(ledger, backend, prompt, role="student", round=1, max_tokens=100)
    assert ledger.prompt_scale > 3  # 80 reported prompt tokens for an estimate of 24
    [(record, _)] = await budgeted_chat(ledger, backend, prompt, role="refiner", round=2, max_tokens=1000)
    assert ledger.b_seq <= 400 and record.output_tokens == backend.requests[1]["max_tokens"] > 0
