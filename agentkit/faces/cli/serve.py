"""``agentkit serve|proxy|mcp|view``: the long-running faces, each until stopped."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from ._common import open_handbook


async def run_serve(args: argparse.Namespace) -> int:


    from agentkit.faces.service import create_app
    from agentkit.faces.web import start_site
    from agentkit.memory import QdrantBehaviorStore, embedder_from_spec

    token, generated = _token(args.token, "AGENTKIT_TOKEN")
    store = QdrantBehaviorStore(path=args.store, embedder=embedder_from_spec(args.embedder))
    await store.open()  # fail here, with the store's own message, before listening
    runner, url = await start_site(create_app(store, token=token, max_body=args.max_body), args.host, args.port)
    print(f"serving the handbook {args.store} at {url}", flush=True)
    if generated:
        print(f"token: {token}", flush=True)
    await _until_stopped(runner)
    return 0


def _token(given: str | None, env: str) -> tuple[str, bool]:
    """A face's bearer token: ``given``, else ``$env``, else a generated one; and whether it was generated (to
    print it)."""
    import os

    from agentkit.faces.web import generate_token

    token = given or os.environ.get(env)
    return (token, False) if token else (generate_token(), True)


async def _until_stopped(runner: Any) -> None:
    """Serve until SIGINT or SIGTERM, then clean ``runner`` up."""
    import gc
    import signal

    # Everything allocated while starting (~100k objects: modules, schemas, the app) lives as long as the
    # server: moved out of the collector's reach, full collections stop rescanning it on every pass.
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


async def run_proxy(args: argparse.Namespace) -> int:
    from agentkit.backends import backend_from_spec
    from agentkit.faces.proxy import Proxy, create_proxy_app, run_proxy_runner

    token, generated = _token(args.token, "AGENTKIT_PROXY_TOKEN")
    handbook = await open_handbook(args.store, args.store_token, args.embedder, create=False) \
        if args.store else None
    backend = backend_from_spec(args.backend)
    try:
        proxy = Proxy(backend, handbook=handbook, token=token, concurrency=args.concurrency, max_queue=args.max_queue)
        app = create_proxy_app(proxy, max_body=args.max_body)
    except BaseException:
        await backend.aclose()
        if handbook is not None:
            await handbook.close()
        raise
    runner, url = await run_proxy_runner(app, args.host, args.port)
    print(f"agentkit proxy for {proxy.model_name} at {url}/v1 (methods: METHOD/{proxy.model_name})", flush=True)
    if generated:
        print(f"token: {token}", flush=True)
    await _until_stopped(runner)
    return 0


async def run_mcp(args: argparse.Namespace) -> int:
    import os

    from agentkit.errors import AgentkitError
    from agentkit.faces.mcp_server import check_session_limits, refuse_handshake, serve_http, serve_stdio

    if args.http:
        check_session_limits(args.max_sessions, args.session_idle)
        token, generated = _token(args.token, "AGENTKIT_MCP_TOKEN")
        handbook = await open_handbook(args.store, args.store_token, args.embedder, create=not args.read_only)

        def ready(url: str) -> None:
            print(f"serving the handbook {args.store} to MCP clients at {url}", flush=True)
            if generated:
                print(f"token: {token}", flush=True)

        try:
            await serve_http(handbook, token=token, host=args.host, port=args.port, read_only=args.read_only,
                             on_ready=ready, max_sessions=args.max_sessions, session_idle_s=args.session_idle)
        finally:
            await handbook.close()
        return 0
    # stdio: the protocol owns file descriptor 1. Anything else that writes there (a library's print, a progress
    # bar from native code) goes to stderr instead of corrupting the stream.
    protocol = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(protocol, "w", encoding="utf-8")  # lives as long as the process
    try:
        handbook = await open_handbook(args.store, args.store_token, args.embedder, create=not args.read_only)
    except AgentkitError as exc:  # the client sees why (the initialize error), then the one line and exit 2
        await asyncio.to_thread(refuse_handshake, f"agentkit mcp: {exc}", stdin=sys.stdin, stdout=sys.stdout)
        raise
    try:
        await serve_stdio(handbook, read_only=args.read_only)
    finally:
        await handbook.close()
    return 0


async def run_view(args: argparse.Namespace) -> int:
    import os

    from agentkit.faces.view import Viewer, create_view_app, run_view_runner
    from agentkit.faces.web import LOOPBACK

    token = args.token or os.environ.get("AGENTKIT_VIEW_TOKEN")
    if token is None and args.host not in LOOPBACK and not args.host.startswith("127."):
        token, _ = _token(None, "AGENTKIT_VIEW_TOKEN")  # a page others can reach needs one
    viewer = await asyncio.to_thread(Viewer, args.db)
    runner, url = await run_view_runner(create_view_app(viewer, token=token), args.host, args.port)
    skipped = f"; {viewer.skipped} unreadable rows left out" if viewer.skipped else ""
    print(f"viewing {args.db} ({len(viewer.rows)} cells{skipped}) at {url}{'?token=' + token if token else ''}",
          flush=True)
    await _until_stopped(runner)
    return 0


