"""A grading worker process for ``agentkit.evaluation.grader``: JSON lines in (``{"gold", "prediction", "timeout"}``),
JSON lines out (``{"correct", "note"}``). math-verify runs on this process's main thread, where its own
``signal.alarm`` timeouts work; the parent bounds every check by wall-clock time and kills a worker that
overruns. Started as ``python -m agentkit.evaluation._grader_worker`` (no fork of the parent, no import of its
``__main__``)."""

from __future__ import annotations

import json
import sys


def _math(text: str) -> str:
    text = text.strip()
    return text if text.startswith("$") or "\\boxed" in text else f"${text}$"


def check(gold: str, prediction: str, timeout: int) -> tuple[bool, str]:
    from math_verify import parse, verify

    g = parse(_math(gold), parsing_timeout=timeout)
    p = parse(_math(prediction), parsing_timeout=timeout)
    if not g:
        return False, "error: the gold answer did not parse"
    if not p:
        return False, "no_answer"
    return bool(verify(g, p, timeout_seconds=timeout)), "ok"


def main() -> None:
    import math_verify  # noqa: F401  (import before announcing readiness: about a second)

    sys.stdout.write('{"ready": true}\n')
    sys.stdout.flush()
    for line in sys.stdin:
        try:
            job = json.loads(line)
            correct, note = check(str(job["gold"]), str(job["prediction"]), int(job["timeout"]))
        except Exception as exc:  # anything math-verify raises is this check's error, not the worker's end
            correct, note = False, f"error: {type(exc).__name__}: {exc}"
        sys.stdout.write(json.dumps({"correct": correct, "note": note}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
