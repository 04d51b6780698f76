"""Memory fixtures: stores on both real engines (the embedder is the session's, ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentkit.memory import MiniLMEmbedder, QdrantBehaviorStore

ENGINES = ["edge", "local"]


def make_store(engine: str, tmp_path: Path, embedder: MiniLMEmbedder, **kwargs: object) -> QdrantBehaviorStore:
    if engine == "edge":
        return QdrantBehaviorStore(path=tmp_path / "edge", embedder=embedder, **kwargs)  # type: ignore[arg-type]
    return QdrantBehaviorStore(local_path=tmp_path / "local", embedder=embedder, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path, embedder: MiniLMEmbedder
                ) -> AsyncIterator[QdrantBehaviorStore]:
    s = make_store(request.param, tmp_path, embedder)
    await s.open()
    yield s
    await s.close()
