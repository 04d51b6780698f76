"""Reasoning models: the reasoning comes apart from the answer in both shapes servers use (a
``reasoning_content`` field, or inline ``<think>`` blocks), answers come from the final text, ledgers count the
reasoning tokens, and PDR workspaces see the final text unless asked for more."""

from __future__ import annotations

from typing import Any

import pytest

from agentkit.backends import OpenAICompatible
from agentkit.backends.base import split_reasoning
from agentkit.ledger import Ledger
from agentkit.messages import Problem
from agentkit.methods import METHODS
from agentkit.methods.pdr import PDRConfig, pdr
from agentkit.testing import Reply, ScriptedServer, count_words

PROBLEM = Problem(problem_id="p1", text="Janet has 16 eggs, eats 3 and bakes with 4. How many are left?",
                  reference="9")
THOUGHT = "hmm maybe \\boxed{7} if she ate four, no: 16 - 3 - 4 is nine"
FINAL = "16 - 3 - 4 = 9, so \\boxed{9}"


def test_split_reasoning_of_inline_think_blocks() -> None:
    assert split_reasoning("<think>a b</think> c") == ("a b", "c")
    assert split_reasoning("<think>cut off before the end") == ("cut off before the end", "")
    assert split_reasoning("no reasoning here") == ("", "no reasoning here")
    assert split_reasoning("a</think>b") == ("a", "b")  # templates that open the block in the prompt


@pytest.mark.parametrize("shape", ["field", "inline"])
async def test_both_shapes_separate_reasoning_and_count_its_tokens(shape: str) -> None:
    async with ScriptedServer(lambda body: Reply(FINAL, reasoning=THOUGHT), reasoning=shape) as server:
        backend = OpenAICompatible("scripted", base_url=server.base_url)
        try:
            [completion] = await backend.chat("How many?")
            result = await METHODS["long-cot"].solve(PROBLEM, backend)
            [cut] = await backend.chat("How many?", max_tokens=4)  # stops inside the reasoning
        finally:
            await backend.aclose()
    assert completion.text == FINAL and completion.reasoning == THOUGHT
    assert completion.reasoning_tokens == count_words(THOUGHT)
    assert completion.output_tokens == count_words(THOUGHT) + count_words(FINAL)
    assert result.answer == "9"  # the final text's, not the reasoning's \boxed{7}
    assert result.ledger.summary()["reasoning_tokens"] == count_words(THOUGHT)
    assert (cut.text, cut.finish_reason, cut.reasoning_tokens) == ("", "length", 4)


@pytest.mark.parametrize("with_reasoning", [False, True])
async def test_pdr_workspaces_see_the_final_text_unless_asked(with_reasoning: bool) -> None:
    def script(body: dict[str, Any]) -> Reply:
        return Reply(FINAL, reasoning=THOUGHT)

    async with ScriptedServer(script) as server:
        backend = OpenAICompatible("scripted", base_url=server.base_url)
        try:
            config = PDRConfig(rounds=2, drafts=2, kappa=400, variant="topk", k=2, workspace_reasoning=with_reasoning)
            ledger = Ledger()
            result = await pdr(PROBLEM, backend, config, ledger=ledger)
        finally:
            await backend.aclose()
    [workspace] = result.workspaces
    assert FINAL in workspace.text and ("maybe" in workspace.text) is with_reasoning
    assert all(d.reasoning == THOUGHT for d in result.drafts) and result.answer == "9"
    assert ledger.summary()["reasoning_tokens"] == 3 * count_words(THOUGHT)
