"""The ``agentkit`` command.

- ``agentkit chat "PROMPT" [--backend SPEC]``: one reply and its token usage.
- ``agentkit solve --dataset gsm8k --limit 3 [--method M] [--backend SPEC] [--json]``: solve problems and
  grade them with any method of the registry (``agentkit.registry``; ``--help`` lists them with their
  parameters; ``--plugin FILE.py`` loads a user's own). Every method runs through
  ``agentkit.methods.run_method``, the path sweeps and the proxy take, and is graded by math-verify as sweeps
  grade. With ``--json`` it prints one JSON object per problem: ``id``, ``reference``, ``correct`` and the
  summary every face gives of a run (``result_summary``: ``method``, ``answer``, ``B_seq``, ``B_total``,
  ``calls``, tokens, behaviors given and cited, and the method record's own summary), plus ``record``, the
  method's whole record (PDR/SR: per-round diagnostics, drafts and workspaces).

One module per command family: ``chat``, ``solve``, ``sweep``, ``serve`` (serve, proxy, mcp, view) and
``handbook``; the parser and ``main`` live here.

- ``agentkit sweep validate SPEC``: plan every cell with the real prompts and name the infeasible ones (exit 1);
  ``sweep run`` does this first and refuses an infeasible spec unless ``--no-validate``.
- ``agentkit sweep run|resume SPEC --db PATH [--shard i/n]``, ``agentkit sweep merge OUT IN...``,
  ``agentkit sweep report DB --out DIR``: concurrent, resumable benchmark sweeps (``agentkit.sweep``).
- ``agentkit serve --store PATH [--port P] [--token T]``: the behavior handbook over HTTP (prints its URL and,
  when none was given, a generated bearer token).
- ``agentkit proxy --backend SPEC [--store HANDBOOK] [--port P] [--token T]``: an OpenAI-compatible endpoint
  (``/v1/chat/completions``, ``/v1/models``) that runs any registered method behind a ``METHOD/MODEL`` model
  name (``agentkit.faces.proxy``); prints its URL and, when none was given, a generated bearer token.
- ``agentkit mcp --store PATH|URL [--read-only] [--http --port P]``: the handbook as a Model Context Protocol
  server (``agentkit.faces.mcp_server``) over stdio (an agent starts it) or streamable HTTP.
- ``agentkit view DB [--port P]``: a local, read-only web page for a sweep database (``agentkit.faces.view``): the
  report, filters, and each cell's run (drafts, workspaces, behaviors, every call's tokens and latency).
- ``agentkit handbook build --dataset gsm8k-train --limit N --store PATH [--backend SPEC] [--sample-seed S]
  [--stratify subject] [--traces N --temperature T]``: curate behaviors (solve, reflect, extract) into a
  handbook from a (seeded, subject-stratified) sample, N traces per problem; resumable per (problem, trace).
  Every command that opens a store directory takes ``--embedder minilm|minilm:DIR|bge-m3:DIR``.
- ``agentkit handbook list|search|show|history|add|prune|export|import|stats [--store PATH|URL]``: the
  handbook from the shell (default store: ``.agentkit/handbook``; a URL goes through the service with
  ``--token`` or ``$AGENTKIT_TOKEN``).

Errors agentkit raises on purpose (``AgentkitError``) print as one line on stderr with exit code 2; a
backend failure exits 3; Ctrl-C exits 130 (a sweep says what is saved and how to resume). Log lines go to stderr
only with ``-v`` (info) or ``-vv`` (debug), or ``$AGENTKIT_LOG_LEVEL``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from agentkit.errors import AgentkitError, BackendError, validation_problems
from agentkit.log import configure_logging

from . import chat, handbook, serve, solve, sweep
from ._common import DEFAULT_BACKEND, DEFAULT_STORE, configure_otel

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentkit", description="Metacognitive reasoning with language models.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    parser.add_argument("--otel", action="store_true",
                        help="send OpenTelemetry traces (OTLP over HTTP; OTEL_EXPORTER_OTLP_ENDPOINT, default "
                             "http://localhost:4318; needs agentkit[otel]): agentkit otel ... sweep run SPEC")
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
    solve.add_argument("--behaviors", type=int, default=None, help="bci, pdr: how many behaviors to retrieve (BCI's k, PDR's behavior_k)")
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
        p.add_argument("--stop-after-unreachable", type=int, default=16, metavar="N",
                       help="stop once N cells in a row fail because a backend cannot be reached (0: never); "
                            "every finished row is kept (default: %(default)s)")
        p.add_argument("--json", action="store_true",
                       help="end with the run's summary as one JSON object instead of the accuracy table")
        p.add_argument("--executor", default="local", choices=["local", "ray"],
                       help="where cells run: this process (default) or Ray workers (pip install 'agentkit[ray]')")
        p.add_argument("--ray-address", default=None, metavar="ADDR",
                       help="a running Ray cluster (host:port of its head); default: start a local Ray")
        p.add_argument("--workers", type=int, default=None, metavar="N",
                       help="Ray workers, one CPU each (default: one per node of the cluster)")
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
    mc.add_argument("--max-sessions", type=int, default=100,
                    help="with --http: open sessions at most; a new one past it gets 503 (default: %(default)s)")
    mc.add_argument("--session-idle", type=float, default=300.0,
                    help="with --http: seconds after which an idle session is closed (default: %(default)s)")

    vw = sub.add_parser("view", help="a local web page for a sweep database: report, filters, each cell's run")
    vw.add_argument("db")
    vw.add_argument("--host", default="127.0.0.1")
    vw.add_argument("--port", type=int, default=8767, help="0 picks a free port")
    vw.add_argument("--token", default=None,
                    help="only a browser that opens the printed URL (with ?token=) may read the page (default: "
                         "$AGENTKIT_VIEW_TOKEN; generated when --host is not a loopback address)")

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
    # Error output is agentkit's own one-line messages; log lines only with -v (or $AGENTKIT_LOG_LEVEL).
    configure_logging({1: "info"}.get(args.verbose, "debug") if args.verbose else
                      os.environ.get("AGENTKIT_LOG_LEVEL", "error"))
    command = {"chat": chat.run, "solve": solve.run, "serve": serve.run_serve, "proxy": serve.run_proxy,
               "mcp": serve.run_mcp, "view": serve.run_view, "handbook": handbook.run, "sweep": sweep.run}[args.command]
    try:
        provider = configure_otel() if args.otel else None
        try:
            return asyncio.run(command(args))
        finally:
            if provider is not None:
                provider.shutdown()  # every span of the command exported before it exits
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
        if args.command in ("sweep", "solve"):
            print(_interrupted(args), file=sys.stderr)
        return 130


def _interrupted(args: argparse.Namespace) -> str:
    """What Ctrl-C left behind, and how to go on."""
    if args.command == "sweep" and getattr(args, "action", None) in ("run", "resume"):
        return (f"agentkit: interrupted. Every finished cell is saved in {args.db}; `agentkit sweep resume "
                f"{args.spec} --db {args.db}` runs the rest (cells in flight run again)")
    return "agentkit: interrupted"


if __name__ == "__main__":
    sys.exit(main())

