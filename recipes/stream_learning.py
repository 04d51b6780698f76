"""Streaming test-time learning, measured as it learns: one seeded stream of problems answered three ways.

    python recipes/stream_learning.py [--backend local] [--dataset gsm8k] [--limit 100] [--seed 0]
        [--handbook EXPORT.jsonl] [--no-reference] [--out runs/stream] [--json]

- ``online``: each item is answered with the handbook as it is, then the Strategist learns from that attempt
  (reflect, extract, store) before the next item;
- ``frozen``: the same stream with the starting handbook, never written to;
- ``none``: the same stream with no behaviors (BCI's prompt without its behavior block).

The starting handbook is ``--handbook`` (an `agentkit handbook export`), imported into a fresh store per mode, or
empty. ``--no-reference`` keeps every label away from the handbook (the Strategist is not told the reference, and
no citation is graded into it). Each mode logs its rows under ``--out`` and resumes from them (the same command
continues an interrupted run; another stream is refused). Prints the learning curves (accuracy over items seen,
95% Wilson intervals), the paired differences between modes (paired bootstrap over items), and the tokens spent
curating against those spent answering; writes ``summary.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from agentkit import load_dataset
from agentkit.backends import backend_from_spec
from agentkit.evaluation.stats import paired_difference
from agentkit.log import configure_logging
from agentkit.memory import QdrantBehaviorStore
from agentkit.pipelines import StreamRow, learn_from_stream, learning_curve, stream_order

MODES = ("online", "frozen", "none")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    problems = stream_order(load_dataset(args.dataset, limit=args.limit, seed=args.sample_seed), args.seed)
    out = Path(args.out)
    backend = backend_from_spec(args.backend)
    results: dict[str, list[StreamRow]] = {}
    sizes: dict[str, int] = {}
    try:
        for mode in args.modes:
            store = None
            if mode != "none":
                directory = out / f"{mode}-handbook"
                fresh = not directory.exists()
                store = await QdrantBehaviorStore(path=directory).open()
                if fresh and args.handbook:
                    await store.import_jsonl(args.handbook)
            try:
                results[mode] = await learn_from_stream(
                    problems, backend, mode=mode, handbook=store, log=out / f"{mode}.jsonl", k=args.k,
                    retrieval=args.retrieval, max_tokens=args.max_tokens, curation_tokens=args.curation_tokens,
                    reveal_reference=not args.no_reference, seed=args.seed)
                sizes[mode] = await store.count() if store is not None else 0
            finally:
                if store is not None:
                    await store.close()
    finally:
        await backend.aclose()
    summary: dict[str, Any] = {"stream": {"dataset": args.dataset, "items": len(problems), "seed": args.seed,
                                          "reveal_reference": not args.no_reference}, "modes": {}, "paired": {}}
    for mode, rows in results.items():
        summary["modes"][mode] = {
            "accuracy": sum(r.correct for r in rows) / len(rows) if rows else 0.0,
            "curve": learning_curve(rows, every=args.every),
            "answering_tokens": sum(r.answer_input_tokens + r.answer_output_tokens for r in rows),
            "answering_output_tokens": sum(r.answer_output_tokens for r in rows),
            "curation_tokens": sum(r.curation_input_tokens + r.curation_output_tokens for r in rows),
            "final_handbook_size": sizes[mode],
        }
    scores = {mode: {r.problem_id: float(r.correct) for r in rows} for mode, rows in results.items()}
    for a, b in (("online", "frozen"), ("online", "none"), ("frozen", "none")):
        if a in scores and b in scores:
            summary["paired"][f"{a} - {b}"] = paired_difference(scores[a], scores[b])
    await asyncio.to_thread(_write, out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="local")
    parser.add_argument("--dataset", default="gsm8k")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--sample-seed", type=int, default=None, help="a seeded sample of --limit problems")
    parser.add_argument("--seed", type=int, default=0, help="the stream's order and the calls' seed")
    parser.add_argument("--handbook", default=None, help="an `agentkit handbook export` to start every mode from")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--retrieval", default="embedding", choices=["embedding", "topic", "both", "utility"])
    parser.add_argument("--max-tokens", type=int, default=512, help="each answer's output cap")
    parser.add_argument("--curation-tokens", type=int, default=512, help="each reflect / extract call's cap")
    parser.add_argument("--no-reference", action="store_true", help="learn without the references (no labels)")
    parser.add_argument("--every", type=int, default=10, help="learning-curve points every N items")
    parser.add_argument("--out", default="runs/stream")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    configure_logging()
    summary = asyncio.run(run(args))
    if args.json:
        print(json.dumps(summary))
        return
    for mode, m in summary["modes"].items():
        curve = ", ".join(f"{p['seen']}: {p['accuracy']:.2f} [{p['ci_low']:.2f}, {p['ci_high']:.2f}]"
                          for p in m["curve"])
        print(f"{mode:<7} accuracy {m['accuracy']:.3f}; answering {m['answering_tokens']:,} tokens, curating "
              f"{m['curation_tokens']:,}; curve {curve}")
    for pair, d in summary["paired"].items():
        print(f"{pair}: {d['difference']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] over {d['items']} items "
              f"({d['wins']} wins, {d['losses']} losses)")


if __name__ == "__main__":
    main()
