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
    ap.add_argument("--optillm", default=None, help="an optillm executable to time the same way")
    args = ap.parse_args()
    procs: list[subprocess.Popen[str]] = []
    with scripted_server(args.latency) as upstream:
        proxy, line = start([sys.executable, "-m", "agentkit.cli", "proxy", "--backend",
                             f"openai-compatible:{upstream}?model=scripted&retries=1", "--port", "0", "--token", TOKEN,
                             "--concurrency", str(4 * args.requests)], " at ")
        procs.append(proxy)
        proxy_url = line.split(" at ")[1].split()[0]
        targets: dict[str, tuple[str, str, dict[str, str]]] = {
            "direct": (f"{upstream}/chat/completions", "scripted", {}),
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
        try:
            walls: dict[str, list[float]] = {name: [] for name in targets}
            for _ in range(args.repeats):
                for name, (url, model, headers) in targets.items():
                    walls[name].append(asyncio.run(load(url, model, args.requests, args.waves, headers)))
        finally:
            for p in procs:
                p.terminate()
                p.wait(timeout=10)
    ideal = args.waves * args.latency
    report: dict[str, Any] = {
        "requests": args.requests, "waves": args.waves, "repeats": args.repeats, "latency_s": args.latency,
        "ideal_wall_s": ideal, "wall_s": {k: [round(w, 3) for w in v] for k, v in walls.items()},
        "median_wall_s": {k: round(statistics.median(v), 3) for k, v in walls.items()},
    }
    for name in targets:
        if name == "direct":
            continue
        ratios = [w / d for w, d in zip(walls[name], walls["direct"], strict=True)]
        report[f"{name}_over_direct"] = {"median": round(statistics.median(ratios), 3),
                                         "min": round(min(ratios), 3), "max": round(max(ratios), 3)}
    print(json.dumps(report, indent=2))
    write_result("proxy", report)


if __name__ == "__main__":
    main()
