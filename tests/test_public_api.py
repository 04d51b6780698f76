from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["agentkit", "agentkit.backends", "agentkit.testing", "agentkit.memory",
                                    "agentkit.messages", "agentkit.bus", "agentkit.ledger", "agentkit.errors"])
def test_all_is_sorted_and_importable(module: str) -> None:
    mod = importlib.import_module(module)
    names = list(mod.__all__)
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical.
    assert names == sorted(names, key=lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n))
    for name in names:
        assert hasattr(mod, name), f"{module}.{name}"


def test_top_level_folders_install_as_subpackages() -> None:
    # Run from "/" so that the repository root is not on sys.path: only the installed mapping counts.
    code = ("import importlib.util, agentkit.backends, agentkit.memory; "
            "print(agentkit.backends.__name__, importlib.util.find_spec('backends'), importlib.util.find_spec('memory'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.split() == ["agentkit.backends", "None", "None"]


def test_importing_agentkit_loads_no_model_library() -> None:
    code = "import sys, agentkit, agentkit.backends; print('xllamacpp' in sys.modules, 'llama_cpp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.split() == ["False", "False"]
