"""One ``BehaviorStore`` contract, two implementations: the same cases on the embedded ``QdrantBehaviorStore`` and
on ``HandbookClient`` talking to the service over real HTTP on 127.0.0.1 (after qdrant-client's congruence
tests). Anything typed ``BehaviorStore`` in agentkit may be given either."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from agentkit.errors import BehaviorNotFound
from agentkit.memory import Behavior, BehaviorStore, HandbookClient, MiniLMEmbedder, PrunePolicy, QdrantBehaviorStore
from agentkit.memory.retrieval import record_citations, retrieve_behaviors
from agentkit.messages import Problem

TOKEN = "conformance-token"


@pytest.fixture(params=["embedded", "service"])
async def handbook(request: pytest.FixtureRequest, tmp_path: Path, embedder: MiniLMEmbedder
                   ) -> AsyncIterator[BehaviorStore]:
    store = QdrantBehaviorStore(path=tmp_path / "store", embedder=embedder)
    if request.param == "embedded":
        await store.open()
        yield store
        await store.close()
        return
    from agentkit.faces.service import create_app

    runner = web.AppRunner(create_app(store, token=TOKEN), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    client = HandbookClient(f"http://127.0.0.1:{runner.addresses[0][1]}", token=TOKEN)
    yield client
    await client.close()
    await runner.cleanup()


async def test_both_satisfy_the_protocol(handbook: BehaviorStore) -> None:
    assert isinstance(handbook, BehaviorStore)


async def test_add_get_version_history_rollback(handbook: BehaviorStore) -> None:
    first = await handbook.add(Behavior(name="behavior_count_leftovers", instruction="Subtract every use.",
                                        topics=("Prealgebra",)))
    assert (first.name, first.version) == ("behavior_count_leftovers", 1)
    second = await handbook.update("behavior_count_leftovers", instruction="Subtract every use, one at a time.")
    assert second.version == 2 and (await handbook.get("behavior_count_leftovers")).version == 2
    assert [b.version for b in await handbook.history("behavior_count_leftovers")] == [1, 2]
    assert (await handbook.get("behavior_count_leftovers", 1)).instruction == "Subtract every use."
    rolled = await handbook.rollback("behavior_count_leftovers", 1)
    assert rolled.instruction == "Subtract every use." and rolled.version == 3
    with pytest.raises(BehaviorNotFound):
        await handbook.get("behavior_missing")


async def test_search_topics_usage_and_counts(handbook: BehaviorStore) -> None:
    await handbook.add(Behavior(name="behavior_unit_rate", instruction="Compute the amount per unit, then scale.",
                                topics=("Prealgebra",)))
    await handbook.add(Behavior(name="behavior_complete_square", instruction="Complete the square of a quadratic.",
                                topics=("Algebra",)))
    hits = await handbook.search("cost of one apple when five cost ten dollars", 1)
    assert [h.behavior.name for h in hits] == ["behavior_unit_rate"]
    assert [b.name for b in await handbook.by_topic("Algebra")] == ["behavior_complete_square"]
    problem = Problem(problem_id="p", text="Solve x^2 + 6x + 5 = 0 by completing the square.", topics=("Algebra",))
    chosen = await retrieve_behaviors(handbook, problem, k=2, retrieval="topic")
    assert [b.name for b in chosen] == ["behavior_complete_square"]
    await record_citations(handbook, ["behavior_complete_square"], correct=True)
    await handbook.record_usage_many([("behavior_unit_rate", "retrieved")] * 3)
    await handbook.flush_usage()
    stats = (await handbook.get("behavior_complete_square")).stats
    assert (stats.retrieved, stats.cited, stats.cited_correct, stats.cited_wrong) == (1, 1, 1, 0)
    assert (await handbook.get("behavior_unit_rate")).stats.retrieved == 3
    assert await handbook.count() == 2 and len(await handbook.list_behaviors()) == 2


async def test_prune_restore_compact_export_import(handbook: BehaviorStore, tmp_path: Path) -> None:
    for i in range(3):
        await handbook.add(Behavior(name=f"behavior_rule_{i}", instruction=f"Rule number {i} about {i * 7} things."),
                           dedup=False)
    await handbook.record_usage("behavior_rule_2", "cited_correct", 5)
    await handbook.flush_usage()
    planned = await handbook.prune(PrunePolicy(capacity=1), dry_run=True)
    assert {d.name for d in planned} == {"behavior_rule_0", "behavior_rule_1"} and await handbook.count() == 3
    await handbook.prune(PrunePolicy(capacity=1), dry_run=False)
    assert await handbook.count() == 1 and await handbook.count(status="pruned") == 2
    assert (await handbook.restore("behavior_rule_0")).status == "active"
    await handbook.deprecate("behavior_rule_0", "superseded")
    assert await handbook.count(status="deprecated") == 1
    exported = tmp_path / "export.jsonl"
    assert await handbook.export_jsonl(exported) >= 3
    assert await handbook.compact() >= 1
    report = await handbook.import_behavior_json('{"behavior_new_rule": "A brand new rule.", "bad name": "x"}')
    assert report.imported == ["behavior_new_rule"] and "bad name" in report.skipped
