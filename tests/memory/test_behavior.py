from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from agentkit.errors import ConfigError
from agentkit.memory import Behavior, BehaviorStats, BGEM3Embedder, render_behaviors


@pytest.mark.parametrize("name", ["inclusion_exclusion", "behavior_", "behavior_Caps", "behavior_a-b", "behavior_" + "x" * 100, ""])
def test_invalid_names_are_rejected(name: str) -> None:
    with pytest.raises(ValidationError, match="name"):
        Behavior(name=name, instruction="do it")


@pytest.mark.parametrize("instruction", ["", "   ", "x" * 2001])
def test_invalid_instructions_are_rejected(instruction: str) -> None:
    with pytest.raises(ValidationError, match="instruction"):
        Behavior(name="behavior_ok", instruction=instruction)


def test_topics_are_cleaned_and_bounded() -> None:
    assert Behavior(name="behavior_ok", instruction="x", topics=("A", " A ", "", "B")).topics == ("A", "B")
    with pytest.raises(ValidationError):
        Behavior(name="behavior_ok", instruction="x", topics=tuple(f"t{i}" for i in range(40)))


def test_utility_and_merge_of_stats() -> None:
    assert BehaviorStats().utility == 0.5
    good = BehaviorStats(cited=10, cited_correct=9, cited_wrong=1)
    bad = BehaviorStats(cited=10, cited_correct=1, cited_wrong=9)
    assert good.utility > BehaviorStats().utility > bad.utility
    assert good.plus(bad) == BehaviorStats(cited=20, cited_correct=10, cited_wrong=10)


def test_render_behaviors() -> None:
    b = Behavior(name="behavior_check_units", instruction="Convert to one unit first.")
    block = render_behaviors([b])
    assert "refer to it by its name" in block and "- behavior_check_units: Convert to one unit first." in block
    assert render_behaviors([]) == ""
    assert b.text == "check units: Convert to one unit first."


def test_bge_m3_refuses_an_incomplete_model_directory(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "colbert_linear.pt").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"missing sparse_linear\.pt.*random weights"):
        BGEM3Embedder(tmp_path)


async def test_default_embedder_gives_unit_vectors_off_the_loop() -> None:
    import math

    from agentkit.memory import MiniLMEmbedder

    embedder = MiniLMEmbedder()
    vectors = await embedder.embed(["avoid double counting", "bake a cake"])
    assert [len(v) for v in vectors] == [384, 384]
    assert all(abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-4 for v in vectors)
    assert await embedder.embed([]) == []
