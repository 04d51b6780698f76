"""``agentkit proxy``: the OpenAI-compatible endpoint, driven by the official ``openai`` client and raw HTTP, in
front of the scripted server (exact counts and faults) and the real local model."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest

from agentkit.backends import OpenAICompatible, backend_from_spec
from agentkit.backends.local import LocalServer
from agentkit.faces.proxy import Proxy, create_proxy_app, run_proxy_runner
from agentkit.messages import Problem
from agentkit.registry import get_method
from agentkit.testing import Fault, Reply, ScriptedServer, prompt_kind

TOKEN = "proxy-test-token"
PROBLEM = "A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total?"


def script(body: dict[str, Any]) -> Reply | Fault:
    text = body["messages"][-1]["content"]
    if "REFUSE" in text:
        return Fault.http(400, "scripted refusal")
    kind = prompt_kind(body)
    if kind == "summary":
        return Reply("Both drafts add 2 and 1 and get 3.")
    if "echo" in text:
        return Reply(f"you said: {text}")
    return Reply("2 + 1 = 3, so \\boxed{3}")


class Served:
    def __init__(self, upstream: ScriptedServer, proxy: Proxy, url: str) -> None:
        self.upstream, self.proxy, self.url = upstream, proxy, url

    def client(self, **kw: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=TOKEN, max_retries=0, **kw)


async def serve(upstream: ScriptedServer, **kw: Any) -> tuple[Served, Any]:
    backend = backend_from_spec(f"openai-compatible:{upstream.base_url}?model=scripted&retries=1")
    proxy = Proxy(backend, token=TOKEN, **{k: v for k, v in kw.items() if k != "max_body"})
    app = create_proxy_app(proxy, **({"max_body": kw["max_body"]} if "max_body" in kw else {}))
    runner, url = await run_proxy_runner(app)
    return Served(upstream, proxy, url), runner


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async with ScriptedServer(script) as upstream:
        s, runner = await serve(upstream)
        try:
            yield s
        finally:
            await runner.cleanup()


async def post(s: Served, body: Any, *, token: str | None = TOKEN, raw: bytes | None = None
               ) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as session, session.post(
            f"{s.url}/v1/chat/completions", data=raw if raw is not None else json.dumps(body).encode(),
            headers=headers) as r:
        return r.status, await r.json(content_type=None)


def user(text: str = PROBLEM) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def test_models_list_the_plain_model_and_every_method(served: Served) -> None:
    client = served.client()
    ids = [m.id for m in (await client.models.list()).data]
    assert ids[0] == "scripted"
    assert {"pdr/scripted", "sr/scripted", "self-consistency/scripted", "bci/scripted", "long-cot/scripted"} <= set(ids)
    await client.close()


async def test_a_model_can_be_retrieved_and_the_legacy_endpoint_is_refused_in_openais_shape(served: Served) -> None:
    client = served.client()
    assert (await client.models.retrieve("scripted")).id == "scripted"
    pdr = await client.models.retrieve("pdr/scripted")  # an id with a slash, as the SDK sends it
    assert pdr.id == "pdr/scripted" and pdr.model_extra["agentkit"]["method"] == "pdr"
    with pytest.raises(openai.NotFoundError) as caught:
        await client.models.retrieve("gpt-9")
    assert caught.value.body["code"] == "model_not_found"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as refused:
        await client.completions.create(model="scripted", prompt="2 + 1 =")
    assert "/v1/chat/completions" in refused.value.body["message"]  # type: ignore[index]
    await client.close()


async def test_pass_through_is_one_upstream_call_with_its_exact_usage(served: Served) -> None:
    client = served.client()
    before = len(served.upstream.requests)
    reply = await client.chat.completions.create(model="scripted", messages=user("echo this"), max_tokens=50,
                                                 temperature=0.3, seed=7)
    assert len(served.upstream.requests) - before == 1
    sent = served.upstream.requests[-1]
    assert (sent["max_tokens"], sent["temperature"], sent["seed"]) == (50, 0.3, 7)
    assert reply.choices[0].message.content == "you said: echo this"
    assert reply.usage is not None and reply.usage.completion_tokens == 4 and reply.usage.prompt_tokens > 0
    assert reply.model == "scripted" and reply.choices[0].finish_reason == "stop"
    await client.close()


SAMPLING = {"temperature": 0.9, "top_p": 0.8, "presence_penalty": 0.5, "frequency_penalty": -0.25,
            "logit_bias": {"1734": -100}, "stop": ["\n\n"], "seed": 11, "max_completion_tokens": 40,
            "reasoning_effort": "low", "top_k": 20, "min_p": 0.05, "repetition_penalty": 1.1, "n": 2,
            "logprobs": True, "top_logprobs": 2, "user": "u-1"}


async def test_pass_through_forwards_every_field_unchanged_and_absent_ones_stay_absent(served: Served) -> None:
    """A pass-through relays the body as the client sent it (OpenAI and vLLM sampling fields, ``n``, logprobs),
    only ``model`` set to the upstream's name and the ``agentkit`` block left out; a field the client did not
    send is not sent (the upstream's default applies: no ``temperature: 0.0`` in its place)."""
    client = served.client()
    await client.chat.completions.create(model="scripted", messages=user("echo this"),
                                         extra_body={k: v for k, v in SAMPLING.items()})
    sent = served.upstream.requests[-1]
    assert {k: sent[k] for k in SAMPLING} == SAMPLING
    await client.chat.completions.create(model="scripted", messages=user("echo that"))
    assert set(served.upstream.requests[-1]) == {"model", "messages"}
    await client.close()


async def test_a_backend_without_an_endpoint_refuses_the_fields_it_cannot_send() -> None:
    from agentkit.testing import ScriptedBackend

    proxy = Proxy(ScriptedBackend(lambda _: Reply("ok"), model="scripted"), token=TOKEN)
    runner, url = await run_proxy_runner(create_proxy_app(proxy))
    try:
        served = Served(None, proxy, url)  # type: ignore[arg-type]
        status, reply = await post(served, {"model": "scripted", "messages": user(), "top_k": 5, "stop": ["x"]})
        assert (status, reply["error"]["param"]) == (400, "top_k") and "top_k" in reply["error"]["message"]
        status, reply = await post(served, {"model": "scripted", "messages": user(), "top_p": 0.5, "stop": ["x"]})
        assert status == 200 and reply["choices"][0]["message"]["content"] == "ok"
    finally:
        await runner.cleanup()


async def test_a_streamed_pass_through_arrives_chunk_by_chunk() -> None:
    """The upstream's event stream is relayed as it is produced: the first chunk reaches the client long before
    the last is written (an upstream writing one word every 0.1 s)."""
    async with ScriptedServer(lambda _: Reply("one two three four five six"), stream_interval=0.1) as upstream:
        s, runner = await serve(upstream)
        try:
            client = s.client()
            started = asyncio.get_running_loop().time()
            arrivals, text = [], ""
            stream = await client.chat.completions.create(model="scripted", messages=user(), stream=True,
                                                          stream_options={"include_usage": True})
            usage = None
            async for chunk in stream:
                arrivals.append(asyncio.get_running_loop().time() - started)
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
                usage = chunk.usage or usage
            assert text == "one two three four five six" and usage is not None and usage.completion_tokens == 6
            assert len(arrivals) >= 8 and arrivals[1] < 0.3 and arrivals[-1] > 0.55, arrivals
            await client.close()
        finally:
            await runner.cleanup()


@pytest.mark.parametrize(("fault", "status"), [
    (Fault.http(413, "prompt too long"), 413), (Fault.http(422, "bad field"), 422), (Fault.http(400, "no"), 400),
    (Fault.rate_limited(3), 429), (Fault.http(401, "bad key"), 502), (Fault.http(404, "no model"), 502),
    (Fault.http(503, "down"), 502)])
async def test_upstream_errors_keep_their_status_in_openais_shape(fault: Fault, status: int) -> None:
    async with ScriptedServer([fault]) as upstream:
        s, runner = await serve(upstream)
        try:
            for stream in (False, True):
                upstream.set_script([fault])
                got, reply = await post(s, {"model": "scripted", "messages": user(), "stream": stream})
                assert got == status and set(reply["error"]) == {"message", "type", "param", "code"}, reply
        finally:
            await runner.cleanup()


def long_reply(body: dict[str, Any]) -> Reply:
    return Reply("word " * 300 + "\\boxed{3}") if prompt_kind(body) != "summary" else Reply("sum " * 300)


async def test_max_tokens_bounds_the_completion_tokens_a_method_request_is_billed_for() -> None:
    """OpenAI's contract: ``max_tokens`` bounds every token generated for the reply. A PDR request (4 drafts, a
    summary bounded at 64 tokens, a final draft: 6 calls) with ``max_tokens=1200`` against an upstream that writes until cut off is
    billed at most 1,200 completion tokens, and the drafts and workspaces the client never sees are reported as
    ``reasoning_tokens``."""
    async with ScriptedServer(long_reply) as upstream:
        s, runner = await serve(upstream)
        try:
            client = s.client()
            for bound in (1200, 300):
                before = len(upstream.requests)
                reply = await client.chat.completions.create(
                    model="pdr/scripted", messages=user(), max_tokens=bound,
                    extra_body={"agentkit": {"params": {"rounds": 2, "drafts": 4, "kappa": 64}}})
                caps = [r["max_tokens"] for r in upstream.requests[before:]]
                assert reply.usage is not None and len(caps) == 6
                assert reply.usage.completion_tokens <= bound and sum(caps) <= bound, (caps, reply.usage)
                assert reply.usage.completion_tokens > bound * 0.9  # the run used what it was given (cut off)
                hidden = reply.usage.completion_tokens_details.reasoning_tokens  # type: ignore[union-attr]
                assert hidden == reply.usage.completion_tokens - caps[-1] > 0  # all but the final draft's text
            # An explicit per-call cap only lowers what the bound allows.
            before = len(upstream.requests)
            await client.chat.completions.create(
                model="pdr/scripted", messages=user(), max_tokens=1200,
                extra_body={"agentkit": {"params": {"rounds": 2, "drafts": 4, "kappa": 64, "max_tokens": 50}}})
            assert {r["max_tokens"] for r in upstream.requests[before:] if prompt_kind(r) != "summary"} == {50}
            await client.close()
        finally:
            await runner.cleanup()


async def test_pdr_through_the_proxy_equals_the_method_run_directly(served: Served) -> None:
    client = served.client()
    params = {"rounds": 2, "drafts": 2, "kappa": 64}
    before = len(served.upstream.requests)
    reply = await client.chat.completions.create(
        model="pdr/scripted", messages=user(), seed=3,
        extra_body={"agentkit": {"params": {**params, "max_tokens": 200}, "problem_id": "d"}})
    calls = len(served.upstream.requests) - before
    seeds = [r.get("seed") for r in served.upstream.requests[before:]]
    block = reply.model_extra["agentkit"]  # type: ignore[index]
    assert block["method"] == "pdr" and block["answer"] == "3" and block["rounds"] == 2
    assert block["calls"] == calls == 4  # 2 drafts, 1 summary, 1 final draft
    assert reply.usage is not None and reply.usage.total_tokens == block["B_total"] > block["B_seq"] > 0
    # The same method, parameters and seed run directly (what `agentkit solve --method pdr` does) spend the same.
    method = get_method("pdr")
    backend = backend_from_spec(f"openai-compatible:{served.upstream.base_url}?model=scripted&retries=1")
    direct = await method.solve(Problem(problem_id="d", text=PROBLEM), backend,
                              params=method.params(**params, max_tokens=200), seed=3)
    await backend.aclose()
    figures = direct.ledger.summary()
    # Seeds derive from the problem's id and the seed: the proxy's run on problem "d" drew the direct run's seeds.
    assert [r.get("seed") for r in served.upstream.requests[before + calls:]] == seeds
    assert direct.text == reply.choices[0].message.content and direct.answer == block["answer"]
    assert (figures["B_total"], figures["B_seq"], figures["calls"]) == (block["B_total"], block["B_seq"], 4)
    assert figures["input_tokens"] == reply.usage.prompt_tokens
    # Without a problem id the name is a hash of the text: the same request and seed draw the same seeds again,
    # another problem draws others.
    async def drawn(text: str) -> list[Any]:
        start = len(served.upstream.requests)
        await client.chat.completions.create(model="pdr/scripted", messages=user(text), seed=3,
                                             extra_body={"agentkit": {"params": {**params, "max_tokens": 200}}})
        return [r.get("seed") for r in served.upstream.requests[start:]]

    first = await drawn(PROBLEM)
    assert first == await drawn(PROBLEM) and first != seeds and first != await drawn(PROBLEM + " Explain.")
    await client.close()


async def test_the_method_can_come_from_the_body_and_a_budget_plans_the_calls(served: Served) -> None:
    client = served.client()
    reply = await client.chat.completions.create(
        model="scripted", messages=[{"role": "system", "content": "Be brief."}, *user()],
        extra_body={"agentkit": {"method": "self-consistency", "params": {"samples": 3}, "budget": 400}})
    block = reply.model_extra["agentkit"]  # type: ignore[index]
    assert block["method"] == "self-consistency" and block["calls"] == 3 and block["B_seq"] <= 400
    sent = served.upstream.requests[-1]
    assert "Be brief." in sent["messages"][-1]["content"] and PROBLEM in sent["messages"][-1]["content"]
    await client.close()


async def test_streaming_sends_the_answer_and_announces_rounds_as_comments(served: Served) -> None:
    client = served.client()
    stream = await client.chat.completions.create(
        model="pdr/scripted", messages=user(), stream=True, stream_options={"include_usage": True},
        extra_body={"agentkit": {"params": {"rounds": 2, "drafts": 2, "kappa": 64}}})
    text, usage, finish = "", None, None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    assert text == "2 + 1 = 3, so \\boxed{3}" and finish == "stop" and usage is not None and usage.total_tokens > 0
    # Raw: the SSE comment lines that plain clients skip carry each draft and workspace as they finish.
    async with aiohttp.ClientSession() as session, session.post(
            f"{served.url}/v1/chat/completions", headers={"Authorization": f"Bearer {TOKEN}"},
            json={"model": "pdr/scripted", "messages": user(), "stream": True,
                  "agentkit": {"params": {"rounds": 2, "drafts": 2, "kappa": 64}}}) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        lines = (await r.text()).splitlines()
    events = [json.loads(line.removeprefix(": agentkit ")) for line in lines if line.startswith(": agentkit ")]
    assert [(e["event"], e["round"]) for e in events] == [("draft", 1), ("draft", 1), ("workspace", 1),
                                                          ("draft", 2)]
    assert lines[-2:] == ["data: [DONE]", ""] or lines[-1] == "data: [DONE]"
    # With include_usage every chunk says "usage": null until the last, which carries it (OpenAI's framing).
    async with aiohttp.ClientSession() as session, session.post(
            f"{served.url}/v1/chat/completions", headers={"Authorization": f"Bearer {TOKEN}"},
            json={"model": "scripted", "messages": user(), "stream": True,
                  "stream_options": {"include_usage": True}}) as r:
        chunks = [json.loads(line[6:]) for line in (await r.text()).splitlines()
                  if line.startswith("data: {")]
    assert all("usage" in c and c["usage"] is None for c in chunks[:-1]) and chunks[-1]["usage"]["total_tokens"] > 0
    await client.close()


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"model": "gpt-9", "messages": user()}, 404, "model"),
    ({"model": "nosuch/scripted", "messages": user()}, 404, "model"),
    ({"model": "scripted", "messages": []}, 400, "messages"),
    ({"model": "scripted", "messages": user(), "max_tokens": -5}, 400, "max_tokens"),
    ({"model": "scripted", "messages": user(), "max_tokens": 10**12}, 400, "max_tokens"),
    ({"model": "scripted", "messages": user(), "seed": 2**70}, 400, "seed"),
    ({"model": "scripted", "messages": user(), "temperature": "hot"}, 400, "temperature"),
    # A method honours max_tokens, temperature, seed, n=1, stream and the agentkit block; anything else that asks
    # for something is refused by name (a pass-through forwards it: test_pass_through_forwards_every_field).
    ({"model": "pdr/scripted", "messages": user(), "n": 3}, 400, "n"),
    ({"model": "pdr/scripted", "messages": user(), "tools": [{"type": "function"}]}, 400, "tools"),
    ({"model": "pdr/scripted", "messages": user(), "frobnicate": 1}, 400, "frobnicate"),
    ({"model": "pdr/scripted", "messages": user(), "top_p": 0.5}, 400, "top_p"),
    ({"model": "pdr/scripted", "messages": user(), "stop": ["x"]}, 400, "stop"),
    ({"model": "pdr/scripted", "messages": user(), "presence_penalty": 0.5, "logit_bias": {"1": 2}}, 400,
     "presence_penalty"),
    ({"model": "pdr/scripted", "messages": user(), "reasoning_effort": "high"}, 400, "reasoning_effort"),
    ({"model": "pdr/scripted", "messages": user(), "top_k": 20}, 400, "top_k"),
    ({"model": "pdr/scripted", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400,
     "messages.0.content.0"),
    ({"model": "pdr/scripted", "messages": user(), "max_tokens": 5}, 400, "max_tokens"),  # < one token per call
    ({"model": "pdr/scripted", "messages": user(), "max_tokens": 64, "agentkit": {"budget": 4000}}, 400,
     "max_tokens"),  # the budget plans calls the bound cannot cover: refused before any call
    ({"model": "pdr/scripted", "messages": user(), "agentkit": {"params": {"rounds": -1}}}, 400,
     "agentkit.params.rounds"),
    ({"model": "pdr/scripted", "messages": user(), "agentkit": {"params": {"store": "/etc"}}}, 400,
     "agentkit.params.store"),
    ({"model": "pdr/scripted", "messages": [*user(), {"role": "assistant", "content": "x"}, *user()]}, 400,
     "messages.1.role"),
    ({"model": "sr/scripted", "messages": user(), "agentkit": {"method": "pdr"}}, 400, "agentkit.method"),
    ({"model": "pdr/scripted", "messages": user(), "agentkit": {"problem_id": "../../etc"}}, 400,
     "agentkit.problem_id"),
    ({"model": "scripted", "messages": user(), "agentkit": {"problem_id": "p1"}}, 400, "agentkit"),
    ({"model": "bci/scripted", "messages": user()}, 400, None),  # no handbook: a clear 400, not a 500
    ({"model": "scripted", "messages": user("REFUSE")}, 400, None),  # the upstream's 400, relayed
    ({"model": "pdr/scripted", "messages": user("REFUSE")}, 400, None),
])
async def test_bad_requests_get_openai_errors_naming_the_field(served: Served, body: dict[str, Any], status: int,
                                                               param: str | None) -> None:
    got, reply = await post(served, body)
    assert got == status, reply
    error = reply["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert error["param"] == param, error


async def test_auth_body_and_encoding_errors(served: Served) -> None:
    assert (await post(served, {"model": "scripted", "messages": user()}, token=None))[0] == 401
    assert (await post(served, {"model": "scripted", "messages": user()}, token="wrong"))[0] == 401
    status, reply = await post(served, None, raw=b'{"model": "scripted", "messages": [{"role": "user", '
                                                  b'"content": "\xff\xfe"}]}')
    assert status == 400 and reply["error"]["type"] == "invalid_request_error"
    assert (await post(served, None, raw=b"{not json"))[0] == 400
    big = b'{"model": "scripted", "messages": "' + b"x" * (5 << 20) + b'"}'  # over the 4 MiB default
    async with aiohttp.ClientSession() as session, session.post(
            f"{served.url}/v1/chat/completions", data=io.BytesIO(big),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}) as r:
        assert r.status == 413 and (await r.json())["error"]["code"] == "request_too_large"
    async with aiohttp.ClientSession() as session, session.get(f"{served.url}/health") as r:
        assert r.status == 200 and (await r.json())["model"] == "scripted"


