"""Your own test-time method, registered once and run everywhere agentkit runs methods.

    python recipes/custom_method.py [--backend local] [--limit 3]
    agentkit solve --plugin recipes/custom_method.py --method adaptive-consistency --limit 3 --budget 1200
    agentkit sweep run my_spec.toml --db r.sqlite      # with  plugins = ["recipes/custom_method.py"]

The method here is **adaptive consistency** (after Aggarwal et al., 2023): draw chains of thought one after
another and stop as soon as ``agree`` of them give the same answer (or after ``max_samples``), answering with
the majority. It spends fewer tokens than fixed-N self-consistency on easy problems, more on hard ones.

What a method needs, all in this file:

1. a parameter model (a ``MethodParams`` subclass: defaults, bounds, types; the CLI's ``--param``, sweep specs'
   ``params`` and ``SolveRequest.params`` are validated against it);
2. a record (a ``MethodRecord`` subclass): what the method keeps of a run besides its answer; sweep rows store
   it whole, ``sweep report --json --rows`` reads it back, the CLI and the proxy summarize it;
3. a ``Method[P]`` subclass with a ``name``, a ``summary``, the prompt ``templates`` it renders (they make the
   ``prompt_hash`` stored with every result) and ``run(problem, ctx)``, which composes roles: here it attaches a
   Student to the run's bus and sends it ``AnswerRequest`` messages, one per sample, each in its own round
   (they run one after another, so each adds to ``B_seq``). ``ctx`` brings the typed params, the backend, the
   budget and the run's ledger; ``ctx.derive_seed`` gives each sample its own seed, ``ctx.call_cap`` the output
   cap a budget leaves;
4. ``register(...)``. Nothing else in agentkit lists methods.
"""

from __future__ import annotations

import argparse
import asyncio

from pydantic import Field

from agentkit import load_dataset
from agentkit.backends import backend_from_spec
from agentkit.evaluation.answers import answers_match
from agentkit.log import configure_logging
from agentkit.messages import AnswerRequest, Problem, Solution
from agentkit.methods import METHODS, Method, MethodParams, MethodRecord, MethodResult, RunContext, register
from agentkit.methods.self_consistency import majority_vote
from agentkit.roles import Student, ask, attached


class AdaptiveParams(MethodParams):
    max_samples: int = Field(default=5, ge=1, le=64)
    """Most chains of thought to draw."""
    agree: int = Field(default=2, ge=1)
    """Stop once this many samples give the same answer."""
    min_temperature: float = Field(default=0.7, ge=0.0)
    """Samples are drawn at max(temperature, min_temperature) so that they differ."""


class AdaptiveRecord(MethodRecord):
    samples: int
    """Chains of thought drawn before the vote."""
    votes: list[int]
    """The answer groups' sizes, largest first."""


class AdaptiveConsistency(Method[AdaptiveParams]):
    name = "adaptive-consistency"
    summary = "chains of thought one after another until `agree` of them match (a recipe's own method)"
    params_model = AdaptiveParams
    record_model = AdaptiveRecord
    templates = ("long_cot",)

    async def run(self, problem: Problem, ctx: RunContext[AdaptiveParams]) -> MethodResult:
        p, ledger = ctx.params, ctx.ledger  # the ledger enforces the sequential budget: samples share it
        samples: list[Solution] = []
        async with attached(ctx.bus, problem.run_id, [(Student(ctx.backend, ledger=ledger), 1)]) as active:
            for i in range(p.max_samples):
                if ledger.budget.sequential and ledger.remaining(stage=f"{i + 1}:student") <= 0:
                    break
                samples.append(await ask(active, problem.derive(
                    AnswerRequest, sender=self.name, problem=problem, max_tokens=p.max_tokens,
                    temperature=max(p.temperature, p.min_temperature),
                    seed=ctx.derive_seed(problem.problem_id, "sample", i), round=i + 1, final=False,
                    method="sample"), Solution))
                winner, groups = majority_vote([s.answer for s in samples])
                if groups and len(groups[0]) >= p.agree:
                    break
        winner, groups = majority_vote([s.answer for s in samples])
        chosen = samples[winner if winner is not None else 0]
        ledger.mark_final(next(r.call_id for r in ledger.records if r.round == (winner or 0) + 1))
        solution = chosen.with_(method=self.name, b_seq=ledger.b_seq, b_total=ledger.b_total)
        return MethodResult(solution=solution, ledger=ledger,
                            record=AdaptiveRecord(samples=len(samples), votes=[len(g) for g in groups]))


if "adaptive-consistency" not in METHODS:  # `agentkit solve --plugin` may load this file more than once
    register(AdaptiveConsistency())


async def main(args: argparse.Namespace) -> None:
    backend = backend_from_spec(args.backend)
    method = METHODS["adaptive-consistency"]
    try:
        for problem in load_dataset("gsm8k", limit=args.limit):
            result = await method.solve(problem, backend, params={"max_tokens": args.max_tokens})
            print(f"{problem.problem_id}: {result.answer} (reference {problem.reference}, "
                  f"{'correct' if answers_match(result.answer, problem.reference) else 'wrong'}) after "
                  f"{result.record.samples} samples; B_seq={result.ledger.b_seq} B_total={result.ledger.b_total}")
    finally:
        await backend.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="local")
    parser.add_argument("--limit", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=384)
    configure_logging()  # an application configures logging; the library never does
    asyncio.run(main(parser.parse_args()))
