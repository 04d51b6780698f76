"""What `agentkit proxy` costs a client: the same plain pass-through requests, directly and through the proxy.

    python benchmarks/perf/bench_proxy.py [--requests 256] [--waves 4] [--repeats 5] [--latency 0.1] [--optillm BIN]

The upstream is the scripted OpenAI-compatible server (``agentkit.testing``) in its own process with a fixed
latency (100 ms); the proxy is ``agentkit proxy`` in its own process (``--concurrency`` above the load, so
nothing queues). The client is one aiohttp session in this process sending ``--requests`` concurrent
``/v1/chat/completions`` requests (the same body, model ``scripted``: a pass-through, one upstream call each),
``--waves`` times one after the other. Compared: wall time of the whole load sent to the server directly vs
to the proxy (same client, same transport: HTTP/1.1 on 127.0.0.1, same bodies, same upstream); the modes
alternate within each repeat and the figure is the median ratio with its min-max over repeats. With
``--optillm BIN`` (an ``optillm`` executable, e.g. from a separate virtual environment), optillm's proxy in
front of the same upstream is timed the same way (model ``none-scripted``: its plain pass-through).

Streaming: ``--ttfb N`` streamed pass-through requests (``"stream": true``), one at a time, directly and through
the proxy, alternating: the median time from sending a request to the first byte of its event stream
(``ttfb_over_direct``: the upstream answers after its latency, so the figure is what the proxy adds before the
client sees anything).

A second baseline, ``bare``, is the floor of any proxy built on aiohttp: a 20-line aiohttp server in its own
process that forwards each request's bytes to the upstream through one ``ClientSession`` and returns the
upstream's bytes (no parsing, no validation, no auth). ``agentkit_over_bare`` is what agentkit adds on top of
the second HTTP hop itself; ``bare_over_direct`` is the hop's own cost on this machine (client, proxy and
upstream processes share its cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import aiohttp

from _common import scripted_server, write_result

TOKEN = "bench-proxy"
BODY = {"messages": [{"role": "user", "content": "What is 2 + 3? Answer with the number."}], "max_tokens": 16}


async def load(url: str, model: str, requests: int, waves: int, headers: dict[str, str]) -> float:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one() -> None:
            async with session.post(url, json={**BODY, "model": model}, headers=headers) as r:
                data = await r.json()
                if r.status != 200 or not data["choices"][0]["message"]["content"]:
                    raise RuntimeError(f"{url}: {r.status} {data}")

        await asyncio.gather(*(one() for _ in range(min(requests, 32))))  # warm the connections
        started = time.perf_counter()
        for _ in range(waves):
            await asyncio.gather(*(one() for _ in range(requests)))
        return time.perf_counter() - started


async def first_bytes(url: str, model: str, count: int, headers: dict[str, str]) -> list[float]:
    """Seconds to the first byte of a streamed reply, for ``count`` requests one after another."""
    out = []
    async with aiohttp.ClientSession() as session:
        for i in range(count + 2):  # two to warm the connection
            started = time.perf_counter()
            async with session.post(url, json={**BODY, "model": model, "stream": True}, headers=headers) as r:
                first = await r.content.readany()
                waited = time.perf_counter() - started
                if r.status != 200 or not first.startswith(b"data: "):
                    raise RuntimeError(f"{url}: {r.status} {first[:200]!r}")
                await r.read()
            if i >= 2:
                out.append(waited)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux ``/proc``)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(cmd: list[str], marker: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if marker in line:
            return proc, line
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"{cmd[0]} did not start")


def serve_bare(upstream: str) -> None:
    """The ``bare`` baseline: forward the body bytes to ``upstream`` and answer its bytes (prints its URL)."""
    from aiohttp import web

    async def run() -> None:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

        async def forward(request: web.Request) -> web.Response:
            async with session.post(f"{upstream}/chat/completions", data=await request.read(),
                                    headers={"Content-Type": "application/json"}) as r:
                return web.Response(body=await r.read(), status=r.status, content_type="application/json")

        app = web.Application()
        app.router.add_post("/v1/chat/completions", forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        print(f"bare at http://127.0.0.1:{port}/v1", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


def wait_http(url: str) -> None:
    import urllib.request

    for _ in range(600):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"{url} never answered")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=256)
    ap.add_argument("--waves", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--ttfb", type=int, default=40, help="streamed requests per mode and repeat (0: none)")
    ap.add_argument("--optillm", default=None, help="an optillm executable to time the same way")
    ap.add_argument("--serve-bare", default=None, help=argparse.SUPPRESS)  # the bare forwarder's own process
    args = ap.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    procs: list[subprocess.Popen[str]] = []
    with scripted_server(args.latency) as upstream:
        proxy, line = start([sys.executable, "-m", "agentkit", "proxy", "--backend",
                             f"openai-compatible:{upstream}?model=scripted&retries=1", "--port", "0", "--token", TOKEN,
                             "--concurrency", str(4 * args.requests)], " at ")
        procs.append(proxy)
        proxy_url = line.split(" at ")[1].split()[0]
        bare, line = start([sys.executable, __file__, "--serve-bare", upstream], " at ")
        procs.append(bare)
        bare_url = line.split(" at ")[1].split()[0]
        targets: dict[str, tuple[str, str, dict[str, str]]] = {
            "direct": (f"{upstream}/chat/completions", "scripted", {}),
            "bare": (f"{bare_url}/chat/completions", "scripted", {}),
            "agentkit": (f"{proxy_url}/chat/completions", "scripted", {"Authorization": f"Bearer {TOKEN}"}),
        }
        if args.optillm:
            port = 18765
            env = {**os.environ, "OPENAI_API_KEY": "unused", "OPTILLM_BASE_URL": upstream}
            opt = subprocess.Popen([args.optillm, "--base-url", upstream, "--port", str(port)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            procs.append(opt)  # type: ignore[arg-type]
            wait_http(f"http://127.0.0.1:{port}/health")
            targets["optillm"] = (f"http://127.0.0.1:{port}/v1/chat/completions", "none-scripted",
                                  {"Authorization": "Bearer unused"})
        pids = {"bare": bare.pid, "agentkit": proxy.pid, **({"optillm": procs[-1].pid} if args.optillm else {})}
        try:
            walls: dict[str, list[float]] = {name: [] for name in targets}
            cpu_us: dict[str, list[float]] = {name: [] for name in pids}
            ttfb: dict[str, list[float]] = {"direct": [], "agentkit": []}
            for _ in range(args.repeats):
                for name in ttfb if args.ttfb else ():
                    url, model, headers = targets[name]
                    ttfb[name].append(statistics.median(asyncio.run(first_bytes(url, model, args.ttfb, headers))))
                for name, (url, model, headers) in targets.items():
                    before = cpu_seconds(pids[name]) if name in pids else 0.0
                    walls[name].append(asyncio.run(load(url, model, args.requests, args.waves, headers)))
                    if name in pids:  # warm-up requests included: (32 + requests * waves) per load
                        used = cpu_seconds(pids[name]) - before
                        cpu_us[name].append(1e6 * used / (min(args.requests, 32) + args.requests * args.waves))
        finally:
            for p in procs:
                p.terminate()
                p.wait(timeout=10)
    ideal = args.waves * args.latency
    report: dict[str, Any] = {
        "requests": args.requests, "waves": args.waves, "repeats": args.repeats, "latency_s": args.latency,
        "ideal_wall_s": ideal, "wall_s": {k: [round(w, 3) for w in v] for k, v in walls.items()},
        "median_wall_s": {k: round(statistics.median(v), 3) for k, v in walls.items()},
        "proxy_cpu_us_per_request": {k: round(statistics.median(v), 1) for k, v in cpu_us.items()},
    }
    for name in targets:
        if name == "direct":
            continue
        ratios = [w / d for w, d in zip(walls[name], walls["direct"], strict=True)]
        report[f"{name}_over_direct"] = {"median": round(statistics.median(ratios), 3),
                                         "min": round(min(ratios), 3), "max": round(max(ratios), 3)}
    ratios = [a / b for a, b in zip(walls["agentkit"], walls["bare"], strict=True)]
    report["agentkit_over_bare"] = {"median": round(statistics.median(ratios), 3),
                                    "min": round(min(ratios), 3), "max": round(max(ratios), 3)}
    if args.ttfb:
        report["ttfb_median_s"] = {k: [round(v, 4) for v in vs] for k, vs in ttfb.items()}
        ratios = [a / d for a, d in zip(ttfb["agentkit"], ttfb["direct"], strict=True)]
        report["ttfb_over_direct"] = {"median": round(statistics.median(ratios), 3),
                                      "min": round(min(ratios), 3), "max": round(max(ratios), 3)}
    print(json.dumps(report, indent=2))
    write_result("proxy", report)


if __name__ == "__main__":
    main()
