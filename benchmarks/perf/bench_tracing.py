"""What OpenTelemetry tracing costs a sweep: the same sweep with tracing off and on, in one run.

    python benchmarks/perf/bench_tracing.py [--items 2000] [--concurrency 64] [--repeats 3] [--baseline-tree DIR]

Compared: ``--items`` long-CoT cells at ``--concurrency`` against the scripted server (its own process, pinned to
one core, 100 ms latency; the runner pinned to the other), every cell graded and written to SQLite, wall time of
the whole ``run_sweep`` call, each run in a fresh process:

- **off**: no tracer provider (the default for a library user who configured none): every span helper returns
  at its first check;
- **on**: the OpenTelemetry SDK with a ``BatchSpanProcessor`` into an ``InMemorySpanExporter`` (the export
  itself costs nothing; what is measured is making the spans: a cell, its method run, its role step and its
  model call, four spans per long-CoT cell), flushed before the clock stops;
- with ``--baseline-tree DIR`` also **before**: the same sweep on another agentkit tree (``PYTHONPATH=DIR``,
  e.g. the commit before tracing existed), to show that tracing off costs nothing measurable.

The runs alternate (off, on[, before]) so that each repeat's configurations see the same machine; the ratio
on/off is the median of the per-repeat ratios with their min and max (target >= 0.95), and off/before likewise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import pin_to, scripted_server, write_items, write_result


async def child(url: str, items: int, concurrency: int, tracing_on: bool) -> dict[str, float]:
    exporter = provider = None
    if tracing_on:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=65536))
        trace.set_tracer_provider(provider)
    from agentkit.sweep import SweepSpec, run_sweep

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "items.jsonl"
        write_items(data, items)
        spec = SweepSpec.model_validate({
            "name": "bench", "concurrency": concurrency, "budgets": [1024], "seeds": [0],
            "datasets": [{"name": str(data)}], "methods": [{"name": "long-cot"}],
            "backends": [{"spec": f"openai-compatible:{url}?model=scripted&retries=1", "concurrency": concurrency}]})
        started = time.perf_counter()
        summary = await run_sweep(spec, Path(tmp) / "r.sqlite")
        if provider is not None:
            provider.force_flush()
        wall = time.perf_counter() - started
    spans = len(exporter.get_finished_spans()) if exporter is not None else 0
    return {"items": items, "ran": summary.ran, "failed": summary.failed, "wall_s": wall, "spans": spans}


def run_child(url: str, items: int, concurrency: int, mode: str, cpu: int | None, tree: str | None) -> dict[str, float]:
    env = dict(os.environ)
    if mode == "before" and tree:
        env["PYTHONPATH"] = tree
    out = subprocess.run([sys.executable, __file__, "--child", str(items), "--url", url, "--concurrency",
                          str(concurrency), *(["--on"] if mode == "on" else [])], capture_output=True, text=True,
                         check=True, preexec_fn=pin_to(cpu), env=env)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4), "max": round(max(values), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-tree", default=None, help="another agentkit tree to run as 'before'")
    parser.add_argument("--on", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--url", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(asyncio.run(child(args.url, args.child, args.concurrency, args.on))))
        return
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, client_cpu = (cpus[1], cpus[0]) if len(cpus) >= 2 else (None, None)
    modes = ["off", "on", *(["before"] if args.baseline_tree else [])]
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    with scripted_server(args.latency, cpu=server_cpu) as url:
        for mode in modes:  # warm caches (imports, bytecode) of every configuration
            run_child(url, 64, args.concurrency, mode, client_cpu, args.baseline_tree)
        for _ in range(args.repeats):
            for mode in modes:
                runs[mode].append(run_child(url, args.items, args.concurrency, mode, client_cpu, args.baseline_tree))
    on_over_off = [off["wall_s"] / on["wall_s"] for off, on in zip(runs["off"], runs["on"], strict=True)]
    report: dict[str, object] = {
        "items": args.items, "concurrency": args.concurrency, "latency_s": args.latency, "runs": runs,
        "throughput_on_over_off": spread(on_over_off),
        "spans_per_cell": runs["on"][0]["spans"] / args.items,
        "target": "tracing on >= 0.95 of off; off indistinguishable from before",
    }
    print(f"{args.items} long-CoT cells at concurrency {args.concurrency}, {args.latency * 1000:.0f} ms latency, "
          f"{args.repeats} alternating repeats; walls off {[round(r['wall_s'], 2) for r in runs['off']]}, on "
          f"{[round(r['wall_s'], 2) for r in runs['on']]} ({report['spans_per_cell']:.0f} spans a cell)")
    print(f"throughput with tracing on / off: {spread(on_over_off)}")
    if "before" in runs:
        off_over_before = [b["wall_s"] / off["wall_s"] for b, off in zip(runs["before"], runs["off"], strict=True)]
        report["throughput_off_over_before"] = spread(off_over_before)
        print(f"before {[round(r['wall_s'], 2) for r in runs['before']]}; throughput off / before: "
              f"{spread(off_over_before)}")
    print(f"written {write_result('tracing', report)}")


if __name__ == "__main__":
    main()
