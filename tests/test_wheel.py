"""The wheel built from the repository works without the source tree: installed in a clean virtual environment,
``agentkit solve --dataset gsm8k --limit 1`` answers (the datasets travel as package data) and ``agentkit sweep
validate`` accepts a shipped spec by name; building and installing print no deprecation warnings."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.model
def test_the_wheel_runs_without_the_source_tree(tmp_path: Path) -> None:
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
                            str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True, timeout=600,
                           cwd=tmp_path, check=False)
    assert built.returncode == 0, built.stderr[-3000:]
    assert "deprecat" not in (built.stdout + built.stderr).lower(), (built.stdout + built.stderr)[-3000:]
    [wheel] = (tmp_path / "dist").glob("agentkit-*.whl")
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "agentkit/data/gsm8k_test.jsonl" in names and "agentkit/specs/smoke.toml" in names
    assert "agentkit/faces/view.html" in names or any(n.startswith("agentkit/faces/") for n in names)

    # A clean environment: its own site-packages with only the wheel in it; the dependencies are reached through
    # a path to this environment's site-packages (a .pth entry, which does not run this checkout's editable
    # install hook), so nothing of the source tree is importable.
    env_dir = tmp_path / "clean"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    (purelib / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "--target",
                                str(purelib), str(wheel)], capture_output=True, text=True, timeout=600, check=False)
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert "deprecat" not in (installed.stdout + installed.stderr).lower(), installed.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AGENTKIT_DATA_DIR")}
    where = subprocess.run([str(python), "-c", "import agentkit; print(agentkit.__file__)"], capture_output=True,
                           text=True, cwd=tmp_path, env=env, check=True).stdout.strip()
    assert where.startswith(str(purelib)), where  # the installed copy, not the checkout

    def agentkit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(python), "-m", "agentkit", *args], capture_output=True, text=True, timeout=600,
                              cwd=tmp_path, env=env, check=False)

    solved = agentkit("solve", "--dataset", "gsm8k", "--limit", "1", "--max-tokens", "64")
    assert solved.returncode in (0, 1) and "gsm8k-test-0" in solved.stdout, solved.stderr
    assert "/1 correct" in solved.stdout
    validated = agentkit("sweep", "validate", "smoke")
    assert validated.returncode == 0, validated.stderr
    assert "gsm8k" in validated.stdout
