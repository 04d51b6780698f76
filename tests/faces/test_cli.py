"""The ``agentkit`` command, run as a user runs it (a subprocess) against the real local model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def agentkit(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentkit", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.model
def test_chat_prints_the_reply_and_usage() -> None:
    out = agentkit("chat", "What is 12 + 30? Reply with the number only.", "--max-tokens", "16")
    assert out.returncode == 0, out.stderr
    assert "42" in out.stdout
    assert "input +" in out.stderr and "output tokens" in out.stderr


@pytest.mark.model
def test_solve_json_has_the_shared_shape() -> None:
    out = agentkit("solve", "--dataset", "gsm8k", "--limit", "2", "--max-tokens", "320", "--json")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted(r["id"] for r in rows) == ["gsm8k-test-0", "gsm8k-test-1"]
    for row in rows:
        # the shape every face reports a run in (agentkit.methods.result_summary), plus the problem and its grade
        assert set(row) == {"id", "reference", "correct", "method", "answer", "finish_reason", "B_seq", "B_total",
                            "calls", "input_tokens", "output_tokens", "reasoning_tokens", "hidden_output_tokens", "behaviors", "cited",
                            "behavior_tokens"}
        assert row["calls"] == 1 and row["B_seq"] == row["B_total"] > row["output_tokens"] > 0
        assert isinstance(row["correct"], bool)


def test_bad_input_is_one_line_not_a_traceback() -> None:
    out = agentkit("chat", "hi", "--backend", "nonsense:x")
    assert out.returncode == 2 and out.stderr.startswith("agentkit: unknown backend")
    assert "Traceback" not in out.stderr
    out = agentkit("solve", "--dataset", "missing-dataset")
    assert out.returncode == 2 and "unknown dataset" in out.stderr


def test_backend_failures_exit_3_with_the_cause() -> None:
    out = agentkit("chat", "hi", "--backend", "openai-compatible:http://127.0.0.1:9/v1?model=m&retries=2")
    assert out.returncode == 3 and "connection error" in out.stderr and "Traceback" not in out.stderr


def test_solve_with_the_backend_down_says_so_and_exits_3() -> None:
    """Every problem failed on the backend: exit 3 as the README says, failures counted as wrong answers (not
    "0/0 correct"), progress on stderr from the start, and no log lines without -v."""
    out = agentkit("solve", "--dataset", "gsm8k", "--limit", "2", "--backend",
                   "vllm:http://127.0.0.1:9/v1?model=x&retries=1")
    assert out.returncode == 3, out.stderr
    assert "0/2 correct" in out.stdout and "2 failed (counted wrong)" in out.stdout
    assert out.stdout.count("[1/2]") == 1 and out.stdout.count("[2/2]") == 1
    err = out.stderr.strip().splitlines()
    assert err[0].startswith("solving 2 problem(s) of gsm8k with long-cot on vllm:x")
    assert err[-1].startswith("agentkit: backend error: every problem failed") and len(err) == 2, out.stderr
    verbose = agentkit("-v", "solve", "--dataset", "gsm8k", "--limit", "1", "--backend",
                       "vllm:http://127.0.0.1:9/v1?model=x&retries=1")
    assert verbose.returncode == 3 and len(verbose.stderr.strip().splitlines()) > 2  # -v: the log lines too
