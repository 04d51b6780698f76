"""Procedural memory in someone else's agent: a plain agent, not built on agentkit's roles or bus, that uses
the behavior handbook through the HTTP service and an LLM through the OpenAI SDK.

    python recipes/memory_in_another_agent.py [--store DIR] [--llm-url URL --llm-model M] [--limit 3]

Without ``--url`` it serves ``--store`` itself (as ``agentkit serve`` would) on a free port; without
``--llm-url`` it serves the packaged local model. The agent then, per question: searches the handbook
(``POST /v1/search``), writes its own prompt with the behaviors, asks the LLM, finds which behavior names
its answer mentions, and reports usage (``POST /v1/usage``: retrieved, cited, cited_correct/cited_wrong), so
the handbook's statistics and pruning see this agent's use too. Only HTTP and JSON cross the boundary: the
same calls work from any language.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from openai import AsyncOpenAI

from agentkit.evaluation.answers import answers_match, extract_answer
from agentkit.log import configure_logging

SEED_BEHAVIORS = {
    "behavior_translate_verbal_to_equation": "Write each sentence of a word problem as an equation before solving.",
    "behavior_track_remaining_quantity": "Subtract every amount used or given away from the starting amount, "
                                         "one step at a time, and keep a running total.",
    "behavior_unit_rate_first": "For prices or speeds, compute the amount per single unit first, then scale.",
}


class PlainAgent:
    """Any agent: an HTTP client for the handbook, an OpenAI client for the model, its own prompt."""

    def __init__(self, handbook_url: str, token: str, llm: AsyncOpenAI, model: str, k: int = 3) -> None:
        self.handbook_url, self.llm, self.model, self.k = handbook_url.rstrip("/"), llm, model, k
        self.http = aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"})

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        async with self.http.post(self.handbook_url + path, json=body) as response:
            response.raise_for_status()
            return await response.json()

    async def answer(self, question: str, reference: str | None = None) -> dict[str, Any]:
        found = await self._post("/v1/search", {"query": question, "k": self.k})
        behaviors = {h["behavior"]["name"]: h["behavior"]["instruction"] for h in found["hits"]}
        notes = "\n".join(f"{name}: {text}" for name, text in behaviors.items())
        reply = await self.llm.chat.completions.create(
            model=self.model, max_tokens=512, temperature=0, seed=0,
            messages=[{"role": "system", "content": "Useful behaviors (name them when you use one):\n" + notes},
                      {"role": "user", "content": question + "\nEnd with the final number in \\boxed{}."}])
        text = reply.choices[0].message.content or ""
        cited = [name for name in behaviors if re.search(rf"\b{re.escape(name)}\b", text)]
        answer = extract_answer(text)  # agentkit's grading helpers work on any text
        events = [{"name": n, "event": "retrieved"} for n in behaviors] + [{"name": n, "event": "cited"} for n in cited]
        if reference is not None:
            verdict = "cited_correct" if answers_match(answer, reference) else "cited_wrong"
            events += [{"name": n, "event": verdict} for n in cited]
        await self._post("/v1/usage", {"events": events})
        return {"answer": answer, "behaviors": list(behaviors), "cited": cited}

    async def stats(self, name: str) -> dict[str, Any]:
        async with self.http.get(f"{self.handbook_url}/v1/behaviors/{name}") as response:
            response.raise_for_status()
            return dict((await response.json())["stats"])

    async def close(self) -> None:
        await self.http.close()


@contextlib.asynccontextmanager
async def handbook_service(store_dir: str, token: str) -> AsyncIterator[str]:
    """Serve ``store_dir`` on a free port (what ``agentkit serve`` does), seeded when empty."""
    from aiohttp import web

    from agentkit.faces.service import create_app
    from agentkit.memory import Behavior, QdrantBehaviorStore

    store = QdrantBehaviorStore(path=store_dir)
    await store.open()
    if await store.count() == 0:
        for name, instruction in SEED_BEHAVIORS.items():
            await store.add(Behavior(name=name, instruction=instruction, topics=("gsm8k",)))
    runner = web.AppRunner(create_app(store, token=token), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def main(args: argparse.Namespace) -> None:
    from agentkit import load_dataset

    async with contextlib.AsyncExitStack() as stack:
        url, token = args.url, args.token or "recipe-token"
        if url is None:
            url = await stack.enter_async_context(handbook_service(args.store, token))
        llm_url, model = args.llm_url, args.llm_model
        if llm_url is None:  # the packaged model, served in-process
            from agentkit.backends import model_path
            from agentkit.backends.local import LocalServer

            server = stack.enter_context(LocalServer(model_path(), slots=2, ctx_per_slot=2048))
            llm_url, model = server.base_url, server.model
        llm = AsyncOpenAI(base_url=llm_url, api_key=args.llm_key or "none", max_retries=2)
        stack.push_async_callback(llm.close)
        agent = PlainAgent(url, token, llm, model, k=args.k)
        stack.push_async_callback(agent.close)
        used: set[str] = set()
        for problem in load_dataset("gsm8k", limit=args.limit):
            result = await agent.answer(problem.text, problem.reference)
            used.update(result["behaviors"])
            print(f"{problem.problem_id}: answer {result['answer']} (reference {problem.reference}); "
                  f"behaviors {result['behaviors']}; cited {result['cited']}", flush=True)
        for name in sorted(used):
            s = await agent.stats(name)
            print(f"{name}: retrieved {s['retrieved']}, cited {s['cited']}, correct {s['cited_correct']}, "
                  f"wrong {s['cited_wrong']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="a running handbook service (`agentkit serve`)")
    parser.add_argument("--token", default=None)
    parser.add_argument("--store", default=".agentkit/handbook", help="served when --url is not given")
    parser.add_argument("--llm-url", default=None, help="an OpenAI-compatible endpoint (default: the local model)")
    parser.add_argument("--llm-model", default="default")
    parser.add_argument("--llm-key", default=None)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--limit", type=int, default=3)
    configure_logging()  # an application configures logging; the library never does
    asyncio.run(main(parser.parse_args()))
