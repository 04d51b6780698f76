from __future__ import annotations

from pathlib import Path

import pytest

from agentkit.errors import ConfigError
from agentkit.evaluation.datasets import DATASETS, load_dataset


def test_every_builtin_dataset_loads() -> None:
    sizes = {name: len(load_dataset(name)) for name in DATASETS}
    assert sizes == {"gsm8k": 1319, "gsm8k-train": 7473, "math500": 500, "math-curation": 4500, "aime24": 30,
                     "aime25": 30, "amc23": 40}


def test_limit_sampling_and_topics() -> None:
    first = load_dataset("gsm8k", limit=3)
    assert [p.problem_id for p in first] == ["gsm8k-test-0", "gsm8k-test-1", "gsm8k-test-2"]
    assert first[0].reference == "18" and first[0].dataset == "gsm8k"
    a, b = load_dataset("math500", limit=5, seed=1), load_dataset("math500", limit=5, seed=1)
    assert [p.problem_id for p in a] == [p.problem_id for p in b]
    assert all(p.topics for p in a)


def test_user_files_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text('{"q": "1+1?", "a": "2"}\n\n{"q": "2+2?", "a": "4"}\n')
    problems = load_dataset(str(path), problem_field="q", answer_field="a")
    assert [(p.problem_id, p.reference) for p in problems] == [("mine-0", "2"), ("mine-2", "4")]
    with pytest.raises(ConfigError, match=r"mine\.jsonl:1"):
        load_dataset(str(path))
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_dataset("nope")
