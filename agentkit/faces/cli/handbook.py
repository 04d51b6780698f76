"""``agentkit handbook build|list|search|show|history|add|prune|export|import|stats``: the handbook from the shell."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import open_handbook, stderr_console

if TYPE_CHECKING:
    from agentkit.memory import BehaviorStore


async def _build(args: argparse.Namespace, handbook: BehaviorStore) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from agentkit.backends import backend_from_spec
    from agentkit.errors import ConfigError
    from agentkit.evaluation.datasets import load_dataset
    from agentkit.memory import topic_counts
    from agentkit.messages import BehaviorProposal
    from agentkit.pipelines.curation import build_handbook

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
    with Progress(*columns, console=stderr_console(), transient=False, disable=args.json) as bar:
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




WRITING = frozenset({"build", "add", "prune", "import"})
"""The subcommands that may create the store they are given; the others only read, and refuse a path without
one."""


async def run(args: argparse.Namespace) -> int:
    from agentkit.memory import Behavior, PrunePolicy, topic_counts

    handbook = await open_handbook(args.store, args.token, args.embedder, create=args.action in WRITING)
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


