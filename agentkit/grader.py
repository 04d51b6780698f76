"""Symbolic answer grading with math-verify, in a process pool with our own wall-clock timeout.

math-verify's own timeouts use ``signal.alarm``, which raises off the main thread (Math-Verify issues #50 and
#55; measured on this project's machine), and sympy can spin on adversarial input. So ``MathVerifyGrader``
runs every check in a worker *process* (where math-verify runs on the main thread and its own timeouts
work) and bounds each check by a wall-clock timeout of its own; a check that overruns is counted in
``timeouts``, graded ``status="timeout"`` (not correct), and the pool is replaced so a stuck worker cannot
block the next check.

Extraction is ours (``agentkit.grading.extract_answer``: the last ``\\boxed{}``, else a final ``Answer:``,
else the last number, or a configurable pattern); the extracted answer and the gold are wrapped in ``$...$``
(a bare LaTeX gold answer is not parsed otherwise) and compared with ``verify(gold, prediction)`` in
math-verify's documented argument order. Every ``Grade`` carries the grader's name and version so a result
is never compared with one graded by something else.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Literal

from pydantic import BaseModel, ConfigDict

from agentkit.errors import ConfigError
from agentkit.grading import extract_answer

__all__ = ["Grade", "MathVerifyGrader", "grader_version"]

Status = Literal["ok", "no_answer", "timeout", "error"]


def grader_version() -> str:
    """``math-verify==X.Y.Z`` (or ``math-verify==missing``)."""
    try:
        return f"math-verify=={importlib.metadata.version('math-verify')}"
    except importlib.metadata.PackageNotFoundError:
        return "math-verify==missing"


class Grade(BaseModel):
    """One graded answer."""

    model_config = ConfigDict(frozen=True)

    correct: bool
    status: Status
    """``ok`` (compared), ``no_answer`` (nothing extracted), ``timeout`` or ``error`` (both count as wrong)."""
    prediction: str | None
    """The extracted answer that was compared."""
    grader: str
    seconds: float = 0.0
    error: str = ""


def _math(text: str) -> str:
    text = text.strip()
    return text if text.startswith("$") or "\\boxed" in text else f"${text}$"


def _warm() -> None:
    import math_verify  # noqa: F401  (imports take about a second: do them before any timed check)


def _verify(gold: str, prediction: str, timeout: int) -> tuple[bool, str]:
    """Runs in a worker process (main thread, so math-verify's own signal timeouts work)."""
    from math_verify import parse, verify

    g = parse(_math(gold), parsing_timeout=timeout)
    p = parse(_math(prediction), parsing_timeout=timeout)
    if not g:
        return False, "error: the gold answer did not parse"
    if not p:
        return False, "no_answer"
    return bool(verify(g, p, timeout_seconds=timeout)), "ok"


class MathVerifyGrader:
    """``await grader.grade(response_text, gold)`` -> ``Grade``; ``await grader.aclose()`` when done.

    Args:
        workers: processes in the pool (grading is CPU work: keep it at or below the core count).
        timeout: wall-clock seconds per check, ours; math-verify's internal timeouts get the same bound.
        pattern: a regular expression with one group to extract answers with instead of the default rules.
    """

    def __init__(self, *, workers: int = 2, timeout: float = 10.0, pattern: str | None = None) -> None:
        if workers < 1 or timeout <= 0:
            raise ConfigError(f"workers must be >= 1 and timeout > 0, got {workers} and {timeout}")
        if grader_version().endswith("missing"):
            raise ConfigError("math-verify is not installed: pip install 'math-verify[antlr4_13_2]'")
        self.workers, self.timeout, self.pattern = workers, timeout, pattern
        self.version = grader_version()
        self.timeouts = 0
        """Checks that ran past ``timeout``."""
        self._pool: ProcessPoolExecutor | None = None

    async def _executor(self) -> ProcessPoolExecutor:
        """The pool, started and warmed (math-verify imported in every worker), so that the per-check timeout
        measures checks, not process start-up."""
        if self._pool is None:
            # spawn: a forked child of an asyncio process with threads may deadlock
            pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
            loop = asyncio.get_running_loop()
            await asyncio.gather(*(loop.run_in_executor(pool, _warm) for _ in range(self.workers)))
            self._pool = pool
        return self._pool

    def _replace_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            for process in list(getattr(pool, "_processes", {}).values()):  # a stuck worker never returns
                process.kill()
            pool.shutdown(wait=False, cancel_futures=True)

    async def grade(self, response: str | None, gold: str, *, extracted: bool = False) -> Grade:
        """Grade a model's ``response`` (or, with ``extracted=True``, an already extracted answer)."""
        prediction = response if extracted else extract_answer(response or "", pattern=self.pattern)
        if not prediction:
            return Grade(correct=False, status="no_answer", prediction=None, grader=self.version)
        pool = await self._executor()
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            correct, note = await asyncio.wait_for(
                loop.run_in_executor(pool, _verify, gold, prediction, max(1, int(self.timeout))), self.timeout)
        except TimeoutError:
            self.timeouts += 1
            self._replace_pool()
            return Grade(correct=False, status="timeout", prediction=prediction, grader=self.version,
                         seconds=time.perf_counter() - started)
        except Exception as exc:  # a crashed worker (BrokenProcessPool) or an error inside math-verify
            self._replace_pool()
            return Grade(correct=False, status="error", prediction=prediction, grader=self.version,
                         seconds=time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}")
        status: Status = "ok" if note == "ok" else ("no_answer" if note == "no_answer" else "error")
        return Grade(correct=correct, status=status, prediction=prediction, grader=self.version,
                     seconds=time.perf_counter() - started, error="" if status != "error" else note)

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    async def __aenter__(self) -> MathVerifyGrader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
