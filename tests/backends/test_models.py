"""Model assembly: pinned parts, size and sha256 checked, atomic, instant when present, clear errors."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from agentkit.backends import _models
from agentkit.backends._models import PACKAGED_MODELS, PackagedModel, model_path
from agentkit.errors import ModelNotAvailable


def fake_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunks: list[bytes], *, sha: str | None = None,
               prefix: str = "agentkit_fake_part") -> PackagedModel:
    """Install importable fake part packages and register a model made of them."""
    root = tmp_path / "site"
    for i, chunk in enumerate(chunks, 1):
        pkg = root / f"{prefix}{i}"
        pkg.mkdir(parents=True)
        (pkg / "part.bin").write_bytes(chunk)
        (pkg / "__init__.py").write_text(
            "from pathlib import Path\ndef get_part_path():\n    return str(Path(__file__).with_name('part.bin'))\n")
    monkeypatch.syspath_prepend(str(root))
    for name in [m for m in sys.modules if m.startswith(prefix)]:
        monkeypatch.delitem(sys.modules, name)
    data = b"".join(chunks)
    model = PackagedModel(name="fake", description="fake", module_prefix=prefix, dist_prefix="fake-part-",
                          parts=len(chunks), version="1.0", size=len(data),
                          sha256=sha or hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(PACKAGED_MODELS, "fake", model)
    return model


def test_assembles_in_order_verifies_and_is_instant_afterwards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_model(tmp_path, monkeypatch, [b"GGUF-first-", b"second-", b"third"])
    path = model_path("fake", directory=tmp_path / "cache")
    assert path.read_bytes() == b"GGUF-first-second-third"
    assert Path(f"{path}.sha256").is_file()
    assert not list((tmp_path / "cache").glob("*.tmp"))  # the temporary file was renamed, not left
    # A second call does not rewrite the file.
    mtime = path.stat().st_mtime_ns
    assert model_path("fake", directory=tmp_path / "cache") == path and path.stat().st_mtime_ns == mtime
    # verify=True re-hashes; a file damaged in place is reassembled.
    path.write_bytes(b"GGUF-first-secXnd-third")
    assert model_path("fake", directory=tmp_path / "cache", verify=True).read_bytes() == b"GGUF-first-second-third"


def test_corrupt_parts_are_refused_and_nothing_is_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_model(tmp_path, monkeypatch, [b"GGUF", b"data"], sha="0" * 64)
    with pytest.raises(ModelNotAvailable, match=r"corrupt.*--force-reinstall"):
        model_path("fake", directory=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_missing_parts_say_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = fake_model(tmp_path, monkeypatch, [b"GGUF"], prefix="agentkit_absent_part")
    monkeypatch.setitem(PACKAGED_MODELS, "fake", PackagedModel(**{**model.__dict__, "parts": 2}))
    with pytest.raises(ModelNotAvailable, match=r"part 2 of 2 is missing.*pip install fake-part-1==1.0 fake-part-2==1.0"):
        model_path("fake", directory=tmp_path / "cache")
    # The 1.5B model's parts are an extra: the hint names it.
    assert PACKAGED_MODELS["qwen2.5-1.5b"].install_hint() == "pip install 'agentkit[qwen-1_5b]'"


@pytest.mark.model
def test_the_packaged_default_model_is_exact(model_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = PACKAGED_MODELS["qwen2.5-0.5b"]
    assert model_file.stat().st_size == spec.size
    assert Path(f"{model_file}.sha256").read_text().strip() == spec.sha256
    # Already there: returned without hashing or copying anything.
    monkeypatch.setattr(_models, "_assemble", lambda *a: pytest.fail("reassembled"))
    monkeypatch.setattr(_models.hashlib, "sha256", lambda *a: pytest.fail("re-hashed"))
    assert model_path("qwen2.5-0.5b") == model_file
