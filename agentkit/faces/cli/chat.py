"""``agentkit chat``: one reply and its token usage."""

from __future__ import annotations

import argparse
import json
import sys


async def run(args: argparse.Namespace) -> int:
    from agentkit.backends import backend_from_spec

    backend = backend_from_spec(args.backend)
    messages = [{"role": "user", "content": args.prompt}]
    if args.system:
        messages.insert(0, {"role": "system", "content": args.system})
    try:
        [completion] = await backend.chat(messages, max_tokens=args.max_tokens, temperature=args.temperature,
                                          seed=args.seed)
    finally:
        await backend.aclose()
    if args.json:
        print(json.dumps(completion.model_dump(mode="json")))
    else:
        print(completion.text)
        print(f"[{completion.model}: {completion.input_tokens} input + {completion.output_tokens} output tokens, "
              f"{completion.latency_s:.1f} s, finish={completion.finish_reason}]", file=sys.stderr)
    return 0


