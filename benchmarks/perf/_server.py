"""Start the scripted OpenAI-compatible server (agentkit.testing) in its own process, so the client under
test has the event loop and a core to itself."""

import contextlib
import subprocess
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def scripted_server(latency: float) -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "agentkit.testing", "--latency", str(latency)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        if not base_url.startswith("http"):
            raise RuntimeError(f"scripted server did not start: {base_url!r}")
        yield base_url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
