from __future__ import annotations

from pathlib import Path

import pytest

from agentkit.errors import ConfigError
from agentkit.evaluation.datasets import DATASETS, load_dataset, stratified_sample
from agentkit.messages import Problem
from agentkit.sweep import load_spec


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


def test_offset_holds_out_a_slice_that_never_meets_the_first_problems(tmp_path: Path) -> None:
    held_out = load_dataset("gsm8k", offset=100, limit=3)
    assert [p.problem_id for p in held_out] == ["gsm8k-test-100", "gsm8k-test-101", "gsm8k-test-102"]
    assert not {p.problem_id for p in load_dataset("gsm8k", offset=100, limit=50, seed=0)} & \
        {p.problem_id for p in load_dataset("gsm8k", limit=100)}
    assert load_dataset("gsm8k", offset=10**9) == []
    with pytest.raises(ConfigError, match="offset must be >= 0"):
        load_dataset("gsm8k", offset=-1)
    spec = tmp_path / "s.toml"
    spec.write_text('name = "s"\nbudgets = [512]\n[[datasets]]\nname = "gsm8k"\nlimit = 2\noffset = 100\n[[methods]]\nname = "long-cot"\n'
                    '[[backends]]\nspec = "local"\n')
    assert [p.problem_id for p in load_spec(spec).datasets[0].load()] == ["gsm8k-test-100", "gsm8k-test-101"]
    spec.write_text(spec.read_text().replace("offset = 100", "offset = -5"))
    with pytest.raises(ConfigError):
        load_spec(spec)


def test_stratified_sampling_covers_every_subject_in_proportion() -> None:
    pool = load_dataset("math-curation")
    share: dict[str, int] = {}
    for p in pool:
        share[p.topics[0]] = share.get(p.topics[0], 0) + 1
    assert len(share) == 7
    assert {p.topics[0] for p in load_dataset("math-curation", limit=1000)} == {"Algebra"}  # why it exists
    for seed in (None, 0, 1):
        sample = load_dataset("math-curation", limit=1000, seed=seed, stratify="subject")
        got: dict[str, int] = {}
        for p in sample:
            got[p.topics[0]] = got.get(p.topics[0], 0) + 1
        assert len(sample) == 1000 and len({p.problem_id for p in sample}) == 1000
        for subject, n in share.items():
            assert abs(got[subject] - 1000 * n / len(pool)) <= 1, (subject, got[subject])
        index = {p.problem_id: i for i, p in enumerate(pool)}
        assert [index[p.problem_id] for p in sample] == sorted(index[p.problem_id] for p in sample)  # file order
    again = load_dataset("math-curation", limit=21, seed=0, stratify="subject")
    assert [p.problem_id for p in again] == [p.problem_id for p in load_dataset(
        "math-curation", limit=21, seed=0, stratify="subject")]  # seeded: reproducible
    assert [p.problem_id for p in load_dataset("math-curation", limit=21, seed=1, stratify="subject")] != \
        [p.problem_id for p in again]
    # unseeded: each subject's first rows
    first = load_dataset("math-curation", limit=14, stratify="subject")
    for p in first:
        same = [q.problem_id for q in pool if q.topics == p.topics]
        assert p.problem_id in same[:len([f for f in first if f.topics == p.topics])]
    # every subject gets one while N allows, even a tiny one
    tiny = [Problem(problem_id=f"a{i}", text="x", topics=("A",)) for i in range(98)] + \
        [Problem(problem_id="b0", text="x", topics=("B",)), Problem(problem_id="c0", text="x")]
    picked = stratified_sample(tiny, 3, seed=0)
    assert sorted(p.problem_id[0] for p in picked) == ["a", "b", "c"]
    assert len(stratified_sample(tiny, 500)) == 100 and stratified_sample(tiny, 0) == []
    with pytest.raises(ConfigError, match="stratify must be one of subject"):
        load_dataset("math500", limit=3, stratify="level")


def test_user_files_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text('{"q": "1+1?", "a": "2"}\n\n{"q": "2+2?", "a": "4"}\n')
    problems = load_dataset(str(path), problem_field="q", answer_field="a")
    assert [(p.problem_id, p.reference) for p in problems] == [("mine-0", "2"), ("mine-2", "4")]
    with pytest.raises(ConfigError, match=r"mine\.jsonl:1"):
        load_dataset(str(path))
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_dataset("nope")
