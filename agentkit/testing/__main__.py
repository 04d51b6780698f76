"""``python -m agentkit.testing [--latency S] [--port P]``: serve a ``ScriptedServer`` (echo replies) in this
process until interrupted. Prints the base URL on its first line of stdout, for benchmarks that need the
server on another core than the client."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from agentkit.testing import ScriptedServer


async def _serve(latency: float, port: int) -> None:
    server = await ScriptedServer(latency=latency).start(port)
    print(server.base_url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m agentkit.testing", description=__doc__)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every reply")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.latency, args.port))
    sys.exit(0)


if __name__ == "__main__":
    main()
