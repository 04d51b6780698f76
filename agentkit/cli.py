"""The ``agentkit`` command.

- ``agentkit chat "PROMPT" [--backend SPEC]``: one reply and its token usage.
- ``agentkit solve --dataset gsm8k --limit 3 [--backend SPEC] [--json]``: solve problems (long chain of
  thought for now) and grade them. With ``--json`` it prints one JSON object per problem, the output
  shape every method shares: ``id``, ``answer``, ``reference``, ``correct``, ``B_seq``, ``B_total``,
  ``output_tokens``, ``calls``.

Errors agentkit raises on purpose (``AgentkitError``) print as one line on stderr with exit code 2; a
backend failure exits 3. Logs go to stderr (``-v`` for more).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from agentkit.errors import AgentkitError, BackendError
from agentkit.log import configure_logging

__all__ = ["main"]

DEFAULT_BACKEND = "local"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentkit", description="Metacognitive reasoning with language models.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", required=True)

    def backend_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--backend", default=DEFAULT_BACKEND,
                       help="backend spec: local, local:qwen2.5-1.5b, openai:MODEL, vllm:URL?model=M, "
                            "llamacpp:/path.gguf (default: %(default)s)")

    chat = sub.add_parser("chat", help="one chat reply and its token usage")
    chat.add_argument("prompt", help="the user message")
    chat.add_argument("--system", default=None, help="an optional system message")
    chat.add_argument("--max-tokens", type=int, default=512)
    chat.add_argument("--temperature", type=float, default=0.0)
    chat.add_argument("--seed", type=int, default=0)
    chat.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    backend_arg(chat)

    solve = sub.add_parser("solve", help="solve dataset problems and grade them")
    solve.add_argument("--dataset", default="gsm8k", help="gsm8k, math500, aime24, ... or a .jsonl path")
    solve.add_argument("--limit", type=int, default=3, help="how many problems (default: %(default)s)")
    solve.add_argument("--sample-seed", type=int, default=None,
                       help="take a seeded random sample of --limit problems instead of the first ones")
    solve.add_argument("--method", default="long-cot", choices=["long-cot"])
    solve.add_argument("--max-tokens", type=int, default=768, help="output cap per answer")
    solve.add_argument("--temperature", type=float, default=0.0)
    solve.add_argument("--seed", type=int, default=0)
    solve.add_argument("--concurrency", type=int, default=4, help="problems solved at once")
    solve.add_argument("--json", action="store_true", help="one JSON object per problem on stdout")
    solve.add_argument("--record", default=None, help="write every bus message to this JSON Lines file")
    backend_arg(solve)
    return parser


async def _chat(args: argparse.Namespace) -> int:
    from agentkit.backends import backend_from_spec

    backend = backend_from_spec(args.backend)
    messages = [{"role": "user", "content": args.prompt}]
    if args.system:
        messages.insert(0, {"role": "system", "content": args.system})
    try:
        [completion] = await backend.chat(messages, max_tokens=args.max_tokens, temperature=args.temperature,
                                          seed=args.seed)
    finally:
        await backend.aclose()
    if args.json:
        print(json.dumps(completion.model_dump(mode="json")))
    else:
        print(completion.text)
        print(f"[{completion.model}: {completion.input_tokens} input + {completion.output_tokens} output tokens, "
              f"{completion.latency_s:.1f} s, finish={completion.finish_reason}]", file=sys.stderr)
    return 0


async def _solve(args: argparse.Namespace) -> int:
    from agentkit.backends import backend_from_spec
    from agentkit.bus import Bus, Recorder
    from agentkit.datasets import load_dataset
    from agentkit.errors import ConfigError
    from agentkit.grading import answers_match
    from agentkit.messages import Solution, SolveRequest
    from agentkit.roles import Student

    if args.concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    problems = load_dataset(args.dataset, limit=args.limit, seed=args.sample_seed)
    backend = backend_from_spec(args.backend)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    recorder = Recorder(args.record) if args.record else None
    try:
        async with Bus(name="solve") as bus:
            if recorder is not None:
                recorder.attach(bus)
            Student(backend, max_tokens=args.max_tokens).attach(bus, concurrency=args.concurrency)

            async def one(problem: Any) -> dict[str, Any]:
                request = SolveRequest(problem=problem, run_id=problem.problem_id, sender="cli",
                                       method=args.method, max_tokens=args.max_tokens,
                                       temperature=args.temperature, seed=args.seed)
                try:
                    solution = await bus.request(request, Solution, timeout=3600)
                except AgentkitError as exc:  # one failed problem is reported, the others go on
                    return {"id": problem.problem_id, "answer": None, "reference": problem.reference,
                            "correct": None, "B_seq": 0, "B_total": 0, "output_tokens": 0, "calls": 0,
                            "error": str(exc)}
                correct = answers_match(solution.answer, problem.reference) if problem.reference else None
                return {
                    "id": problem.problem_id, "answer": solution.answer, "reference": problem.reference,
                    "correct": correct, "B_seq": solution.b_seq, "B_total": solution.b_total,
                    "output_tokens": solution.usage.output_tokens, "calls": solution.usage.calls,
                }

            # Bounded fan-out: at most `concurrency` problems in flight, results printed as they finish.
            pending: set[asyncio.Task[dict[str, Any]]] = set()
            queue = iter(problems)
            while True:
                while len(pending) < args.concurrency and (problem := next(queue, None)) is not None:
                    pending.add(asyncio.create_task(one(problem)))
                if not pending:
                    break
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    row = task.result()
                    rows.append(row)
                    _print_row(row, args.json)
            failed = sum(1 for r in rows if r.get("error"))
    finally:
        await backend.aclose()
        if recorder is not None:
            await recorder.close()
    if not args.json:
        graded = [r for r in rows if r["correct"] is not None]
        right = sum(1 for r in graded if r["correct"])
        print(f"\n{right}/{len(graded)} correct; {sum(r['B_total'] for r in rows)} tokens in total; "
              f"{time.perf_counter() - started:.1f} s on {backend.name}"
              + (f"; {failed} failed" if failed else ""))
    return 1 if failed else 0


def _print_row(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(row), flush=True)
        return
    if row.get("error"):
        print(f"{row['id']}: FAILED: {row['error']}", flush=True)
        return
    mark = {True: "correct", False: "wrong", None: "ungraded"}[row["correct"]]
    print(f"{row['id']}: answer={row['answer']!s:>10}  reference={row['reference']!s:>10}  {mark:<8}  "
          f"tokens: {row['B_total']} ({row['output_tokens']} output)", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging({0: "warning", 1: "info"}.get(args.verbose, "debug") if args.verbose else None)
    command = {"chat": _chat, "solve": _solve}[args.command]
    try:
        return asyncio.run(command(args))
    except BackendError as exc:
        print(f"agentkit: backend error: {exc}", file=sys.stderr)
        return 3
    except AgentkitError as exc:
        print(f"agentkit: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
