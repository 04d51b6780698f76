"""The ``agentkit`` command.

- ``agentkit chat "PROMPT" [--backend SPEC]``: one reply and its token usage.
- ``agentkit solve --dataset gsm8k --limit 3 [--method M] [--backend SPEC] [--json]``: solve problems and
  grade them with any method of the registry (``agentkit.registry``; ``--help`` lists them with their
  parameters; ``--plugin FILE.py`` loads a user's own). Every method runs through ``Method.run``, the path
  sweeps take. With ``--json`` it prints one JSON object per problem, the output shape every method
  shares: ``id``, ``answer``, ``reference``, ``correct``, ``B_seq``, ``B_total``, ``output_tokens``,
  ``calls``; PDR/SR add ``rounds``, BCI adds ``behaviors`` (given), ``cited`` and ``behavior_tokens``.

- ``agentkit sweep validate SPEC``: plan every cell with the real prompts and name the infeasible ones (exit 1);
  ``sweep run`` does this first and refuses an infeasible spec unless ``--no-validate``.
- ``agentkit sweep run|resume SPEC --db PATH [--shard i/n]``, ``agentkit sweep merge OUT IN...``,
  ``agentkit sweep report DB --out DIR``: concurrent, resumable benchmark sweeps (``agentkit.sweep``).
- ``agentkit serve --store PATH [--port P] [--token T]``: the behavior handbook over HTTP (prints its URL and,
  when none was given, a generated bearer token).
- ``agentkit proxy --backend SPEC [--store HANDBOOK] [--port P] [--token T]``: an OpenAI-compatible endpoint
  (``/v1/chat/completions``, ``/v1/models``) that runs any registered method behind a ``METHOD/MODEL`` model
  name (``agentkit.proxy``); prints its URL and, when none was given, a generated bearer token.
- ``agentkit mcp --store PATH|URL [--read-only] [--http --port P]``: the handbook as a Model Context Protocol
  server (``agentkit.mcp_server``) over stdio (an agent starts it) or streamable HTTP.
- ``agentkit view DB [--port P]``: a local, read-only web page for a sweep database (``agentkit.view``): the
  report, filters, and each cell's run (drafts, workspaces, behaviors, every call's tokens and latency).
- ``agentkit handbook build --dataset gsm8k-train --limit N --store PATH [--backend SPEC] [--sample-seed S]
  [--stratify subject] [--traces N --temperature T]``: curate behaviors (solve, reflect, extract) into a
  handbook from a (seeded, subject-stratified) sample, N traces per problem; resumable per (problem, trace).
  Every command that opens a store directory takes ``--embedder minilm|minilm:DIR|bge-m3:DIR``.
- ``agentkit handbook list|search|show|history|add|prune|export|import|stats [--store PATH|URL]``: the
  handbook from the shell (default store: ``.agentkit/handbook``; a URL goes through the service with
  ``--token`` or ``$AGENTKIT_TOKEN``).

Errors agentkit raises on purpose (``AgentkitError``) print as one line on stderr with exit code 2; a
backend failure exits 3. Logs go to stderr (``-v`` for more).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from agentkit.errors import AgentkitError, BackendError, validation_problems
from agentkit.log import configure_logging

if TYPE_CHECKING:
    from agentkit.memory import BehaviorStore

__all__ = ["main"]

DEFAULT_BACKEND = "local"
DEFAULT_STORE = ".agentkit/handbook"


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

    from agentkit.methods import get_method, method_names
    from agentkit.registry import baseline_names

    names = method_names()
    solve = sub.add_parser(
        "solve", help="solve dataset problems and grade them", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="methods (agentkit.registry; parameters with their defaults, set with the flags below or --param):\n"
               + "\n".join(f"  {get_method(n).describe()}" for n in names))
    solve.add_argument("--dataset", default="gsm8k", help="gsm8k, math500, aime24, ... or a .jsonl path")
    solve.add_argument("--limit", type=int, default=3, help="how many problems (default: %(default)s)")
    solve.add_argument("--sample-seed", type=int, default=None,
                       help="take a seeded random sample of --limit problems instead of the first ones")
    solve.add_argument("--method", default=baseline_names()[0], choices=names,
                       help="a registered method (see below; default: %(default)s, the first baseline)")
    solve.add_argument("--plugin", action="append", default=[],
                       help="a module that registers methods (a .py path or a dotted name); repeatable")
    solve.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                       help="a method parameter (VALUE as JSON, else a string); repeatable")
    solve.add_argument("--max-tokens", type=int, default=None,
                       help="output cap per answering call (per draft for pdr/sr; default: the method's, 768)")
    solve.add_argument("--budget", type=int, default=None,
                       help="target sequential budget B_seq: derives the output caps so methods compare at the same "
                            "B_seq, and enforces it")
    solve.add_argument("--rounds", type=int, default=None, help="pdr/sr rounds")
    solve.add_argument("--drafts", type=int, default=None, help="pdr drafts per round (the last round has one)")
    solve.add_argument("--kappa", type=int, default=None, help="pdr/sr workspace bound in tokens")
    solve.add_argument("--variant", default=None, choices=["summary", "topk", "topk-per-sample", "random-k"],
                       help="pdr workspace variant")
    solve.add_argument("--k", type=int, default=None, help="drafts in an extractive workspace")
    solve.add_argument("--select", default=None, choices=["agreement", "judge"],
                       help="how top-k drafts are chosen")
    solve.add_argument("--error-analysis", action="store_true", default=None, help="sr: an error-analysis workspace")
    solve.add_argument("--samples", type=int, default=None, help="self-consistency: chains of thought to vote over")
    solve.add_argument("--attempts", type=int, default=None,
                       help="self-improve: first answers to curate from; critique-revise: first answers to revise")
    solve.add_argument("--store", default=None,
                       help="bci: the handbook to retrieve behaviors from (a store directory or a service URL)")
    solve.add_argument("--token", default=None, help="bearer token for a handbook URL (default: $AGENTKIT_TOKEN)")
    solve.add_argument("--embedder", default=None, help="the embedder of a store directory: minilm (default), minilm:DIR, bge-m3:DIR")
    solve.add_argument("--behaviors", type=int, default=None, help="bci: how many behaviors to retrieve (top-K)")
    solve.add_argument("--retrieval", default=None, choices=["embedding", "topic", "both", "utility"],
                       help="bci: retrieve by embedding similarity, by the problem's topic, both, or utility "
                            "(similarity reranked by the handbook's graded citation record)")
    solve.add_argument("--temperature", type=float, default=None)
    solve.add_argument("--seed", type=int, default=0)
    solve.add_argument("--concurrency", type=int, default=4, help="problems solved at once")
    solve.add_argument("--json", action="store_true", help="one JSON object per problem on stdout")
    solve.add_argument("--record", default=None, help="write every bus message to this JSON Lines file")
    backend_arg(solve)

    sweep = sub.add_parser("sweep", help="concurrent, resumable benchmark sweeps and their reports")
    ssub = sweep.add_subparsers(dest="action", required=True)
    for action, text in (("run", "run a sweep spec (TOML) into a results database"),
                         ("resume", "continue a sweep: finished cells are skipped (the same as run)")):
        p = ssub.add_parser(action, help=text)
        p.add_argument("spec", help="a sweep spec (TOML); see benchmarks/sweeps/")
        p.add_argument("--db", required=True, help="the SQLite results database")
        p.add_argument("--shard", default="0/1", help="i/n: run only the cells of shard i of n (default: all)")
        p.add_argument("--plugin", action="append", default=[],
                       help="a module that registers methods (a .py path or a dotted name); repeatable")
        p.add_argument("--retry-failed", default="transient", choices=["transient", "all", "none"],
                       help="failed cells already in --db to run again: those that failed for a transient reason "
                            "(backend outage, timeout; default), all, or none")
        p.add_argument("--no-validate", action="store_true",
                       help="run even if `sweep validate` finds cells whose budget leaves no useful output")
    p = ssub.add_parser("validate", help="plan every cell with the real prompts; name the infeasible ones")
    p.add_argument("spec", help="a sweep spec (TOML)")
    p.add_argument("--plugin", action="append", default=[],
                   help="a module that registers methods (a .py path or a dotted name); repeatable")
    p.add_argument("--json", action="store_true", help="every planned (dataset, method, budget) as JSON")
    p.add_argument("--throughput", type=float, default=None,
                   help="generated tokens per second of the endpoint: also print how long the spec takes at most")
    p.add_argument("--pilot", default=None,
                   help="a pilot results database: size each paired comparison from the discordance measured there "
                        "(default: an assumed discordance, --discordance)")
    p.add_argument("--discordance", type=float, default=0.25,
                   help="the assumed share of problems exactly one of two methods solves (default: %(default)s)")
    p = ssub.add_parser("merge", help="combine shard databases into one")
    p.add_argument("out", help="the database to merge into (created if missing)")
    p.add_argument("inputs", nargs="+", help="shard databases")
    p = ssub.add_parser("report", help="Markdown + HTML report and accuracy-vs-tokens plots")
    p.add_argument("db")
    p.add_argument("--out", default=None, help="output directory (needed unless --json)")
    p.add_argument("--spec", default=None, help="the sweep spec: its per-backend price table, and its grid for a "
                                                "database that recorded none (older agentkit)")
    p.add_argument("--x", default="B_seq", choices=["B_seq", "B_total", "output_tokens"], help="the plots' x axis")
    p.add_argument("--json", action="store_true",
                   help="print the summary rows as JSON (the numbers of the Markdown/HTML report) instead of the table")
    p.add_argument("--compare", nargs=2, action="append", metavar=("A", "B"), default=None,
                   help="a paired comparison of method A against method B (method keys as in the report); "
                        "repeatable; default: every method against the baselines (long CoT, bci-plain)")
    p.add_argument("--rows", action="store_true",
                   help="with --json: every row too, with its method's record read back (diagnostics and trace)")

    serve = sub.add_parser("serve", help="serve a behavior handbook over HTTP")
    serve.add_argument("--store", default=DEFAULT_STORE, help="embedded store directory (default: %(default)s)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    serve.add_argument("--token", default=None, help="bearer token (default: $AGENTKIT_TOKEN, else generated)")
    serve.add_argument("--max-body", type=int, default=1 << 20, help="largest request body in bytes")
    serve.add_argument("--embedder", default=None, help="the embedder of a store directory: minilm (default), minilm:DIR, bge-m3:DIR")

    px = sub.add_parser("proxy", help="an OpenAI-compatible endpoint that runs any method behind a model name")
    px.add_argument("--backend", default="local", help="backend spec (default: %(default)s)")
    px.add_argument("--store", default=None, help="a handbook (store directory or service URL) for bci and methods "
                                                 "with behaviors")
    px.add_argument("--store-token", default=None, help="bearer token of a handbook URL (default: $AGENTKIT_TOKEN)")
    px.add_argument("--embedder", default=None, help="the embedder of a store directory: minilm (default), minilm:DIR, bge-m3:DIR")
    px.add_argument("--host", default="127.0.0.1")
    px.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    px.add_argument("--token", default=None,
                    help="bearer token clients send as their API key (default: $AGENTKIT_PROXY_TOKEN, else generated)")
    px.add_argument("--concurrency", type=int, default=64, help="requests running at once")
    px.add_argument("--max-queue", type=int, default=1024, help="requests waiting before a 429")
    px.add_argument("--max-body", type=int, default=4 << 20, help="largest request body in bytes")
    px.add_argument("--plugin", action="append", default=[], help="a module that registers methods (repeatable)")

    mc = sub.add_parser("mcp", help="serve a behavior handbook to MCP agents (stdio, or streamable HTTP)")
    mc.add_argument("--store", default=DEFAULT_STORE, help="a store directory or a service URL (default: %(default)s)")
    mc.add_argument("--store-token", default=None, help="bearer token of a handbook URL (default: $AGENTKIT_TOKEN)")
    mc.add_argument("--embedder", default=None, help="the embedder of a store directory: minilm (default), minilm:DIR, bge-m3:DIR")
    mc.add_argument("--read-only", action="store_true", help="no add_behavior or record_usage tools")
    mc.add_argument("--http", action="store_true", help="streamable HTTP at http://HOST:PORT/mcp instead of stdio")
    mc.add_argument("--host", default="127.0.0.1")
    mc.add_argument("--port", type=int, default=8766, help="with --http; 0 picks a free port")
    mc.add_argument("--token", default=None,
                    help="with --http: the bearer token clients send (default: $AGENTKIT_MCP_TOKEN, else generated)")

    vw = sub.add_parser("view", help="a local web page for a sweep database: report, filters, each cell's run")
    vw.add_argument("db")
    vw.add_argument("--host", default="127.0.0.1")
    vw.add_argument("--port", type=int, default=8767, help="0 picks a free port")

    hb = sub.add_parser("handbook", help="inspect and edit a behavior handbook")
    hb.add_argument("--store", default=DEFAULT_STORE, help="a store directory or a service URL (default: %(default)s)")
    hb.add_argument("--token", default=None, help="bearer token for a service URL (default: $AGENTKIT_TOKEN)")
    hb.add_argument("--embedder", default=None, help="the embedder of a store directory: minilm (default), minilm:DIR, bge-m3:DIR")
    hb.add_argument("--json", action="store_true", help="JSON output")
    hsub = hb.add_subparsers(dest="action", required=True)
    p = hsub.add_parser("build", help="curate behaviors from a dataset (solve, reflect, extract); resumable")
    p.add_argument("--dataset", default="gsm8k-train", help="gsm8k-train, math-curation, ... or a .jsonl path")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--sample-seed", type=int, default=None,
                   help="draw a seeded random sample of --limit problems (default: the first ones)")
    p.add_argument("--stratify", choices=["subject"], default=None,
                   help="spread the --limit problems over the subjects in proportion to their shares")
    p.add_argument("--traces", type=int, default=1,
                   help="traces curated per problem, with seeds --seed .. --seed+N-1 (needs --temperature > 0)")
    p.add_argument("--temperature", type=float, default=None,
                   help="the Strategist's sampling temperature (default: 0, or 0.7 with --traces above 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first trace")
    p.add_argument("--from-sweep", default=None, metavar="DB",
                   help="contrastive curation from the graded PDR/SR drafts a sweep database kept (strategies from "
                        "what the correct drafts did, pitfalls from the wrong ones) instead of --dataset")
    p.add_argument("--sweep-method", default=None, help="with --from-sweep: only this method key's cells")
    p.add_argument("--max-drafts", type=int, default=8, help="with --from-sweep: drafts compared per problem")
    p.add_argument("--single-trace", action="store_true",
                   help="with --from-sweep: reflect on each problem's first draft alone (round 1, branch 0) instead "
                        "of comparing drafts: the single-trace baseline of contrastive curation")
    p.add_argument("--max-tokens", type=int, default=2048, help="output cap of each Strategist call")
    p.add_argument("--max-behaviors", type=int, default=5, help="most behaviors kept per problem")
    p.add_argument("--concurrency", type=int, default=4, help="problems curated at once")
    p.add_argument("--progress", default=None,
                   help="progress log for resuming (default: curation.jsonl in the store directory; a service "
                        "URL resumes only with this)")
    p.add_argument("--no-reference", action="store_true",
                   help="do not tell the Strategist the reference answer when it reflects")
    backend_arg(p)
    p = hsub.add_parser("list", help="latest versions")
    p.add_argument("--status", default="active", choices=["active", "deprecated", "pruned", "all"])
    p = hsub.add_parser("search", help="behaviors closest to a query")
    p.add_argument("query")
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--topic", action="append", default=None)
    p = hsub.add_parser("show", help="one behavior")
    p.add_argument("name")
    p.add_argument("--version", type=int, default=None)
    p = hsub.add_parser("history", help="every version of a behavior")
    p.add_argument("name")
    p = hsub.add_parser("add", help="add a behavior (merged into a near-duplicate if there is one)")
    p.add_argument("name")
    p.add_argument("instruction")
    p.add_argument("--topic", action="append", default=[])
    p = hsub.add_parser("prune", help="prune by policy (a dry run unless --apply)")
    p.add_argument("--unused-after-retrievals", type=int)
    p.add_argument("--unused-after-days", type=float)
    p.add_argument("--harmful-min-count", type=int)
    p.add_argument("--harmful-ratio", type=float, default=0.6)
    p.add_argument("--stale-after-days", type=float)
    p.add_argument("--capacity", type=int)
    p.add_argument("--apply", action="store_true", help="apply (reversible: `restore` undoes a prune)")
    p = hsub.add_parser("export", help="every version as JSON Lines")
    p.add_argument("file")
    p = hsub.add_parser("import", help="import JSON Lines (an export) or the paper's {name: instruction} JSON")
    p.add_argument("file")
    p.add_argument("--topic", action="append", default=[])
    hsub.add_parser("stats", help="counts by status, and active behaviors per topic")
    for action_parser in hsub.choices.values():  # `--store` / `--token` / `--json` also after the action
        action_parser.add_argument("--store", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        action_parser.add_argument("--token", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        action_parser.add_argument("--embedder", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        action_parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


async def _open_handbook(store: str, token: str | None, embedder: str | None = None) -> BehaviorStore:
    """A store directory (embedded Qdrant Edge, with ``embedder``: see ``embedder_from_spec``) or a handbook
    service URL (which embeds with its own store's embedder)."""
    import os

    from agentkit.errors import ConfigError
    from agentkit.memory import HandbookClient, QdrantBehaviorStore, embedder_from_spec

    if store.startswith(("http://", "https://")):
        if embedder is not None:
            raise ConfigError("--embedder applies to a store directory; a handbook URL embeds with its service's "
                              "own store")
        token = token or os.environ.get("AGENTKIT_TOKEN")
        if not token:
            raise ConfigError("a handbook URL needs --token or $AGENTKIT_TOKEN (printed by `agentkit serve`)")
        return HandbookClient(store, token=token)
    return await QdrantBehaviorStore(path=store, embedder=embedder_from_spec(embedder)).open()


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


# CLI flag -> method parameter (set only when given and only for methods that have the parameter).
_FLAG_PARAMS = {"max_tokens": "max_tokens", "temperature": "temperature", "rounds": "rounds", "drafts": "drafts",
                "kappa": "kappa", "variant": "variant", "k": "k", "select": "select",
                "error_analysis": "error_analysis", "samples": "samples", "attempts": "attempts",
                "retrieval": "retrieval", "store": "store"}


def _method_params(args: argparse.Namespace, method: Any) -> Any:
    """The chosen method's parameters from the flags given and ``--param NAME=VALUE``."""
    from agentkit.errors import ConfigError

    values: dict[str, Any] = {}
    fields = method.params_model.model_fields
    # --behaviors N: how many behaviors to retrieve, whichever parameter counts them (`behaviors` where it is a
    # number, else `k`)
    counted = fields.get("behaviors") is not None and fields["behaviors"].annotation is int
    flags = dict(_FLAG_PARAMS, behaviors="behaviors" if counted else "k")
    for flag, name in flags.items():
        value = getattr(args, flag)
        if value is None:
            continue
        if name in fields:  # a flag the chosen method has no parameter for is ignored (one command line serves
            values[name] = value  # several methods); --param names are checked by the method's model
    for item in args.param:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--param takes NAME=VALUE, got {item!r}")
        try:
            values[name] = json.loads(raw)
        except json.JSONDecodeError:
            values[name] = raw
    return method.params(**values)


async def _solve(args: argparse.Namespace) -> int:
    from agentkit.backends import backend_from_spec
    from agentkit.bus import Bus, Recorder
    from agentkit.errors import ConfigError
    from agentkit.evaluation.answers import extract_strict
    from agentkit.evaluation.datasets import load_dataset, numeric_answers
    from agentkit.evaluation.grader import MathVerifyGrader
    from agentkit.methods import get_method, result_summary, run_method

    if args.concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    method = get_method(args.method)
    params = _method_params(args, method)
    problems = load_dataset(args.dataset, limit=args.limit, seed=args.sample_seed)
    store = getattr(params, "store", None)
    if not store and method.needs_handbook(params):
        raise ConfigError(f"--method {method.name} needs --store (a handbook built with `agentkit handbook build`)")
    handbook = await _open_handbook(store, args.token, args.embedder) if store else None
    backend = backend_from_spec(args.backend)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    recorder = Recorder(args.record) if args.record else None
    grader = MathVerifyGrader(workers=1)  # the sweeps' grader: a problem scores the same here and there
    try:
        async with Bus(name="solve") as bus:
            if recorder is not None:
                recorder.attach(bus)

            async def one(problem: Any) -> dict[str, Any]:
                try:
                    result = await run_method(method, problem.with_(run_id=problem.problem_id), backend,
                                              params=params, budget=args.budget, seed=args.seed, handbook=handbook,
                                              bus=bus)
                except AgentkitError as exc:  # one failed problem is reported, the others go on
                    return {"id": problem.problem_id, "method": method.name, "answer": None,
                            "reference": problem.reference, "correct": None, "B_seq": 0, "B_total": 0,
                            "output_tokens": 0, "calls": 0, "error": str(exc)}
                summary = result_summary(method.name, result)
                correct = None
                if problem.reference is not None:
                    answer, _ = extract_strict(result.text, finish_reason=result.solution.finish_reason,
                                               final_number=numeric_answers(problem.dataset or args.dataset))
                    correct = (await grader.grade(answer, problem.reference, extracted=True)).correct
                row = {"id": problem.problem_id, "reference": problem.reference, "correct": correct, **summary}
                if result.record is not None:
                    row["record"] = result.record.model_dump(mode="json")
                return row

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
        await grader.aclose()
        if recorder is not None:
            await recorder.close()
        if handbook is not None:
            await handbook.close()
    if not args.json:
        graded = [r for r in rows if r["correct"] is not None]
        right = sum(1 for r in graded if r["correct"])
        print(f"\n{right}/{len(graded)} correct; {sum(r['B_total'] for r in rows)} tokens in total; "
              f"{time.perf_counter() - started:.1f} s on {backend.name}"
              + (f"; {failed} failed" if failed else ""))
    return 1 if failed else 0


def _report_rows(db_path: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``sweep report --json --rows``: each row with its method record, trace fields included (read per row)."""
    from agentkit.sweep import ResultsDB, report_row

    db = ResultsDB(db_path, create=False, readonly=True)
    try:
        return [report_row(r, db.trace(r["key"]) if r["status"] != "missing" else None) for r in rows]
    finally:
        db.close()


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


async def _sweep(args: argparse.Namespace) -> int:
    from agentkit.errors import ConfigError
    from agentkit.sweep import (
        ResultsDB,
        implied_comparisons,
        infeasible,
        load_spec,
        report_data,
        require_handbooks,
        run_sweep,
        spec_grid,
        starved,
        validate_spec,
        write_report,
    )
    from agentkit.sweep.report import budget_label
    from agentkit.sweep.validate import duration

    if args.action == "merge":
        for source in args.inputs:  # every input must be a results database before anything is written
            ResultsDB(source, create=False).close()
        db = ResultsDB(args.out)
        try:
            added = await asyncio.to_thread(db.merge, args.inputs)
            total = db.count()
        finally:
            db.close()
        print(json.dumps({"added": added, "rows": total, "db": args.out}))
        return 0
    if args.action == "report":
        if args.out is None and not args.json:
            raise ConfigError("sweep report needs --out DIR (where the report is written), or --json")
        report_spec = load_spec(args.spec) if args.spec else None
        prices = {b.spec: b.price_per_million for b in report_spec.backends} if report_spec else None
        pairs = [tuple(p) for p in args.compare] if args.compare else None
        grid = None
        if report_spec is not None:
            checked = ResultsDB(args.db, create=False, readonly=True)
            try:
                recorded = checked.grid() is not None
            finally:
                checked.close()
            if not recorded:  # an older database: the spec says which cells it should have
                grid = await asyncio.to_thread(spec_grid, report_spec)
        if args.out is None:
            out = await asyncio.to_thread(report_data, args.db, prices=prices, pairs=pairs, grid=grid)
        else:
            out = await asyncio.to_thread(write_report, args.db, args.out, x_field=args.x, prices=prices, pairs=pairs,
                                          grid=grid)
        for line in out["warnings"]:
            print(f"agentkit: warning: {line}", file=sys.stderr)
        if out["missing"]:
            print(f"agentkit: warning: {len(out['missing'])} cells of the grid have no row (never finished, or "
                  "removed); each counts as a wrong answer" + (f" and is listed in {out['markdown']}"
                                                               if "markdown" in out else ""), file=sys.stderr)
        for c in out["comparisons"]:
            if "refused" in c:
                print(f"agentkit: warning: {c['a']} vs {c['b']} @{budget_label(c['budget_kind'], c['budget'])} not "
                      f"compared: {c['refused']}", file=sys.stderr)
        if args.json:
            shown: dict[str, Any] = {key: out[key] for key in ("groups", "comparisons", "missing", "warnings", "markdown", "html",
                                               "plots") if key in out}
            if args.rows:
                shown["rows"] = await asyncio.to_thread(_report_rows, args.db, out["rows"])
            print(json.dumps(shown, default=str))
            return 0
        for g in out["groups"]:
            failed = (f", {g['failed']} failed" if g["failed"] else "") + (
                f", {g['missing']} missing" if g["missing"] else "") + (
                f", {g['over_budget']} over budget" if g["over_budget"] else "")
            print(f"{g['dataset']:<10} {g['method']:<28} @{budget_label(g['budget_kind'], g['budget']):<11} accuracy {g['accuracy']:.3f} "
                  f"[{g['ci_low']:.2f}-{g['ci_high']:.2f}] of {g['graded']} cells{failed}   B_seq {g['B_seq']:.0f}   "
                  f"B_total {g['B_total']:.0f}")
        for c in out["comparisons"]:
            if "refused" in c:
                continue
            print(f"{c['dataset']:<10} {c['a']} - {c['b']} @{budget_label(c['budget_kind'], c['budget'])}: {c['difference']:+.3f} "
                  f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] over {c['items']} items, "
                  f"wins/losses/ties {c['wins']}/{c['losses']}/{c['ties']}, McNemar p = {c['p_value']:.3g}")
        print(f"report: {out['markdown']}\nhtml:   {out['html']}")
        for dataset, path in out["plots"].items():
            print(f"plot:   {path} ({dataset})")
        return 0
    spec = load_spec(args.spec)
    if args.action == "validate" or not args.no_validate:
        # `validate` plans every cell before it checks the handbook stores, so a missing store is reported with the
        # whole plan (and exit 2, as `run` refuses it); `run` checks the stores first
        plans = await asyncio.to_thread(validate_spec, spec, stores=args.action != "validate")
        problems = infeasible(plans, spec.min_draft_tokens)
        for line in starved(plans, spec.starved_fraction):
            print(f"agentkit: warning: starved: {line}", file=sys.stderr)
        if args.action == "validate":
            if not 0 < args.discordance <= 1:
                raise ConfigError(f"--discordance must lie in (0, 1], got {args.discordance}")
            if args.pilot is not None:
                ResultsDB(args.pilot, create=False, readonly=True).close()  # a missing or bad --pilot: one line
            took = duration(plans, args.throughput) if args.throughput is not None else None
            sized = await asyncio.to_thread(implied_comparisons, spec, plans, pilot=args.pilot,
                                            discordance=args.discordance)
            if args.json:
                print(json.dumps([p.model_dump() for p in plans] if took is None and args.pilot is None else
                                 {"plans": [p.model_dump() for p in plans], "duration": took, "comparisons": sized}))
            else:
                for p in plans:
                    verdict = "ok" if p.feasible else f"INFEASIBLE on {p.infeasible}/{p.problems}"
                    caps = (f"{p.min_tokens}" if p.min_tokens == p.max_tokens else f"{p.min_tokens} to {p.max_tokens}")
                    print(f"{p.dataset:<10} {p.method[:44]:<44} {budget_label(p.budget_kind, p.budget):>11}: "
                          f"{caps:>14} tokens per answering call  {verdict}")
                if took is not None:
                    skipped = (f"; {took['infeasible_cells']:,} cells of infeasible groups left out"
                               if took["infeasible_cells"] else "")
                    print(f"{took['cells']:,} cells, at most {took['max_generated_tokens']:,} generated tokens: "
                          f"at most {took['hours']:,} h at {took['throughput']:,.0f} tokens/s (every call at its "
                          f"cap; prefill left out{skipped})")
                if sized:
                    print("\nPaired comparisons the report will make: the smallest accuracy difference each detects "
                          "with 80% power at alpha 0.05 (McNemar; problems are the sample, seeds averaged)")
                for c in sized:
                    mde = "none detectable" if c["mde"] is None else f"+/-{c['mde']:.3f}"
                    print(f"{c['dataset']:<10} {c['a'][:36]:<36} vs {c['b']:<10} {budget_label(c['budget_kind'], c['budget']):>11}: "
                          f"{c['items']:>4} problems, discordance {c['discordance']:.2f} ({c['source']}): MDE {mde}")
            for line in problems:
                print(f"agentkit: infeasible: {line}", file=sys.stderr)
            require_handbooks(spec)  # what `run` would refuse: one line, exit 2
            return 1 if problems else 0
        if problems:
            raise ConfigError(f"{args.spec}: {len(problems)} infeasible cell group(s) (`agentkit sweep validate` "
                              "lists them; --no-validate runs anyway): " + "; ".join(problems))
    try:
        index, count = (int(x) for x in args.shard.split("/"))
    except ValueError:
        raise ConfigError(f"--shard must look like i/n, got {args.shard!r}") from None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    stats = {"failed": 0, "tokens": 0}
    with Progress(TextColumn(spec.name), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
                  TimeRemainingColumn(), console=_stderr_console()) as bar:
        task = bar.add_task("sweep", total=None, status="")

        def start(cells: int, finished: int) -> None:
            # cells already in the database start the bar; the ETA's rate comes from the cells run now
            bar.reset(task, total=cells, completed=finished, status=f"{finished} already in {args.db}")

        def advance(row: dict[str, Any]) -> None:
            stats["failed"] += row["status"] != "ok"
            stats["tokens"] += row["b_total"] or 0
            bar.update(task, advance=1, status=f"{stats['failed']} failed, {stats['tokens']:,} tokens")

        summary = await run_sweep(spec, args.db, shard=(index, count), on_cell=advance, on_start=start,
                                  retry=args.retry_failed)
    print(json.dumps(summary.model_dump()))
    if summary.failed:
        print(f"agentkit: {summary.failed} of {summary.ran} cells run failed (their rows hold the errors; "
              f"`agentkit sweep resume` reruns the transient ones)", file=sys.stderr)
        return 1
    return 0


async def _serve(args: argparse.Namespace) -> int:


    from agentkit._web import start_site
    from agentkit.memory import QdrantBehaviorStore, embedder_from_spec
    from agentkit.service import create_app

    token, generated = _token(args.token, "AGENTKIT_TOKEN")
    store = QdrantBehaviorStore(path=args.store, embedder=embedder_from_spec(args.embedder))
    await store.open()  # fail here, with the store's own message, before listening
    runner, url = await start_site(create_app(store, token=token, max_body=args.max_body), args.host, args.port)
    print(f"serving the handbook {args.store} at {url}", flush=True)
    if generated:
        print(f"token: {token}", flush=True)
    await _until_stopped(runner)
    return 0


def _token(given: str | None, env: str) -> tuple[str, bool]:
    """A face's bearer token: ``given``, else ``$env``, else a generated one; and whether it was generated (to
    print it)."""
    import os

    from agentkit._web import generate_token

    token = given or os.environ.get(env)
    return (token, False) if token else (generate_token(), True)


async def _until_stopped(runner: Any) -> None:
    """Serve until SIGINT or SIGTERM, then clean ``runner`` up."""
    import gc
    import signal

    # Everything allocated while starting (~100k objects: modules, schemas, the app) lives as long as the
    # server: moved out of the collector's reach, full collections stop rescanning it on every pass.
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


async def _proxy(args: argparse.Namespace) -> int:
    from agentkit.backends import backend_from_spec
    from agentkit.proxy import Proxy, create_proxy_app, run_proxy_runner

    token, generated = _token(args.token, "AGENTKIT_PROXY_TOKEN")
    handbook = await _open_handbook(args.store, args.store_token, args.embedder) if args.store else None
    backend = backend_from_spec(args.backend)
    try:
        proxy = Proxy(backend, handbook=handbook, token=token, concurrency=args.concurrency, max_queue=args.max_queue)
        app = create_proxy_app(proxy, max_body=args.max_body)
    except BaseException:
        await backend.aclose()
        if handbook is not None:
            await handbook.close()
        raise
    runner, url = await run_proxy_runner(app, args.host, args.port)
    print(f"agentkit proxy for {proxy.model_name} at {url}/v1 (methods: METHOD/{proxy.model_name})", flush=True)
    if generated:
        print(f"token: {token}", flush=True)
    await _until_stopped(runner)
    return 0


async def _mcp(args: argparse.Namespace) -> int:
    import os

    from agentkit.mcp_server import serve_http, serve_stdio

    if args.http:
        token, generated = _token(args.token, "AGENTKIT_MCP_TOKEN")
        handbook = await _open_handbook(args.store, args.store_token, args.embedder)

        def ready(url: str) -> None:
            print(f"serving the handbook {args.store} to MCP clients at {url}", flush=True)
            if generated:
                print(f"token: {token}", flush=True)

        try:
            await serve_http(handbook, token=token, host=args.host, port=args.port, read_only=args.read_only,
                             on_ready=ready)
        finally:
            await handbook.close()
        return 0
    # stdio: the protocol owns file descriptor 1. Anything else that writes there (a library's print, a progress
    # bar from native code) goes to stderr instead of corrupting the stream.
    protocol = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(protocol, "w", encoding="utf-8")  # lives as long as the process
    handbook = await _open_handbook(args.store, args.store_token, args.embedder)
    try:
        await serve_stdio(handbook, read_only=args.read_only)
    finally:
        await handbook.close()
    return 0


async def _view(args: argparse.Namespace) -> int:
    from agentkit.view import Viewer, create_view_app, run_view_runner

    viewer = await asyncio.to_thread(Viewer, args.db)
    runner, url = await run_view_runner(create_view_app(viewer), args.host, args.port)
    print(f"viewing {args.db} ({len(viewer.rows)} cells) at {url}", flush=True)
    await _until_stopped(runner)
    return 0


async def _build(args: argparse.Namespace, handbook: BehaviorStore) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from agentkit.backends import backend_from_spec
    from agentkit.errors import ConfigError
    from agentkit.evaluation.datasets import load_dataset
    from agentkit.memory import topic_counts
    from agentkit.messages import BehaviorProposal
    from agentkit.methods.curation import build_handbook

    if args.traces < 1:
        raise ConfigError(f"--traces must be at least 1, got {args.traces}")
    temperature = args.temperature if args.temperature is not None else (0.7 if args.traces > 1 else 0.0)
    contrast = None
    if args.from_sweep is not None:
        from agentkit.sweep import graded_drafts

        if args.traces != 1:
            raise ConfigError("--from-sweep compares a sweep's drafts; --traces does not apply")
        problems, contrast = await graded_drafts(args.from_sweep, method=args.sweep_method, max_drafts=args.max_drafts,
                                                 single=args.single_trace)
        problems = problems[:args.limit] if args.limit is not None else problems
    elif args.single_trace:
        raise ConfigError("--single-trace picks one of a sweep's drafts per problem; it needs --from-sweep DB")
    else:
        problems = load_dataset(args.dataset, limit=args.limit, seed=args.sample_seed, stratify=args.stratify)
    subjects: dict[str, int] = {}
    for problem in problems:
        subject = problem.topics[0] if problem.topics else ""
        subjects[subject] = subjects.get(subject, 0) + 1
    backend = backend_from_spec(args.backend)
    columns = (TextColumn("curating"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
               TimeRemainingColumn())
    counts = {"behaviors": 0, "failed": 0}
    with Progress(*columns, console=_stderr_console(), transient=False, disable=args.json) as bar:
        task = bar.add_task("build", total=len(problems) * args.traces, status="")

        def advance(problem_id: str, proposal: BehaviorProposal | None) -> None:
            if proposal is None:
                counts["failed"] += 1
            else:
                counts["behaviors"] += len(proposal.behaviors)
            bar.update(task, advance=1, status=f"{counts['behaviors']} behaviors, {counts['failed']} failed")

        try:
            report = await build_handbook(problems, backend, handbook, concurrency=args.concurrency,
                                          max_tokens=args.max_tokens, max_behaviors=args.max_behaviors,
                                          reveal_reference=not args.no_reference, on_problem=advance,
                                          progress=args.progress, traces=args.traces, temperature=temperature,
                                          seed=args.seed, contrast=contrast, single_trace=args.single_trace)
        finally:
            await backend.aclose()
    return {**report.model_dump(), "active": await handbook.count(), "store": args.store,
            "sampled_subjects": dict(sorted(subjects.items(), key=lambda kv: (-kv[1], kv[0]))),
            "behaviors_per_topic": await topic_counts(handbook)}


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


async def _handbook(args: argparse.Namespace) -> int:
    from agentkit.memory import Behavior, PrunePolicy, topic_counts

    handbook = await _open_handbook(args.store, args.token, args.embedder)
    out: Any
    try:
        action = args.action
        if action == "build":
            out = await _build(args, handbook)
        elif action == "list":
            out = await handbook.list_behaviors(status=None if args.status == "all" else args.status)
        elif action == "search":
            out = await handbook.search(args.query, args.k, topics=args.topic)
        elif action == "show":
            out = await handbook.get(args.name, args.version)
        elif action == "history":
            out = await handbook.history(args.name)
        elif action == "add":
            out = await handbook.add(Behavior(name=args.name, instruction=args.instruction, topics=tuple(args.topic)))
        elif action == "prune":
            policy = PrunePolicy(
                unused_after_retrievals=args.unused_after_retrievals, unused_after_days=args.unused_after_days,
                harmful_min_count=args.harmful_min_count, harmful_ratio=args.harmful_ratio,
                stale_after_days=args.stale_after_days, capacity=args.capacity)
            out = await handbook.prune(policy, dry_run=not args.apply)
        elif action == "export":
            out = {"exported": await handbook.export_jsonl(args.file), "file": args.file}
        elif action == "import":
            text = await asyncio.to_thread(_read_text, args.file)
            if text.lstrip().startswith("{") and "\n{" not in text.strip():
                out = await handbook.import_behavior_json(text, topics=tuple(args.topic))
            else:
                out = await handbook.import_jsonl(args.file)
        else:  # stats
            out = {**{s: await handbook.count(status=s) for s in ("active", "deprecated", "pruned")},
                   "behaviors_per_topic": await topic_counts(handbook)}
    finally:
        await handbook.close()
    _print_handbook(out, args.json)
    return 0


def _read_text(path: str) -> str:
    """A UTF-8 text file's content; a missing file, a directory or bytes that are not UTF-8 are a ``ConfigError``."""
    from agentkit.errors import ConfigError

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"no file at {path}" if not file.exists() else f"{path} is not a file")
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _print_handbook(out: Any, as_json: bool) -> None:
    from pydantic import BaseModel

    def plain(x: Any) -> Any:
        if isinstance(x, BaseModel):
            return x.model_dump(mode="json")
        if isinstance(x, list):
            return [plain(i) for i in x]
        return x

    data = plain(out)
    if as_json:
        print(json.dumps(data, indent=None if isinstance(data, list) else 2))
        return
    rows = data if isinstance(data, list) else [data]
    for row in rows:
        if isinstance(row, dict) and "behavior" in row:  # a search hit
            b = row["behavior"]
            print(f"{row['score']:.3f}  {b['name']} (v{b['version']}): {b['instruction']}")
        elif isinstance(row, dict) and "instruction" in row:
            s = row["stats"]
            print(f"{row['name']} v{row['version']} [{row['status']}] {row['instruction']}"
                  f"  (retrieved {s['retrieved']}, cited {s['cited']}, correct {s['cited_correct']}, "
                  f"wrong {s['cited_wrong']}){'  - ' + row['note'] if row.get('note') else ''}")
        elif isinstance(row, dict) and "reason" in row:
            print(f"{row['name']}: {row['reason']}")
        elif isinstance(row, dict) and set(row) == {"active", "deprecated", "pruned", "behaviors_per_topic"}:
            print(f"active {row['active']}, deprecated {row['deprecated']}, pruned {row['pruned']}")
            print("active behaviors per topic:" if row["behaviors_per_topic"] else "no active behaviors")
            for topic, count in row["behaviors_per_topic"].items():
                print(f"  {count:>5}  {topic or '(no topic)'}")
        else:
            print(json.dumps(row))