async def test_a_client_that_disconnects_cancels_the_upstream_calls() -> None:
    async with ScriptedServer(lambda body: Fault.hang()) as upstream:
        s, runner = await serve(upstream)
        try:
            client = s.client(timeout=0.5)
            with pytest.raises(openai.APITimeoutError):
                await client.chat.completions.create(
                    model="pdr/scripted", messages=user(), extra_body={"agentkit": {"params": {"drafts": 2}}})
            await client.close()
            for _ in range(100):  # the upstream handlers see the cancellation within moments
                if not upstream.in_flight:
                    break
                await asyncio.sleep(0.05)
            assert upstream.max_in_flight == 2 and upstream.in_flight == 0  # both drafts' calls were cancelled
        finally:
            await runner.cleanup()


async def test_past_the_queue_limit_requests_get_429() -> None:
    async with ScriptedServer(lambda body: Reply("ok", delay=0.5)) as upstream:
        s, runner = await serve(upstream, concurrency=1, max_queue=1)
        try:
            results = await asyncio.gather(*(post(s, {"model": "scripted", "messages": user()}) for _ in range(4)))
            statuses = sorted(status for status, _ in results)
            assert statuses == [200, 200, 429, 429] and upstream.max_in_flight == 1
            limited = next(reply for status, reply in results if status == 429)
            assert limited["error"]["type"] == "rate_limit_error"
        finally:
            await runner.cleanup()


