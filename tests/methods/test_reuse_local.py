"""Metacognitive reuse end to end on the real local model (Qwen2.5-Coder-0.5B via xllamacpp) with tiny N:
curation into a real embedded handbook, then BCI with retrieved behaviors. Asserts structure and accounting,
not the model's wording (a 0.5B Strategist writes weak, but well-formed, behaviors)."""

from __future__ import annotations

from pathlib import Path

from agentkit.backends import OpenAICompatible
from agentkit.backends.local import LocalServer
from agentkit.ledger import Ledger
from agentkit.memory import Behavior, MiniLMEmbedder, QdrantBehaviorStore
from agentkit.messages import Problem
from agentkit.methods import bci
from agentkit.pipelines import build_handbook

TRAIN = Problem(problem_id="train-1", dataset="gsm8k-train", reference="72",
                text="Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
                     "How many clips did Natalia sell altogether in April and May?")
TEST = Problem(problem_id="test-1", dataset="gsm8k", reference="3", topics=("Arithmetic",),
               text="A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total "
                    "does it take?")


async def test_curate_then_bci_on_the_local_model(local_server: LocalServer, tmp_path: Path,
                                                  embedder: MiniLMEmbedder) -> None:
    backend = OpenAICompatible(local_server.model, base_url=local_server.base_url, supports_n=False, timeout=600)
    store = QdrantBehaviorStore(path=tmp_path / "hb", embedder=embedder)
    await store.open()
    try:
        report = await build_handbook([TRAIN], backend, store, max_tokens=256, max_behaviors=3)
        assert report.problems == 1 and not report.failed and report.usage.calls == 3
        stored = await store.list_behaviors()
        assert len(stored) == report.stored and report.stored + report.dropped >= 1  # parsed into one or the other
        for behavior in stored:
            assert behavior.topics == ("gsm8k-train",)
            [source] = behavior.provenance
            assert source.problem_id == "train-1" and source.model == local_server.model
            assert source.trace_correct is not None
        # BCI with K behaviors in the prompt (two of our own besides whatever curation stored)
        for name, text in (("behavior_half_of_amount", "Half of an amount x is x / 2; add it to x for the total."),
                           ("behavior_sum_the_parts", "Add up every part to get the total amount needed.")):
            await store.add(Behavior(name=name, instruction=text, topics=("Arithmetic",)), dedup=False)
        ledger = Ledger(run_id="bci-e2e")
        solution = await bci(TEST, backend, handbook=store, k=2, ledger=ledger, max_tokens=256, seed=0)
        assert len(solution.behaviors) == 2 and solution.behavior_tokens > 0
        assert set(solution.cited) <= set(solution.behaviors)
        calls = ledger.records
        assert len(calls) == 1 and solution.b_total == sum(r.input_tokens + r.output_tokens for r in calls)
        assert solution.usage.input_tokens == calls[0].input_tokens > 0
        for name in solution.behaviors:
            stats = (await store.get(name)).stats
            assert stats.retrieved == 1 and stats.cited == (1 if name in solution.cited else 0)
            if name in solution.cited:
                assert stats.cited_correct + stats.cited_wrong == 1
    finally:
        await store.close()
        await backend.aclose()
