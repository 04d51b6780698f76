"""Helpers shared by the perf benchmarks: the scripted server in its own process, and result files.

Importing this module configures agentkit's logging (stderr), as an application does: the benchmarks print
their JSON on stdout, and the library itself never configures logging.
"""

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agentkit.log import configure_logging

configure_logging()
RESULTS = Path(__file__).parent / "results"


def write_result(name: str, report: dict[str, Any]) -> Path:
    """Write ``results/<name>.json`` and return its path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


@contextlib.contextmanager
def scripted_server(latency: float, *, cpu: int | None = None) -> Iterator[str]:
    """The scripted OpenAI-compatible server (agentkit.testing) in its own process, so the client under test
    has the event loop and a core to itself; yields its base URL. ``cpu`` pins the server to that core (the
    client goes on another with ``pin_to``): on a 2-core machine two busy processes that float between the
    cores interfere as much as the code under test costs."""
    proc = subprocess.Popen([sys.executable, "-m", "agentkit.testing", "--latency", str(latency)],
                            stdout=subprocess.PIPE, text=True)
    if cpu is not None:
        os.sched_setaffinity(proc.pid, {cpu})
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        if not base_url.startswith("http"):
            raise RuntimeError(f"scripted server did not start: {base_url!r}")
        yield base_url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def pin_to(cpu: int | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins a child process to one core (None: no pinning)."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def write_items(path: Path, n: int) -> None:
    """``n`` GSM8K-shaped arithmetic items as JSON Lines (the sweep benchmarks' dataset)."""
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"item-{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n")
