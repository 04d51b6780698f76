"""Symbolic answer grading with math-verify, in a process pool with our own wall-clock timeout.

math-verify's own timeouts use ``signal.alarm``, which raises off the main thread (Math-Verify issues #50 and
#55; measured on this project's machine), and sympy can spin on adversarial input. So ``MathVerifyGrader``
runs every check in a pool of worker *processes* (``python -m agentkit.evaluation._grader_worker``, JSON lines over
pipes: no fork of the caller, no re-import of its ``__main__``, so scripts need no ``if __name__`` guard),
where math-verify runs on the main thread and its own timeouts work, and bounds each check by a wall-clock
timeout of its own; a check that overruns is counted in ``timeouts``, graded ``status="timeout"`` (not
correct), and its worker is killed and replaced so it cannot block the next check.

Plain integers on both sides (most GSM8K and every AIME answer) are compared exactly in-process, with no
round trip (``Grade.exact_integers``). Extraction is ours (``agentkit.evaluation.answers.extract_answer``: the last ``\\boxed{}``, else a final ``Answer:``,
else the last number, or a configurable pattern); the extracted answer and the gold are wrapped in ``$...$``
(a bare LaTeX gold answer is not parsed otherwise) and compared with ``verify(gold, prediction)`` in
math-verify's documented argument order. Every ``Grade`` carries the grader's name and version so a result
is never compared with one graded by something else.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import re
import sys
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict

from agentkit.errors import ConfigError
from agentkit.evaluation.answers import Extraction, extract_answer, extract_strict

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
    exact_integers: bool = False
    """Both sides were plain integers, compared exactly in-process (what math-verify concludes for them too)."""


_INTEGER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)")


def _integer(text: str) -> int | None:
    text = text.strip()
    return int(text.replace(",", "")) if _INTEGER.fullmatch(text) else None


class _Worker:
    """One ``agentkit.evaluation._grader_worker`` process."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls) -> _Worker:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agentkit.evaluation._grader_worker", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        worker = cls(proc)
        ready = await asyncio.wait_for(worker._readline(), 120)
        if not ready.get("ready"):
            raise ConfigError("the grading worker did not start")
        return worker

    async def _readline(self) -> dict[str, object]:
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise ConnectionError("the grading worker exited")
        return dict(json.loads(line))

    async def check(self, gold: str, prediction: str, timeout: int) -> tuple[bool, str]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"gold": gold, "prediction": prediction, "timeout": timeout}) + "\n")
                              .encode())
        await self.proc.stdin.drain()
        reply = await self._readline()
        return bool(reply["correct"]), str(reply["note"])

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            await self.kill()


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
        self._idle: asyncio.Queue[_Worker] | None = None
        self._all: set[_Worker] = set()
        self._start_lock = asyncio.Lock()

    async def _ready(self) -> asyncio.Queue[_Worker]:
        """The idle workers, started (math-verify imported in each) before the first timed check."""
        async with self._start_lock:
            if self._idle is None:
                idle: asyncio.Queue[_Worker] = asyncio.Queue()
                for worker in await asyncio.gather(*(_Worker.start() for _ in range(self.workers))):
                    self._all.add(worker)
                    idle.put_nowait(worker)
                self._idle = idle
        return self._idle

    async def _replace(self, worker: _Worker) -> _Worker:
        self._all.discard(worker)
        await worker.kill()  # a stuck check never returns: its process goes
        fresh = await _Worker.start()
        self._all.add(fresh)
        return fresh

    async def grade_output(self, text: str, gold: str | None, *, finish_reason: str = "stop",
                           final_number: bool = True) -> tuple[str | None, Extraction, Grade | None]:
        """A run's final text graded under the evaluation rule (``extract_strict``: a cut-off text counts only
        with a boxed answer; ``final_number``: GSM8K's last-number rule): the answer, how it was found, and its
        grade (None without a reference). ``agentkit solve`` and sweeps both grade this way, so a problem scores
        the same in both."""
        answer, how = extract_strict(text, finish_reason=finish_reason, final_number=final_number,
                                     pattern=self.pattern)
        return answer, how, await self.grade(answer, gold, extracted=True) if gold is not None else None

    async def grade(self, response: str | None, gold: str, *, extracted: bool = False) -> Grade:
        """Grade a model's ``response`` (or, with ``extracted=True``, an already extracted answer)."""
        prediction = response if extracted else extract_answer(response or "", pattern=self.pattern)
        if not prediction:
            return Grade(correct=False, status="no_answer", prediction=None, grader=self.version)
        a, b = _integer(prediction), _integer(gold)
        if a is not None and b is not None:  # the common GSM8K/AIME case: no process round trip
            return Grade(correct=a == b, status="ok", prediction=prediction, grader=self.version,
                         exact_integers=True)
        idle = await self._ready()
        worker = await idle.get()
        started = time.perf_counter()
        try:
            correct, note = await asyncio.wait_for(worker.check(gold, prediction, max(1, int(self.timeout))),
                                                   self.timeout)
        except TimeoutError:
            self.timeouts += 1
            worker = await self._replace(worker)
            return Grade(correct=False, status="timeout", prediction=prediction, grader=self.version,
                         seconds=time.perf_counter() - started)
        except (ConnectionError, OSError, ValueError) as exc:  # the worker died or wrote garbage
            worker = await self._replace(worker)
            return Grade(correct=False, status="error", prediction=prediction, grader=self.version,
                         seconds=time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}")
        finally:
            idle.put_nowait(worker)
        status: Status = "ok" if note == "ok" else ("no_answer" if note == "no_answer" else "error")
        return Grade(correct=correct, status=status, prediction=prediction, grader=self.version,
                     seconds=time.perf_counter() - started, error="" if status != "error" else note)

    async def aclose(self) -> None:
        workers, self._all, self._idle = list(self._all), set(), None
        await asyncio.gather(*(w.stop() for w in workers))

    async def __aenter__(self) -> MathVerifyGrader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
