"""Fine-tune a student on chat JSON Lines with LoRA (BC-SFT, or the plain-SFT twin): ``pip install agentkit[train]``.

``fine_tune(data, model=...)`` reads the ``{"messages": [...]}`` rows that ``generate_bc_sft`` writes, wraps
the model in a LoRA adapter (peft) and trains it with TRL's ``SFTTrainer`` (loss over the whole conversation, TRL's default for
``messages`` rows; ``assistant_only_loss=True`` for the answer only, which needs a chat template that marks
the assistant turn with ``{% generation %}``), then saves the adapter and
returns the losses. ``model`` is a local model directory or a ``PreTrainedModel`` already in memory (tests
build a tiny random Llama from a config; no download is ever attempted: ``HF_HUB_OFFLINE`` is honoured and a
name that is not a directory is refused with a clear error).

The heavy imports (torch, transformers, peft, trl, datasets) happen inside ``fine_tune``, so importing
agentkit never needs them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentkit.errors import ConfigError

__all__ = ["TrainConfig", "TrainReport", "fine_tune", "read_chat_jsonl", "tiny_llama"]

_TINY_CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
                       "{% if add_generation_prompt %}<|assistant|>{% endif %}")


class TrainConfig(BaseModel):
    """LoRA and trainer settings (small CPU-friendly defaults)."""

    model_config = ConfigDict(extra="forbid")

    max_steps: int = Field(default=100, ge=1)
    learning_rate: float = Field(default=2e-4, gt=0)
    batch_size: int = Field(default=1, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    max_length: int = Field(default=1024, ge=16)
    lora_r: int = Field(default=8, ge=1)
    lora_alpha: int = Field(default=16, ge=1)
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"
    seed: int = 0
    logging_steps: int = Field(default=1, ge=1)
    assistant_only_loss: bool = False
    activation_checkpointing: bool = False
    """Recompute activations in the backward pass (less memory, more time); TRL turns it on by default."""


class TrainReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: int
    losses: list[float]
    """Training loss at each logged step."""
    trainable_parameters: int
    total_parameters: int
    adapter_dir: str
    examples: int
    wall_s: float


def read_chat_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a chat JSON Lines file, each checked to be ``{"messages": [{"role", "content"}, ...]}``
    ending with an assistant turn; a bad row is a ``ConfigError`` naming its line."""
    rows = []
    with Path(path).open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{i}: not JSON ({exc})") from None
            messages = row.get("messages") if isinstance(row, dict) else None
            if (not isinstance(messages, list) or not messages
                    or not all(isinstance(m, dict) and {"role", "content"} <= m.keys() for m in messages)
                    or messages[-1]["role"] != "assistant"):
                raise ConfigError(f"{path}:{i}: expected {{\"messages\": [..., {{\"role\": \"assistant\", ...}}]}}")
            rows.append({"messages": messages})
    if not rows:
        raise ConfigError(f"{path}: no training rows")
    return rows


def fine_tune(data: str | Path, *, model: Any, output_dir: str | Path, tokenizer: Any = None,
              config: TrainConfig | None = None) -> TrainReport:
    """Train a LoRA adapter on ``data`` (chat JSON Lines) and save it under ``output_dir``."""
    config = config or TrainConfig()
    rows = read_chat_jsonl(data)
    try:
        import datasets
        from peft import LoraConfig
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import SFTConfig, SFTTrainer
    except ImportError as exc:
        raise ConfigError(f"fine-tuning needs the train extra: pip install 'agentkit[train]' ({exc})") from None
    if isinstance(model, (str, Path)):
        if not Path(model).is_dir():
            raise ConfigError(f"model must be a local model directory or a loaded model, got {model!r}")
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(str(model))
        model = AutoModelForCausalLM.from_pretrained(str(model))
    if tokenizer is None:
        raise ConfigError("pass tokenizer= with a model object")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    out = Path(output_dir)
    args = SFTConfig(
        output_dir=str(out), max_steps=config.max_steps, learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps, max_length=config.max_length,
        logging_steps=config.logging_steps, assistant_only_loss=config.assistant_only_loss,
        activation_checkpointing=config.activation_checkpointing, save_strategy="no", report_to=[], seed=config.seed,
        use_cpu=not _has_accelerator(), dataloader_num_workers=0, disable_tqdm=True,
    )
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=config.target_modules, task_type="CAUSAL_LM")
    started = time.perf_counter()
    trainer = SFTTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                         processing_class=tokenizer, peft_config=lora)
    tuned: Any = trainer.model
    trainable = sum(int(p.numel()) for p in tuned.parameters() if p.requires_grad)
    total = sum(int(p.numel()) for p in tuned.parameters())
    result = trainer.train()
    adapter_dir = out / "adapter"
    tuned.save_pretrained(str(adapter_dir))
    losses = [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]
    return TrainReport(steps=int(result.global_step), losses=losses, trainable_parameters=trainable,
                       total_parameters=total, adapter_dir=str(adapter_dir), examples=len(rows),
                       wall_s=time.perf_counter() - started)


def tiny_llama(*, hidden_size: int = 32, layers: int = 2, seed: int = 0) -> tuple[Any, Any]:
    """A tiny randomly initialised Llama and a character-level tokenizer with a chat template, both built in
    code (no download): for tests and for trying the BC-SFT pipeline end to end on a CPU in seconds. It
    learns nothing useful; use a real checkpoint directory for real training."""
    import string

    import torch
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    vocab = {t: i for i, t in enumerate(specials + sorted(set(string.printable)))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"<\|[a-z]+\|>|</s>|."), behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>",  # type: ignore[no-untyped-call]
                                        pad_token="<pad>", unk_token="<unk>")
    tokenizer.chat_template = _TINY_CHAT_TEMPLATE
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=2048, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config), tokenizer


def _has_accelerator() -> bool:
    import torch

    return bool(torch.cuda.is_available())
