"""Quickstart recipe: roles on the bus, a backend from a spec, a recorded run, and the token ledger.

    python recipes/quickstart.py [--backend local] [--limit 2] [--record run.jsonl]

A method server subscribes to ``SolveRequest`` messages (it runs the method each names, long chain of thought
by default, whose Student answers on the same bus); this script publishes one request per GSM8K problem
with ``bus.request`` and prints each ``Solution`` with its grade and budgets. Every message of the run is
recorded to JSON Lines (``--record``), which ``agentkit.bus.replay`` can publish again. Copy this file
to start your own pipeline: swap the method for your own, or the backend for ``vllm:URL?model=M``.
"""

from __future__ import annotations

import argparse
import asyncio

from agentkit import Bus, Recorder, Solution, SolveRequest, answers_match, load_dataset
from agentkit.backends import backend_from_spec
from agentkit.log import configure_logging
from agentkit.methods import MethodServer


async def main(backend_spec: str, limit: int, record: str | None) -> None:
    backend = backend_from_spec(backend_spec)  # local: the packaged Qwen2.5-Coder-0.5B via xllamacpp
    try:
        async with Bus(name="quickstart") as bus:
            recorder = Recorder(record).attach(bus) if record else None
            MethodServer(backend, max_tokens=512).attach(bus, concurrency=2)
            problems = load_dataset("gsm8k", limit=limit)
            requests = [SolveRequest(problem=p, run_id=p.problem_id, sender="quickstart", seed=0) for p in problems]
            solutions = await asyncio.gather(*(bus.request(r, Solution, timeout=600) for r in requests))
            for problem, solution in zip(problems, solutions, strict=True):
                verdict = "correct" if answers_match(solution.answer, problem.reference) else "wrong"
                print(f"{problem.problem_id}: {solution.answer} (reference {problem.reference}, {verdict}); "
                      f"B_seq={solution.b_seq} B_total={solution.b_total} output={solution.usage.output_tokens}")
        if recorder is not None:
            await recorder.close()
            print(f"recorded {recorder.count} messages to {record}")
    finally:
        await backend.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="local")
    parser.add_argument("--limit", type=int, default=2)
    parser.add_argument("--record", default=None)
    args = parser.parse_args()
    configure_logging()  # an application configures logging; the library never does
    asyncio.run(main(args.backend, args.limit, args.record))
