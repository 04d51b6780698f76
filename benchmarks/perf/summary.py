"""One table of every performance figure: what was measured, the baseline it is a ratio against (measured in the
same run), the spread over repeats, the target, and whether it is met.

    python benchmarks/perf/summary.py            # writes results/SUMMARY.md and the README's Performance table
    python benchmarks/perf/summary.py --check    # exit 1 when the README's table differs from the results

It reads every ``results/<name>.json`` the benchmarks wrote. A missing or unreadable result is a row that says so
(its status "no result"), never a crash; a figure over its target prints **not met**. The README's table lives
between the ``<!-- perf-summary:begin -->`` and ``<!-- perf-summary:end -->`` markers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
RESULTS = HERE / "results"
README = HERE.parents[1] / "README.md"
BEGIN, END = "<!-- perf-summary:begin -->", "<!-- perf-summary:end -->"


@dataclass
class Row:
    benchmark: str
    figure: str
    baseline: str
    measured: str
    target: str
    met: bool | None
    """None: no target (a figure for context), or no result to judge."""
    missing: str = ""

    def status(self) -> str:
        if self.missing:
            return f"no result ({self.missing})"
        if self.met is None:
            return "context"
        return "met" if self.met else "**not met**"


def _spread(values: list[float], fmt: str = "{:.2f}") -> str:
    if len(values) < 2:
        return fmt.format(values[0]) if values else "-"
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def _pct(s: dict[str, float]) -> str:
    return f"{s['median_percent']:+.1f}% ({s['min_percent']:+.1f} to {s['max_percent']:+.1f})"


def bus(d: dict[str, Any]) -> Iterator[Row]:
    slower = d["agentkit_time_over_bare_queue"]
    yield Row("bench_bus", "bus time / bare queue time, 100k messages", "bare asyncio.Queue(1024) + consumer",
              f"{slower['median']:.2f}x ({slower['min']:.2f}-{slower['max']:.2f})", "<= 2x", slower["median"] <= 2.0)
    ratio = d["ratio_agentkit_over_autogen"]
    yield Row("bench_bus", "bus throughput / autogen-core's", "autogen-core SingleThreadedAgentRuntime",
              f"{ratio:.0f}x", ">= 3x", ratio >= 3.0)


def overhead(d: dict[str, Any]) -> Iterator[Row]:
    for transport, bare in (("aiohttp", "bare aiohttp session"), ("sdk", "bare SDK post")):
        s = d["overhead"][f"{transport}: agentkit (retry+limits) over bare"]
        yield Row("bench_overhead", f"middleware wall time over bare, {transport}", bare, _pct(s), "<= +5%",
                  s["median_percent"] <= 5.0)
        cpu = d.get("cpu_overhead", {}).get(f"{transport}: agentkit (retry+limits) over bare")
        if cpu is not None:
            per_call = d["client_cpu_us_per_call"]
            yield Row("bench_overhead", f"middleware client CPU per call over bare, {transport}", bare,
                      f"{_pct(cpu)}; {per_call[f'agentkit {transport}']:.0f} vs {per_call[f'bare {transport}']:.0f} us",
                      "-", None)
    s = d["transport_comparison"]["sdk create over bare aiohttp"]
    yield Row("bench_overhead", "transport: SDK chat.completions.create over bare aiohttp (not an overhead)",
              "bare aiohttp session", _pct(s), "-", None)


def concurrency(d: dict[str, Any]) -> Iterator[Row]:
    for latency, by_m in d["results"].items():
        worst = max(r["ratio_to_latency"] for r in by_m.values())
        yield Row("bench_concurrency", f"wall / latency, M = {', '.join(by_m)} concurrent, L = {latency} s",
                  "server latency L", f"{worst:.3f}x (worst M)", "<= 1.1x", worst <= 1.1)


def pdr_concurrency(d: dict[str, Any]) -> Iterator[Row]:
    yield Row("bench_pdr_concurrency", f"PDR round of {d['drafts']} drafts / one draft", "one draft, same run",
              f"{d['ratio']:.3f}x", "<= 1.15x", d["ratio"] <= 1.15)


def _sweep(name: str, d: dict[str, Any], *, judged: bool = True) -> Iterator[Row]:
    """``judged=False``: the SDK-transport sweep, whose bare baseline is aiohttp (a transport comparison, shown
    for context; the targets apply to the default transport)."""
    mode = "pinned" if "pinned" in d else "unpinned"
    m = d[mode]
    of_ideal = [r["throughput_vs_ideal"] for r in m["runs"]]
    paired = [r["throughput_vs_ideal"] / b["throughput_vs_ideal"] for r, b in zip(m["runs"], m["bare_runs"],
                                                                                    strict=True)]
    label = f"{name} ({d.get('http', 'aiohttp')}, {mode}, {len(of_ideal)} repeats)"
    yield Row(label, "sweep throughput / ideal, 2,000 cells", "ideal: concurrency / latency",
              _spread(of_ideal, "{:.1%}"), ">= 90%" if judged else "-",
              statistics.median(of_ideal) >= 0.90 if judged else None)
    yield Row(label, "sweep throughput / bare client's", "bare aiohttp client, same requests, paired",
              _spread(paired, "{:.1%}"), ">= 97%" if judged else "-",
              statistics.median(paired) >= 0.97 if judged else None)


def proxy(d: dict[str, Any]) -> Iterator[Row]:
    a, b = d["agentkit_over_direct"], d["agentkit_over_bare"]
    yield Row("bench_proxy", "pass-through via agentkit proxy / direct", "straight to the upstream",
              f"{a['median']:.2f}x ({a['min']:.2f}-{a['max']:.2f})", "<= 1.10x", a["median"] <= 1.10)
    yield Row("bench_proxy", "agentkit proxy / bare aiohttp forwarder", "bare forwarder, same cores",
              f"{b['median']:.2f}x ({b['min']:.2f}-{b['max']:.2f})", "<= 1.05x", b["median"] <= 1.05)
    if "ttfb_over_direct" in d:
        t = d["ttfb_over_direct"]
        yield Row("bench_proxy", "streamed pass-through, time to first byte / direct", "straight to the upstream",
                  f"{t['median']:.3f}x ({t['min']:.3f}-{t['max']:.3f})", "<= 1.05x", t["median"] <= 1.05)


def durability(d: dict[str, Any]) -> Iterator[Row]:
    yield Row("bench_durability", "usage events per second (embedded store)", "-",
              _spread([float(x) for x in d["usage_events_per_s"]], "{:,.0f}"), "-", None)


def mcp(d: dict[str, Any]) -> Iterator[Row]:
    yield Row("bench_mcp", f"MCP stdio search p50, {d['behaviors']:,} behaviors", "the same search in-process",
              f"{d['mcp_stdio']['p50_ms']:.1f} ms vs {d['in_process']['p50_ms']:.1f} ms", "-", None)


def view(d: dict[str, Any]) -> Iterator[Row]:
    r = d["first_render_s"]
    yield Row("bench_view", f"viewer first render, {d['cells']:,} cells", "-",
              f"{r['median']:.2f} s ({r['min']:.2f}-{r['max']:.2f})", "-", None)


def memory(d: dict[str, Any]) -> Iterator[Row]:
    real = d["real"].get("100000")
    if real is None:
        raise KeyError("no 100k run on real embeddings")
    indexed = real["store"]["indexed"]
    yield Row("bench_memory", "store search p50 at 100k real embeddings, recall@10",
              f"numpy exact {real['numpy_exact']['p50_ms']:.2f} ms; FAISS HNSW {real['faiss_hnsw']['p50_ms']:.2f} ms",
              f"{indexed['p50_ms']:.2f} ms, recall {indexed['recall_at_10']:.4f}", "<= 1 ms at recall >= 0.99",
              indexed["p50_ms"] <= 1.0 and indexed["recall_at_10"] >= 0.99)


def tracing(d: dict[str, Any]) -> Iterator[Row]:
    on = d["throughput_on_over_off"]
    yield Row("bench_tracing", f"sweep throughput, tracing on / off ({d['items']:,} cells, "
              f"{d['spans_per_cell']:.0f} spans a cell)", "the same sweep, tracing off",
              f"{on['median']:.3f} ({on['min']:.3f}-{on['max']:.3f})", ">= 0.95", on["median"] >= 0.95)
    before = d.get("throughput_off_over_before")
    if before is not None:
        yield Row("bench_tracing", "sweep throughput, tracing off / before tracing existed",
                  "the tree before tracing", f"{before['median']:.3f} ({before['min']:.3f}-{before['max']:.3f})",
                  "no measurable cost", None)


def replicas(d: dict[str, Any]) -> Iterator[Row]:
    r = d["vs_capacity"]
    yield Row("bench_replicas", f"sweep over 2 replicas ({d['latency_s']['fast'] * 1000:.0f} / "
              f"{d['latency_s']['slow'] * 1000:.0f} ms, {d['per_replica']} each) / their capacity",
              f"{d['capacity_per_s']:.0f} calls/s", f"{r['median']:.3f} ({r['min']:.3f}-{r['max']:.3f}); fast "
              f"served {d['share_fast']:.0%}", ">= 0.90", r["median"] >= 0.90)


def ray_executor(d: dict[str, Any]) -> Iterator[Row]:
    r, w, loss = d["ray_over_local_throughput"], d["ray_over_local_with_start"], d["worker_loss"]
    yield Row("bench_ray", f"sweep throughput, Ray executor (2 one-CPU nodes) / local, {d['items']:,} cells",
              "local executor, same concurrency", f"{r['median']:.3f} ({r['min']:.3f}-{r['max']:.3f})", ">= 0.90",
              r["median"] >= 0.90)
    yield Row("bench_ray", "the same, the workers' start included", "local executor",
              f"{w['median']:.3f} ({w['min']:.3f}-{w['max']:.3f})", "-", None)
    yield Row("bench_ray", "cells lost when a worker's node dies mid-sweep", "-",
              f"{loss['lost']} lost, {loss['requeued']} requeued"
              + (f", first requeue {loss['seconds_to_first_requeue']:.2f} s after" if loss["seconds_to_first_requeue"]
                 is not None else ""), "0 lost", loss["lost"] == 0)


SOURCES: dict[str, Callable[[dict[str, Any]], Iterator[Row]]] = {
    "bus": bus, "overhead": overhead, "concurrency": concurrency, "pdr_concurrency": pdr_concurrency,
    "sweep": lambda d: _sweep("bench_sweep", d), "sweep_sdk": lambda d: _sweep("bench_sweep", d, judged=False), "proxy": proxy,
    "durability": durability, "mcp": mcp, "view": view, "memory": memory, "tracing": tracing, "replicas": replicas,
    "ray": ray_executor,
}


def rows(results: Path = RESULTS) -> list[Row]:
    """Every figure, in ``SOURCES`` order; a result that is missing or cannot be read is one row saying so."""
    out: list[Row] = []
    for name, extract in SOURCES.items():
        path = results / f"{name}.json"
        try:
            data = json.loads(path.read_text())
            out.extend(extract(data))
        except FileNotFoundError:
            out.append(Row(f"{name}.json", "-", "-", "-", "-", None, missing="missing"))
        except (ValueError, KeyError, TypeError, AttributeError, ZeroDivisionError, statistics.StatisticsError) as exc:
            out.append(Row(f"{name}.json", "-", "-", "-", "-", None,
                           missing=f"unreadable: {type(exc).__name__}: {exc}"[:120]))
    return out


def table(found: list[Row]) -> str:
    judged = [r for r in found if r.met is not None and not r.missing]
    met = sum(1 for r in judged if r.met)
    lines = [f"{met} of {len(judged)} targets met.", "",
             "| benchmark | figure | baseline (same run) | measured (median, spread over repeats) | target | status |",
             "|---|---|---|---|---|---|"]
    for r in found:
        cells = [r.benchmark, r.figure, r.baseline, r.measured, r.target, r.status()]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def replace_between_markers(text: str, block: str) -> str:
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README has no {BEGIN} ... {END} block")
    return text[:start + len(BEGIN)] + "\n" + block + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--check", action="store_true", help="exit 1 if the README's table is not the results'")
    args = parser.parse_args(argv)
    block = table(rows(args.results))
    try:
        readme = args.readme.read_text()
        updated = replace_between_markers(readme, block)
    except (OSError, ValueError) as exc:
        print(f"summary: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if updated != readme:
            print(f"summary: {args.readme}'s performance table differs from {args.results}; "
                  "run python benchmarks/perf/summary.py", file=sys.stderr)
            return 1
        return 0
    (args.results / "SUMMARY.md").write_text("# Performance summary\n\n" + block)
    args.readme.write_text(updated)
    print(block, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
