"""Behavior-conditioned SFT: a Teacher writes answers with behaviors in context; a student is fine-tuned on
them with no behaviors in its prompt, beside the plain-SFT twin.

    python recipes/bc_sft.py [--backend local] [--limit 4] [--out runs/bc_sft] [--student tiny|DIR] [--steps 2]

1. For each ``--dataset`` training problem, a Strategist curates behaviors for that problem (the paper's
   setting; ``--store DIR`` retrieves from a handbook instead), and a Teacher answers with and without them.
2. ``bc_sft.jsonl`` and ``sft.jsonl`` (chat JSON Lines for TRL / axolotl) are written under ``--out``;
   ``--only-correct`` keeps answers that match the reference.
3. With ``--steps`` > 0, a LoRA adapter is trained on each file (``agentkit.train``, needs the ``train``
   extra). ``--student tiny`` is a tiny random Llama built in code, which shows the pipeline runs end to end
   on a CPU in seconds and learns nothing; pass a local Hugging Face model directory for real training.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from agentkit import load_dataset
from agentkit.backends import backend_from_spec
from agentkit.log import configure_logging
from agentkit.memory import QdrantBehaviorStore
from agentkit.pipelines import generate_bc_sft


async def generate(args: argparse.Namespace) -> dict[str, object]:
    teacher = backend_from_spec(args.backend)
    problems = load_dataset(args.dataset, limit=args.limit, seed=args.sample_seed)
    store = await QdrantBehaviorStore(path=args.store).open() if args.store else None
    try:
        report = await generate_bc_sft(problems, teacher, args.out, handbook=store,
                                       strategist=None if store else teacher, k=args.k, concurrency=args.concurrency,
                                       only_correct=args.only_correct, max_tokens=args.max_tokens,
                                       curation_tokens=args.curation_tokens)
    finally:
        await teacher.aclose()
        if store is not None:
            await store.close()
    return report.model_dump()


def train(args: argparse.Namespace, report: dict[str, object]) -> dict[str, object]:
    from agentkit.train import TrainConfig, fine_tune, tiny_llama

    results = {}
    for name, key in (("bc_sft", "conditioned_path"), ("sft", "plain_path")):
        if args.student == "tiny":
            model, tokenizer = tiny_llama()
        else:
            model, tokenizer = args.student, None
        trained = fine_tune(str(report[key]), model=model, tokenizer=tokenizer, output_dir=Path(args.out) / name,
                            config=TrainConfig(max_steps=args.steps, max_length=args.max_length))
        results[name] = trained.model_dump()
    return results


def main(args: argparse.Namespace) -> None:
    configure_logging()  # an application configures logging; the library never does
    report = asyncio.run(generate(args))
    print(json.dumps(report, indent=2) if args.json else
          f"{report['problems']} problems: {report['conditioned_rows']} behavior-conditioned rows "
          f"({report['conditioned_correct']} correct) -> {report['conditioned_path']}; {report['plain_rows']} plain "
          f"rows ({report['plain_correct']} correct) -> {report['plain_path']}; "
          f"{report['behaviors_per_problem']:.1f} behaviors per problem")
    if args.steps > 0 and report["conditioned_rows"] and report["plain_rows"]:
        trained = train(args, report)
        for name, t in trained.items():
            print(json.dumps({name: t}) if args.json else
                  f"{name}: {t['steps']} LoRA steps, loss {t['losses'][0]:.3f} -> {t['losses'][-1]:.3f}, "
                  f"{t['trainable_parameters']} trainable parameters, adapter in {t['adapter_dir']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="local")
    parser.add_argument("--dataset", default="gsm8k-train")
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--sample-seed", type=int, default=None)
    parser.add_argument("--store", default=None, help="retrieve behaviors from this handbook instead of curating")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--out", default="runs/bc_sft")
    parser.add_argument("--only-correct", action="store_true")
    parser.add_argument("--max-tokens", type=int, default=8192, help="the Teacher's output cap per answer")
    parser.add_argument("--curation-tokens", type=int, default=2048,
                        help="the Strategist's output cap per call (behaviors curated per problem, without --store)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--student", default="tiny", help="'tiny' (a random model built in code) or a model dir")
    parser.add_argument("--steps", type=int, default=2, help="LoRA steps per dataset (0: only write the data)")
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--json", action="store_true")
    main(parser.parse_args())