@pytest.mark.model
async def test_the_local_model_answers_through_the_proxy(local_server: LocalServer) -> None:
    backend = OpenAICompatible(local_server.model, base_url=local_server.base_url, supports_n=False, timeout=120)
    proxy = Proxy(backend, token=TOKEN)
    runner, url = await run_proxy_runner(create_proxy_app(proxy))
    try:
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0)
        plain = await client.chat.completions.create(model=local_server.model, messages=user("What is 12 + 30?"),
                                                     max_tokens=24, seed=0)
        assert plain.choices[0].message.content and plain.usage is not None and plain.usage.completion_tokens > 0
        solved = await client.chat.completions.create(model=f"long-cot/{local_server.model}",
                                                      messages=user("What is 12 + 30?"), max_tokens=96, seed=0)
        block = solved.model_extra["agentkit"]  # type: ignore[index]
        assert block["method"] == "long-cot" and block["calls"] == 1
        assert solved.usage is not None and solved.usage.total_tokens == block["B_total"] > 0
        await client.close()
    finally:
        await runner.cleanup()


async def test_the_cli_serves_until_sigterm_and_refuses_bad_flags_in_one_line() -> None:
    import signal
    import sys

    async with ScriptedServer(script) as upstream:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agentkit", "proxy", "--backend",
            f"openai-compatible:{upstream.base_url}?model=scripted&retries=1", "--port", "0", "--token", TOKEN,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
            url = line.split(" at ")[1].split("/v1")[0]
            client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0)
            reply = await client.chat.completions.create(model="sr/scripted", messages=user(),
                                                         extra_body={"agentkit": {"params": {"rounds": 2}}})
            assert reply.model_extra["agentkit"]["rounds"] == 2  # type: ignore[index]
            await client.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 30)
        assert code == 0
    bad = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentkit", "proxy", "--backend", "openai-compatible:http://127.0.0.1:9/v1?model=m",
        "--concurrency", "0", "--port", "0", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(bad.communicate(), 60)
    assert bad.returncode == 2 and err.decode().count("\n") == 1 and "concurrency" in err.decode()
