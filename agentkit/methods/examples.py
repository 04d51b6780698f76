"""Retrieved worked examples: the baseline a reviewer asks of behavior-conditioned inference.

BCI puts short behaviors (``name: instruction``) from a handbook into the prompt. The obvious alternative is to
put whole solved problems there instead: the ``k`` most similar problems of an *example bank*, each with the
solution a model wrote for it, as few-shot context (``agentkit/prompts/worked_examples.txt``: BCI's prompt with
the behavior block replaced by the examples). Compared at the same output cap, BCI against this method says
whether the handbook's distilled behaviors beat plain example retrieval; against ``bci-plain`` (the same prompt
with no block at all), whether examples help at all. Registered as ``examples``.

The bank (``params.bank``) is a results database of a sweep over the curation problems (each row's problem and
final text, from its stored trace, graded by the sweep's grader) or a JSON Lines file with ``problem``,
``solution`` and optionally ``problem_id``, ``dataset`` and ``correct`` per line. With ``solved_only`` (the
default) only solutions graded right are examples. Examples are ranked by the cosine similarity of their
problems to the problem at hand (the spec's embedder, ``minilm`` by default); an example of the very problem
being answered is never shown. Its record names the examples and their estimated input tokens
(``example_tokens``, BCI's ``behavior_tokens`` counterpart).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import zlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentkit.errors import ConfigError
from agentkit.ledger import estimate_tokens
from agentkit.messages import AnswerRequest, Problem, Solution
from agentkit.registry import Method, MethodParams, MethodRecord, MethodResult, RunContext
from agentkit.roles import Student, ask, attached

__all__ = ["Example", "ExamplesParams", "ExamplesRecord", "WorkedExamples", "load_bank"]


class ExamplesRecord(MethodRecord):
    examples_in_context: int
    example_tokens: int
    """The examples block's input tokens (estimated): BCI's ``behavior_tokens`` counterpart."""
    examples: list[str | None]
    """The examples' problem ids, most similar first."""


class Example(BaseModel):
    """One solved problem of an example bank."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    problem: str = Field(min_length=1)
    solution: str = Field(min_length=1)
    problem_id: str | None = None
    dataset: str | None = None
    correct: bool | None = None
    """Whether the solution's answer was graded right (None: not graded)."""


def load_bank(path: str | Path, *, solved_only: bool = True) -> list[Example]:
    """The examples of a bank: a sweep results database (each finished row with a stored trace) or a JSON Lines
    file; with ``solved_only``, only those graded right. A missing or unreadable bank is a ``ConfigError``."""
    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"no example bank at {path} (a sweep results database or a .jsonl file)")
    examples = _from_database(source) if source.suffix in (".sqlite", ".db") else _from_jsonl(source)
    kept = [e for e in examples if e.correct or not solved_only]
    if not kept:
        raise ConfigError(f"the example bank {path} has no {'solved ' if solved_only else ''}examples")
    return kept


def _from_jsonl(path: Path) -> list[Example]:
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(Example.model_validate_json(line))
        except ValueError as exc:
            raise ConfigError(f"{path}:{number}: not an example ({str(exc).splitlines()[0]})") from None
    return out


def _from_database(path: Path) -> list[Example]:
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT item_id, dataset, correct, trace FROM results WHERE status = 'ok' AND "
                                "trace IS NOT NULL ORDER BY key").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"{path} is not a sweep results database with traces ({exc})") from None
    out = []
    for item_id, dataset, correct, blob in rows:
        trace = json.loads(zlib.decompress(blob))
        if trace.get("problem") and trace.get("text"):
            out.append(Example(problem=trace["problem"], solution=trace["text"], problem_id=item_id, dataset=dataset,
                               correct=None if correct is None else bool(correct)))
    return out


class ExamplesParams(MethodParams):
    bank: str
    """The example bank: a sweep results database over the curation problems, or a JSON Lines file."""
    k: int = Field(default=2, ge=1, le=16)
    """How many examples to show (the most similar problems first)."""
    solved_only: bool = True
    """Show only solutions graded right."""
    embedder: str = "minilm"
    """The embedder that ranks examples by similarity (``agentkit.memory.embedder_from_spec``)."""

    @field_validator("bank")
    @classmethod
    def _exists(cls, value: str) -> str:
        if not Path(value).is_file():  # checked when a spec loads: `sweep validate` refuses what `run` would
            raise ValueError(f"no example bank at {value} (a sweep results database or a .jsonl file)")
        return value


class _Bank:
    """A loaded bank and its problems' vectors."""

    def __init__(self, examples: list[Example], vectors: list[list[float]]) -> None:
        self.examples, self.vectors = examples, vectors

    def nearest(self, vector: list[float], problem: Problem, k: int) -> list[Example]:
        scored = sorted(((sum(a * b for a, b in zip(vector, v, strict=True)), i)
                         for i, v in enumerate(self.vectors)), reverse=True)
        chosen = []
        for _, i in scored:
            example = self.examples[i]
            if example.problem_id == problem.problem_id or example.problem.strip() == problem.text.strip():
                continue  # never the problem being answered
            chosen.append(example)
            if len(chosen) == k:
                break
        return chosen


class WorkedExamples(Method[ExamplesParams]):
    name = "examples"
    summary = "the k most similar solved problems as worked examples (BCI's example-retrieval baseline)"
    params_model = ExamplesParams
    record_model = ExamplesRecord
    templates = ("worked_examples",)

    def __init__(self) -> None:
        self._banks: dict[tuple[str, float, bool, str], _Bank] = {}
        self._embedders: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    async def _bank(self, p: ExamplesParams) -> tuple[_Bank, Any]:
        """The bank, loaded and embedded once per file version (a sweep asks for it in every cell)."""
        from agentkit.memory import embedder_from_spec

        path, mtime = await asyncio.to_thread(lambda: (Path(p.bank).resolve(), Path(p.bank).stat().st_mtime))
        key = (str(path), mtime, p.solved_only, p.embedder)
        async with self._lock:
            embedder = self._embedders.get(p.embedder)
            if embedder is None:
                embedder = self._embedders[p.embedder] = embedder_from_spec(p.embedder)
            bank = self._banks.get(key)
            if bank is None:
                examples = await asyncio.to_thread(load_bank, path, solved_only=p.solved_only)
                vectors = await embedder.embed([e.problem for e in examples])
                if len(self._banks) >= 4:  # bounded: a long-lived process that reads many banks keeps the last few
                    self._banks.pop(next(iter(self._banks)))
                bank = self._banks[key] = _Bank(examples, vectors)
        return bank, embedder

    async def run(self, problem: Problem, ctx: RunContext[ExamplesParams]) -> MethodResult:
        p = ctx.params
        bank, embedder = await self._bank(p)
        [vector] = await embedder.embed([problem.text])
        chosen = bank.nearest(vector, problem, p.k)
        block = "\n\n".join(f"Example {i}:\nProblem: {e.problem}\nSolution: {e.solution}"
                             for i, e in enumerate(chosen, 1))
        async with attached(ctx.bus, problem.run_id, [(Student(ctx.backend, ledger=ctx.ledger), 1)]) as active:
            solution = await ask(active, problem.derive(
                AnswerRequest, sender="examples", problem=problem, prompt="worked_examples",
                prompt_fields={"examples": block}, max_tokens=await ctx.call_cap(problem),
                temperature=p.temperature, seed=ctx.seed, method="examples"), Solution)
        return MethodResult(solution=solution, ledger=ctx.ledger, record=ExamplesRecord(
            examples_in_context=len(chosen), example_tokens=estimate_tokens(block),
            examples=[e.problem_id for e in chosen]))
