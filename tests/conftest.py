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


CLIENTS = Path(__file__).parent / "clients"


@pytest.fixture(scope="session")
def node_clients() -> Path:
    """The pinned JavaScript clients of ``tests/clients/package.json`` (openai-node, the MCP TypeScript SDK),
    installed once by ``npm ci`` from its lockfile into ``build/node-clients`` (kept between runs), with the
    client scripts ``tests/clients/*.mjs`` copied next to them. Skips, saying
    why, where Node or npm is missing or the registry cannot be reached."""
    import shutil
    import subprocess

    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the foreign-client tests")
    target = Path(__file__).parents[1] / "build" / "node-clients"
    lock = (CLIENTS / "package-lock.json").read_bytes()
    stamp = target / ".installed-lock"
    if not (stamp.exists() and stamp.read_bytes() == lock):
        target.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(CLIENTS / name, target / name)
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=target, capture_output=True,
                              text=True, timeout=600, check=False)
        if done.returncode != 0:
            pytest.skip(f"npm ci failed (no registry?): {done.stderr.strip()[-300:]}")
        stamp.write_bytes(lock)
    for script in CLIENTS.glob("*.mjs"):  # ES modules resolve packages from their own folder
        shutil.copy(script, target / script.name)
    return target
