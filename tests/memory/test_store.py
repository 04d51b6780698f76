"""The behavior store on both real engines (Qdrant Edge and qdrant-client local mode) with the real
default embedder. Every test runs on both; ``test_engines_agree`` compares them directly."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import ENGINES, make_store

from agentkit.errors import BehaviorNotFound, ConfigError, EmbedderMismatch, StoreLocked
from agentkit.memory import Behavior, MiniLMEmbedder, Provenance, PrunePolicy, QdrantBehaviorStore, Status

HANDBOOK = {
    "behavior_inclusion_exclusion": "avoid double counting by subtracting the sizes of the intersections of the sets",
    "behavior_check_units": "convert every quantity to the same unit before adding or comparing them",
    "behavior_work_backwards": "start from the required final state and undo each step to find the starting value",
    "behavior_parity_argument": "look at whether quantities are even or odd to rule out impossible cases",
    "behavior_percent_of_percent": "apply successive percentage changes by multiplying the factors, not adding them",
    "behavior_pythagorean_check": "for right triangles verify a squared plus b squared equals c squared",
    "behavior_rate_time_distance": "write distance equals rate times time for each leg of a trip",
    "behavior_modular_cycles": "find the repeating cycle of remainders to compute large powers modulo n",
}
LABELLED = {
    "count the ways while avoiding double counting": "behavior_inclusion_exclusion",
    "a recipe mixes grams and kilograms": "behavior_check_units",
    "what is the last digit of 7 to the 2024th power": "behavior_modular_cycles",
    "a car drives 60 miles per hour for 3 hours then slows down": "behavior_rate_time_distance",
    "a price rises 20% and then falls 20%": "behavior_percent_of_percent",
    "she ended with 40 dollars after spending half then 10 more, how much did she start with": "behavior_work_backwards",
}


async def fill(store: QdrantBehaviorStore) -> None:
    for name, instruction in HANDBOOK.items():
        await store.add(Behavior(name=name, instruction=instruction, topics=("Algebra" if "percent" in name else "Misc",)))


async def test_retrieval_finds_the_semantically_right_behavior(store: QdrantBehaviorStore) -> None:
    await fill(store)
    assert await store.count() == len(HANDBOOK)
    for query, expected in LABELLED.items():
        hits = await store.search(query, k=3)
        assert hits[0].behavior.name == expected, (query, [(h.behavior.name, h.score) for h in hits])
        assert hits[0].score > hits[1].score
    only = await store.search("double counting", k=5, topics=["Algebra"])
    assert [h.behavior.name for h in only] == ["behavior_percent_of_percent"]
    assert await store.search("double counting", k=5, min_score=0.99) == []
    assert [b.name for b in await store.by_topic("Algebra")] == ["behavior_percent_of_percent"]


async def test_versions_history_rollback_and_deprecation(store: QdrantBehaviorStore) -> None:
    await fill(store)
    name = "behavior_check_units"
    v2 = await store.update(name, instruction="use one unit for all quantities", topics=("Units",))
    assert v2.version == 2 and (await store.get(name)).instruction == "use one unit for all quantities"
    assert (await store.get(name, version=1)).instruction == HANDBOOK[name]
    v3 = await store.rollback(name, 1)
    assert v3.version == 3 and v3.instruction == HANDBOOK[name] and v3.note == "rollback to version 1"
    assert [b.version for b in await store.history(name)] == [1, 2, 3]
    await store.deprecate(name, "superseded")
    hits = await store.search("grams and kilograms", k=8)
    assert name not in [h.behavior.name for h in hits]
    assert name in [h.behavior.name for h in await store.search("grams and kilograms", k=8, include_inactive=True)]
    assert (await store.restore(name)).status == Status.ACTIVE
    with pytest.raises(BehaviorNotFound):
        await store.get("behavior_missing")
    with pytest.raises(BehaviorNotFound):
        await store.get(name, version=99)


async def test_concurrent_updates_never_lose_a_version(store: QdrantBehaviorStore) -> None:
    await fill(store)
    name = "behavior_parity_argument"
    await asyncio.gather(*(store.update(name, note=f"edit {i}", topics=(f"t{i}",)) for i in range(12)))
    history = await store.history(name)
    assert [b.version for b in history] == list(range(1, 14))
    assert sorted(b.note for b in history[1:]) == sorted(f"edit {i}" for i in range(12))
    assert sum(1 for b in await store.list_behaviors() if b.name == name) == 1


async def test_usage_counts_are_exact_under_concurrent_writers(store: QdrantBehaviorStore) -> None:
    await fill(store)
    names = list(HANDBOOK)[:2]
    events = ["retrieved", "cited", "cited_correct", "cited_wrong"]

    async def writer(w: int) -> None:
        for i in range(1000):
            await store.record_usage(names[(w + i) % 2], events[i % 4])
            if i % 97 == 0:
                await asyncio.sleep(0)  # interleave with the other writers and their flushes

    await asyncio.gather(*(writer(w) for w in range(8)))
    stats = [(await store.get(n)).stats for n in names]
    assert sum(s.retrieved + s.cited + s.cited_correct + s.cited_wrong for s in stats) == 8000
    for s in stats:
        assert (s.retrieved, s.cited, s.cited_correct, s.cited_wrong) == (1000, 1000, 1000, 1000)
        assert s.last_used is not None
    # Counts move forward with new versions.
    await store.update(names[0], note="new version")
    assert (await store.get(names[0])).stats.cited == 1000
    with pytest.raises(ConfigError, match="unknown usage event"):
        await store.record_usage(names[0], "liked")


async def test_dedup_merges_near_duplicates_even_when_added_concurrently(store: QdrantBehaviorStore) -> None:
    await fill(store)
    variants = [Behavior(name=f"behavior_inclusion_exclusion_v{i}",
                         instruction="avoid double counting by subtracting the sizes of the intersections of the sets",
                         provenance=(Provenance(problem_id=f"p{i}", trace_correct=i % 2 == 0),)) for i in range(5)]
    results = await asyncio.gather(*(store.add(v) for v in variants))
    assert {r.name for r in results} == {"behavior_inclusion_exclusion"}
    merged = await store.get("behavior_inclusion_exclusion")
    assert merged.version == 6 and {p.problem_id for p in merged.provenance} == {f"p{i}" for i in range(5)}
    assert await store.count() == len(HANDBOOK)
    distinct = await store.add(Behavior(name="behavior_draw_a_diagram", instruction="sketch the geometry before computing"),
                               dedup=True)
    assert distinct.version == 1 and await store.count() == len(HANDBOOK) + 1


async def test_prune_dry_run_equals_applied_and_is_undoable(store: QdrantBehaviorStore) -> None:
    await fill(store)
    for _ in range(6):
        await store.record_usage("behavior_parity_argument", "retrieved")
    for event, n in (("cited", 5), ("cited_wrong", 4), ("cited_correct", 1)):
        await store.record_usage("behavior_check_units", event, n)
    for event, n in (("cited", 5), ("cited_correct", 5)):
        await store.record_usage("behavior_work_backwards", event, n)
    policy = PrunePolicy(unused_after_retrievals=5, harmful_min_count=3, capacity=4)
    planned = await store.prune(policy, dry_run=True)
    assert await store.count() == len(HANDBOOK)  # a dry run changes nothing
    applied = await store.prune(policy, dry_run=False)
    assert applied == planned
    reasons = {d.name: d.reason for d in applied}
    assert reasons["behavior_parity_argument"].startswith("unused")
    assert reasons["behavior_check_units"].startswith("harmful")
    assert "behavior_work_backwards" not in reasons  # the most useful survives the capacity cut
    assert await store.count() == 4 and await store.count(status="pruned") == len(applied)
    assert (await store.get("behavior_check_units")).note.startswith("pruned: harmful")
    await store.restore("behavior_check_units")
    assert await store.count() == 5
    assert await store.compact() == len(applied) - 1
    with pytest.raises(BehaviorNotFound):
        await store.history("behavior_parity_argument")
    assert len(await store.history("behavior_check_units")) == 3  # pruned then restored: kept


async def test_age_and_staleness_policies(store: QdrantBehaviorStore) -> None:
    await fill(store)
    await store.record_usage("behavior_check_units", "cited")
    later = datetime.now(UTC) + timedelta(days=40)
    unused = {d.name for d in await store.prune(PrunePolicy(unused_after_days=30), now=later)}
    assert unused == set(HANDBOOK) - {"behavior_check_units"}
    stale = {d.name for d in await store.prune(PrunePolicy(stale_after_days=30), now=later)}
    assert stale == set(HANDBOOK)


async def test_capacity_is_enforced_on_add(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    async with make_store("edge", tmp_path, embedder, max_active=3) as store:
        await fill(store)
        assert await store.count() == 3 and await store.count(status="pruned") == len(HANDBOOK) - 3


async def test_export_import_round_trip_is_exact(store: QdrantBehaviorStore, tmp_path: Path,
                                                 embedder: MiniLMEmbedder) -> None:
    await fill(store)
    await store.update("behavior_check_units", instruction="one unit for everything")
    await store.record_usage("behavior_check_units", "cited_correct", 3)
    await store.prune(PrunePolicy(capacity=6), dry_run=False)
    first = tmp_path / "a.jsonl"
    lines = await store.export_jsonl(first)
    assert lines == len(HANDBOOK) + 1 + 2  # one update, two pruned versions
    async with QdrantBehaviorStore(location=":memory:", embedder=embedder) as other:
        report = await other.import_jsonl(first)
        assert sorted(report.imported) == sorted(HANDBOOK) and not report.skipped
        second = tmp_path / "b.jsonl"
        await other.export_jsonl(second)
        assert first.read_text() == second.read_text()
        assert (await other.get("behavior_check_units")).stats.cited_correct == 3
        again = await other.import_jsonl(first)
        assert again.imported == [] and set(again.skipped) == set(HANDBOOK)


async def test_import_of_the_papers_plain_json(store: QdrantBehaviorStore) -> None:
    data = json.dumps({"behavior_total_outcomes": "multiply the choices at each independent step",
                       "not a name": "x", "behavior_empty": "", "behavior_sum_of_angles": "a triangle's angles sum to 180"})
    report = await store.import_behavior_json(data, topics=("Counting",), provenance=Provenance(problem_id="p7"))
    assert sorted(report.imported) == ["behavior_sum_of_angles", "behavior_total_outcomes"]
    assert set(report.skipped) == {"not a name", "behavior_empty"} and "name" in report.skipped["not a name"]
    stored = await store.get("behavior_total_outcomes")
    assert stored.topics == ("Counting",) and stored.provenance[0].problem_id == "p7"
    with pytest.raises(ConfigError):
        await store.import_behavior_json("[1, 2]")


async def test_bad_input_leaves_the_store_unchanged(store: QdrantBehaviorStore, tmp_path: Path) -> None:
    await fill(store)
    path = tmp_path / "before.jsonl"
    await store.export_jsonl(path)
    with pytest.raises(ConfigError, match="instruction"):
        await store.update("behavior_check_units", instruction="x" * 5000)
    with pytest.raises(ConfigError, match="can change"):
        await store.update("behavior_check_units", version=7)
    with pytest.raises(BehaviorNotFound):
        await store.update("behavior_nope", note="x")
    with pytest.raises(ConfigError):
        await store.add({"name": "behavior_x", "instruction": "y"})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="non-empty query"):
        await store.search("  ")
    after = tmp_path / "after.jsonl"
    await store.export_jsonl(after)
    assert path.read_text() == after.read_text()


class OtherEmbedder:
    name = "other-model"
    dim = 8

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return [[1.0] + [0.0] * 7 for _ in texts]


@pytest.mark.parametrize("engine", ENGINES)
async def test_persistence_and_embedder_mismatch(engine: str, tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    async with make_store(engine, tmp_path, embedder) as store:
        await fill(store)
        await store.update("behavior_check_units", note="v2")
        await store.record_usage("behavior_check_units", "cited", 7)  # buffered, written on close
    async with make_store(engine, tmp_path, embedder) as reopened:
        assert await reopened.count() == len(HANDBOOK)
        kept = await reopened.get("behavior_check_units")
        assert kept.version == 2 and kept.stats.cited == 7
        assert (await reopened.search("grams and kilograms", k=1))[0].behavior.name == "behavior_check_units"
    wrong = make_store(engine, tmp_path, embedder)
    wrong.embedder = OtherEmbedder()  # type: ignore[assignment]
    with pytest.raises(EmbedderMismatch, match="all-MiniLM-L6-v2"):
        await wrong.open()
    async with make_store(engine, tmp_path, embedder) as unchanged:
        assert await unchanged.count() == len(HANDBOOK)


def test_a_second_process_gets_a_clear_error(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    async def hold_and_probe() -> str:
        async with make_store("edge", tmp_path, embedder) as store:
            await store.add(Behavior(name="behavior_a", instruction="b"))
            code = ("import asyncio, sys\nfrom agentkit.memory import QdrantBehaviorStore\n"
                    "from agentkit.errors import StoreLocked\n"
                    f"s = QdrantBehaviorStore(path={str(tmp_path / 'edge')!r})\n"
                    "try:\n    asyncio.run(s.open())\nexcept StoreLocked as e:\n    print('LOCKED', e)\n")
            out = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", code], capture_output=True, text=True,
                                          timeout=120)
            return out.stdout + out.stderr

    output = asyncio.run(hold_and_probe())
    assert output.startswith("LOCKED") and "another process" in output and "server URL" in output
    assert StoreLocked.__doc__


async def test_engines_agree(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    results = []
    for engine in ENGINES:
        async with make_store(engine, tmp_path, embedder) as store:
            await fill(store)
            await store.update("behavior_check_units", instruction="one unit for everything")
            await store.record_usage("behavior_check_units", "cited", 2)
            searches = [[(h.behavior.name, round(h.score, 4)) for h in await store.search(q, k=4)] for q in LABELLED]
            history = [(b.version, b.instruction, b.stats.cited) for b in await store.history("behavior_check_units")]
            pruned = await store.prune(PrunePolicy(capacity=5))
            results.append((searches, history, pruned))
    assert results[0] == results[1]
