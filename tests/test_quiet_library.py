"""A quiet library: agentkit used from a program that configured no logging writes nothing to stdout and nothing to
stderr, while it opens a store (replaying a usage journal), runs a method and a sweep with a failing cell (each
logs at info or warning); once the program configures the standard ``logging``, the same events reach it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PROGRAM = textwrap.dedent('''
    import asyncio, json, logging, os, sys
    from pathlib import Path

    async def main(tmp: Path) -> None:
        if len(sys.argv) > 2:  # the application asks for logs: standard logging at INFO, to stderr
            logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
        from agentkit.memory import Behavior, MiniLMEmbedder, QdrantBehaviorStore
        from agentkit.messages import Problem
        from agentkit.registry import get_method
        from agentkit.sweep import SweepSpec, run_sweep
        from agentkit.testing import Fault, Reply, ScriptedServer

        embedder = MiniLMEmbedder()
        async with QdrantBehaviorStore(path=tmp / "hb", embedder=embedder) as store:
            await store.add(Behavior(name="behavior_units", instruction="write the unit beside each number"))
        journal = tmp / "hb" / "usage.journal"  # an unapplied event, as a killed process leaves it
        journal.write_text(json.dumps({"seq": 10**6, "name": "behavior_units", "event": "cited", "count": 1}) + "\\n")
        async with QdrantBehaviorStore(path=tmp / "hb", embedder=embedder) as store:  # replays it (an info event)
            assert (await store.get("behavior_units")).stats.cited == 1

        def script(body):
            text = body["messages"][-1]["content"]
            return Fault.http(400, "refused") if "refuse" in text else Reply("2 + 1 = 3, so \\\\boxed{3}")

        async with ScriptedServer(script) as upstream:
            from agentkit.backends import backend_from_spec
            backend = backend_from_spec(f"openai-compatible:{upstream.base_url}?model=scripted&retries=1")
            result = await get_method("pdr").solve(Problem(problem_id="q", text="What is 2 + 1?"), backend,
                                                   params={"rounds": 2, "drafts": 2})
            assert result.answer == "3"
            await backend.aclose()
            items = tmp / "items.jsonl"
            items.write_text("".join(json.dumps({"id": f"i{i}", "problem": p, "answer": "3"}) + "\\n"
                                     for i, p in enumerate(["What is 2 + 1?", "please refuse this"])))
            spec = SweepSpec.model_validate({
                "name": "quiet", "budgets": [1024], "datasets": [{"name": str(items)}],
                "methods": [{"name": "long-cot"}],
                "backends": [{"spec": f"openai-compatible:{upstream.base_url}?model=scripted&retries=1"}]})
            summary = await run_sweep(spec, tmp / "r.sqlite")
            assert (summary.ran, summary.failed) == (2, 1), summary  # the failed cell logs a warning

    asyncio.run(main(Path(sys.argv[1])))
''')


def test_an_embedding_program_sees_nothing_it_did_not_ask_for(tmp_path: Path) -> None:
    quiet = subprocess.run([sys.executable, "-c", PROGRAM, str(tmp_path / "a")], capture_output=True, text=True,
                           timeout=300)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert quiet.stdout == ""
    assert quiet.stderr == ""
    loud = subprocess.run([sys.executable, "-c", PROGRAM, str(tmp_path / "b"), "--log"], capture_output=True,
                          text=True, timeout=300)
    assert loud.returncode == 0, loud.stderr[-3000:]
    assert loud.stdout == ""
    assert "agentkit.memory.store INFO usage journal replayed" in loud.stderr
    assert "agentkit.sweep.runner WARNING cell failed" in loud.stderr
