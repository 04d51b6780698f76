"""LoRA fine-tuning on BC-SFT chat rows: two steps on a tiny randomly initialised Llama built from a config
(no download), with a character-level tokenizer built in code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentkit.errors import ConfigError
from agentkit.train import TrainConfig, fine_tune, read_chat_jsonl, tiny_llama


def write_rows(path: Path, n: int = 4) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"messages": [
                {"role": "system", "content": "Solve it."}, {"role": "user", "content": f"What is {i} + 2?"},
                {"role": "assistant", "content": f"Using behavior_add: {i} + 2 = {i + 2}. \\boxed{{{i + 2}}}"}]}) + "\n")
    return path


# trl 1.16 / peft 0.21 still call transformers 5's deprecated gradient-checkpointing names
@pytest.mark.filterwarnings("ignore:.*deprecated and will be removed in v6:FutureWarning")
def test_two_lora_steps_on_a_tiny_random_llama(tmp_path: Path) -> None:
    model, tokenizer = tiny_llama()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}  # type: ignore[attr-defined]
    report = fine_tune(write_rows(tmp_path / "bc.jsonl"), model=model, tokenizer=tokenizer,
                       output_dir=tmp_path / "out", config=TrainConfig(max_steps=2, max_length=128, lora_r=4))
    assert report.steps == 2 and len(report.losses) == 2 and all(loss > 0 for loss in report.losses)
    assert 0 < report.trainable_parameters < report.total_parameters and report.examples == 4
    assert (Path(report.adapter_dir) / "adapter_config.json").exists()
    # LoRA leaves the base weights as they were
    base = {n.replace("base_model.model.", "").replace(".base_layer", ""): p
            for n, p in model.named_parameters() if "lora_" not in n}  # type: ignore[attr-defined]
    assert all(bool((base[n] == p).all()) for n, p in before.items() if n in base)


def test_bad_training_files_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "no answer"}]}\n')
    with pytest.raises(ConfigError, match=r"bad\.jsonl:1"):
        read_chat_jsonl(bad)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ConfigError, match="no training rows"):
        read_chat_jsonl(tmp_path / "empty.jsonl")
    with pytest.raises(ConfigError, match="local model directory"):
        fine_tune(write_rows(tmp_path / "ok.jsonl"), model="some/hub-name", output_dir=tmp_path / "o")
