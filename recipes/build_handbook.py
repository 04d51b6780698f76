"""Build a behavior handbook: a Strategist solves, reflects on and extracts behaviors from training problems.

    python recipes/build_handbook.py [--backend local] [--dataset gsm8k-train] [--limit 10] [--store DIR]

Each problem goes over the bus as a ``CurateRequest`` to a Strategist role (solve, reflect, extract); the
behaviors it proposes are stored with topics and provenance, merged into near-duplicates, and every finished
problem is logged so that running this again skips it. Prints the build report (curation cost in tokens
included) and the handbook's behaviors with their sources.
"""

from __future__ import annotations

import argparse
import asyncio

from agentkit import load_dataset
from agentkit.backends import backend_from_spec
from agentkit.log import configure_logging
from agentkit.memory import QdrantBehaviorStore
from agentkit.pipelines import build_handbook


async def main(args: argparse.Namespace) -> None:
    backend = backend_from_spec(args.backend)
    problems = load_dataset(args.dataset, limit=args.limit, seed=args.sample_seed)
    try:
        async with QdrantBehaviorStore(path=args.store) as store:
            report = await build_handbook(
                problems, backend, store, concurrency=args.concurrency, max_tokens=args.max_tokens,
                max_behaviors=args.max_behaviors,
                on_problem=lambda pid, p: print(f"{pid}: {len(p.behaviors)} behaviors, {len(p.dropped)} dropped"
                                                if p else f"{pid}: FAILED", flush=True))
            print(f"\ncurated {report.problems} problems ({report.skipped} already done, {len(report.failed)} "
                  f"failed) in {report.wall_s:.0f} s: {report.stored} new behaviors, {report.merged} merged, "
                  f"{report.dropped} entries rejected; {report.traces_correct} traces matched the reference")
            print(f"curation cost: {report.usage.input_tokens} input + {report.usage.output_tokens} output "
                  f"tokens in {report.usage.calls} calls")
            for b in await store.list_behaviors():
                sources = ", ".join(p.problem_id or "?" for p in b.provenance)
                print(f"- {b.name} [{', '.join(b.topics)}] (from {sources}): {b.instruction}")
    finally:
        await backend.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="local")
    parser.add_argument("--dataset", default="gsm8k-train")
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--sample-seed", type=int, default=None)
    parser.add_argument("--store", default=".agentkit/handbook")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=768)
    parser.add_argument("--max-behaviors", type=int, default=5)
    configure_logging()  # an application configures logging; the library never does
    asyncio.run(main(parser.parse_args()))
