"""``agentkit handbook`` on an embedded store, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def hb(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentkit", "handbook", "--store", str(store), *args],
                          capture_output=True, text=True, timeout=300)


def test_handbook_cli_round_trip(tmp_path: Path) -> None:
    store = tmp_path / "hb"
    paper = tmp_path / "paper.json"
    paper.write_text(json.dumps({"behavior_check_units": "convert to one unit first",
                                 "behavior_work_backwards": "undo each step from the end", "bad": "x"}))
    out = hb(store, "--json", "import", str(paper), "--topic", "Arithmetic")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert sorted(report["imported"]) == ["behavior_check_units", "behavior_work_backwards"] and "bad" in report["skipped"]
    out = hb(store, "search", "grams and kilograms", "-k", "1")
    assert out.returncode == 0 and "behavior_check_units" in out.stdout
    assert hb(store, "add", "behavior_draw_it", "sketch the figure first").returncode == 0
    out = hb(store, "--json", "stats")
    assert json.loads(out.stdout) == {"active": 3, "deprecated": 0, "pruned": 0,
                                      "behaviors_per_topic": {"Arithmetic": 2, "": 1}}
    out = hb(store, "stats")
    assert out.stdout.splitlines() == ["active 3, deprecated 0, pruned 0", "active behaviors per topic:",
                                       "      2  Arithmetic", "      1  (no topic)"]
    out = hb(store, "prune", "--capacity", "1")
    assert out.returncode == 0 and out.stdout.count("over capacity 1") == 2
    assert json.loads(hb(store, "--json", "stats").stdout)["active"] == 3  # a dry run
    export = tmp_path / "e.jsonl"
    assert hb(store, "export", str(export)).returncode == 0 and len(export.read_text().splitlines()) == 3
    out = hb(store, "add", "Not A Name", "x")
    assert out.returncode == 2 and out.stderr.startswith("agentkit: invalid input: name") and "Traceback" not in out.stderr
    out = hb(store, "show", "behavior_missing")
    assert out.returncode == 2 and "no behavior named" in out.stderr


def test_a_bad_embedder_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "half-bge").mkdir()
    (tmp_path / "half-bge" / "config.json").write_text("{}")
    cases = {
        "nonsense": "unknown embedder 'nonsense'",
        "bge-m3": "needs a directory after the colon",
        f"bge-m3:{tmp_path / 'half-bge'}": "missing colbert_linear.pt, sparse_linear.pt",
        f"minilm:{tmp_path / 'nowhere'}": "is not a directory",
        "bge-m3:https://example.invalid/bge-m3": "is a URL",
    }
    for spec, message in cases.items():
        out = hb(tmp_path / "hb", "--embedder", spec, "stats")
        assert out.returncode == 2 and message in out.stderr, (spec, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    out = hb(tmp_path / "hb", "--json", "stats", "--embedder", "minilm")  # a reader creates no store
    assert out.returncode == 2 and "no handbook store at" in out.stderr and not (tmp_path / "hb").exists()
    assert hb(tmp_path / "hb", "add", "behavior_x", "y", "--embedder", "minilm").returncode == 0  # a writer does
    out = hb(tmp_path / "hb", "--json", "stats", "--embedder", "minilm")  # the default, named: fine
    assert out.returncode == 0 and json.loads(out.stdout)["active"] == 1
    out = subprocess.run([sys.executable, "-m", "agentkit", "handbook", "--store", "http://127.0.0.1:9/x",
                          "--token", "t", "--embedder", "minilm", "stats"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--embedder applies to a store directory" in out.stderr


SUBCOMMANDS: list[list[str]] = [
    ["build", "--dataset", "gsm8k-train", "--limit", "1", "--backend", "scripted:x"], ["list"], ["search", "units"],
    ["show", "behavior_x"], ["history", "behavior_x"], ["add", "behavior_x", "an instruction"],
    ["prune", "--capacity", "1", "--apply"], ["export", "EXPORT"], ["import", "IMPORT"], ["stats"]]


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): ("dir" if p.is_dir() else p.read_bytes().hex())
            for p in sorted(folder.rglob("*"))}


def test_no_handbook_command_changes_what_it_did_not_create(tmp_path: Path, capsys: Any) -> None:
    """Every ``handbook`` subcommand, over a directory of a user's files, over a file and (the reading ones)
    over a missing path: one line on stderr, exit 2, and every file under the folder byte for byte as before
    (nothing renamed aside, no store created in its place)."""
    from agentkit.faces.cli import main
    from agentkit.faces.cli.handbook import WRITING

    work = tmp_path / "work"
    folder = work / "d"
    folder.mkdir(parents=True)
    (folder / "f").write_text("a user's file")
    (work / "plain").write_text("not a store")
    side = tmp_path / "side"
    side.mkdir()
    (side / "paper.json").write_text(json.dumps({"behavior_x": "an instruction"}))
    before = _tree(work)
    for target, expected in ((folder, "is a directory that is not a handbook store"), (work / "plain", "is a file"),
                             (work / "missing", "no handbook store at")):
        for args in SUBCOMMANDS:
            if target.name == "missing" and args[0] in WRITING:
                continue  # a writer creates a store at a new path: that is what it is for
            argv = ["handbook", "--store", str(target),
                    *[{"EXPORT": str(side / "out.jsonl"), "IMPORT": str(side / "paper.json")}.get(a, a) for a in args]]
            code = main(argv)
            out, err = capsys.readouterr()
            assert code == 2, (argv, out, err)
            assert err.count("\n") == 1 and err.startswith("agentkit: ") and expected in err, (argv, err)
            assert out == ""
            assert _tree(work) == before, argv
    assert not (side / "out.jsonl").exists()