def _load_plugins(argv: Sequence[str]) -> None:
    """Import the ``--plugin`` modules before the parser lists the registered methods."""
    from agentkit.methods import load_plugin

    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--plugin", action="append", default=[])
    for plugin in early.parse_known_args(list(argv))[0].plugin:
        load_plugin(plugin)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        _load_plugins(argv)
    except AgentkitError as exc:
        print(f"agentkit: {exc}", file=sys.stderr)
        return 2
    args = _parser().parse_args(argv)
    configure_logging({0: "warning", 1: "info"}.get(args.verbose, "debug") if args.verbose else None)
    command = {"chat": _chat, "solve": _solve, "serve": _serve, "proxy": _proxy, "mcp": _mcp, "view": _view,
               "handbook": _handbook,
               "sweep": _sweep}[args.command]
    try:
        return asyncio.run(command(args))
    except BackendError as exc:
        print(f"agentkit: backend error: {exc}", file=sys.stderr)
        return 3
    except AgentkitError as exc:
        print(f"agentkit: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        problems = "; ".join(f"{field}: {reason}" for field, reason in validation_problems(exc))
        print(f"agentkit: invalid input: {problems}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error, UnicodeError) as exc:  # a path that is not what it should be, and the like
        named = isinstance(exc, OSError) and exc.filename
        print(f"agentkit: {exc.filename}: {exc.strerror or exc}" if named else f"agentkit: {exc}",  # type: ignore[union-attr]
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
