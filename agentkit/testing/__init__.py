"""Testing kit for people who build on agentkit: test recipes without a model.

- ``ScriptedServer``: a real OpenAI-compatible HTTP server (aiohttp, 127.0.0.1, a free port) that answers
  from a script. Each entry is a ``Reply`` or a ``Fault`` (429 with Retry-After, any status, a hanging
  request, a dropped connection, malformed JSON); a callable script decides per request. It can add
  latency, counts requests and the most in flight at once, and reports **exact, deterministic** usage:
  one token per whitespace-separated word (prompt: all message contents, or a counter of the test's own;
  output: the reply), so tests can assert token arithmetic by hand; ``/tokenize`` (vLLM's shape) counts a
  prompt the same way, as real servers let clients count before they send. ``max_tokens`` truncates a reply to that many words
  (``finish_reason="length"``). Use it to test the HTTP path: retries, limits, budgets, call graphs.
- ``ScriptedBackend``: the same idea without HTTP, as an in-process ``Backend``.
- ``python -m agentkit.testing --latency 0.1`` serves a ``ScriptedServer`` in its own process (prints its
  base URL), for benchmarks that must not share a CPU core's event loop with the client.

Real behaviour is still tested against a real model (``local``): a script is for faults and exact counts.
"""


from __future__ import annotations

import asyncio

from .backend import ScriptedBackend
from .script import (
    Fault,
    PromptCounter,
    Reply,
    call_step,
    count_words,
    echo,
    prompt_kind,
    reuse_script,
    template_of,
)
from .server import ScriptedServer

__all__ = ["Fault", "PromptCounter", "Reply", "ScriptedBackend", "ScriptedServer", "call_step", "count_words", "echo",
           "prompt_kind", "reuse_script", "run_agentkit", "template_of"]


async def run_agentkit(*args: str, timeout: float = 300.0) -> tuple[int, str, str]:
    """Run the ``agentkit`` command line with ``args`` in a subprocess, as a user runs it (this interpreter's
    agentkit); returns ``(exit code, stdout, stderr)``. Tests drive the CLI against a ``ScriptedServer`` with it."""
    import sys

    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "agentkit", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


