"""Shared fixtures. The real embedded model is served once per session (``local_server``); tests talk to it
over real HTTP on 127.0.0.1. Each test gets its own event loop, so clients are created inside tests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agentkit.backends import model_path
from agentkit.backends.local import LocalServer
from agentkit.memory import MiniLMEmbedder, QdrantBehaviorStore

MODEL = "qwen2.5-0.5b"


@pytest.fixture(scope="session")
def model_file() -> Path:
    return model_path(MODEL)


@pytest.fixture(scope="session")
def local_server(model_file: Path) -> Iterator[LocalServer]:
    with LocalServer(model_file, model=MODEL, slots=4, ctx_per_slot=1024) as server:
        yield server


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    """The real default embedder, loaded once per session (memory, service, MCP and face tests)."""
    return MiniLMEmbedder()


@pytest.fixture
async def handbook(tmp_path: Path, embedder: MiniLMEmbedder) -> AsyncIterator[QdrantBehaviorStore]:
    """An embedded handbook in ``tmp_path / "hb"`` (the default engine), opened and closed around the test."""
    store = QdrantBehaviorStore(path=tmp_path / "hb", embedder=embedder)
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def in_ci() -> bool:
    return bool(os.environ.get("CI"))
