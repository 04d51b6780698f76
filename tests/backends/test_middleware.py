"""Retry, limits and cache, over real HTTP to the scripted OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentkit.backends import (
    Cached,
    CallContext,
    ConcurrencyLimit,
    Limited,
    OpenAICompatible,
    RateLimit,
    ResponseCache,
    Retrying,
    RetryPolicy,
    with_middleware,
)
from agentkit.errors import CONNECTION_REFUSED, BackendRequestError, BackendUnavailable, ConfigError
from agentkit.testing import Fault, Reply, ScriptedBackend, ScriptedServer


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    async with ScriptedServer() as s:
        yield s


@pytest.fixture(params=["aiohttp", "sdk"])
def http(request: pytest.FixtureRequest) -> str:
    """Both transports of OpenAICompatible must map every fault the same way."""
    return str(request.param)


def client(server: ScriptedServer, http: str = "aiohttp", timeout: float = 5.0) -> OpenAICompatible:
    return OpenAICompatible("scripted", base_url=server.base_url, timeout=timeout, http=http)


class SleepLog:
    """Records backoff sleeps instead of sleeping (so tests assert the waits, not the clock)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def test_429_retry_after_is_honoured(server: ScriptedServer, http: str) -> None:
    server.set_script([Fault.rate_limited(retry_after=1.5), Fault.rate_limited(retry_after=0.25),
                         Reply("forty two")])
    sleeps = SleepLog()
    backend = Retrying(client(server, http), RetryPolicy(attempts=5), sleep=sleeps)
    [completion] = await backend.chat("hi there", max_tokens=10)
    assert completion.text == "forty two"
    assert sleeps.waits == [1.5, 0.25]
    assert len(server.requests) == 3 and backend.retries == 2
    await backend.aclose()


async def test_5xx_timeouts_drops_and_malformed_replies_are_retried(server: ScriptedServer, http: str) -> None:
    server.set_script([Fault.http(500), Fault.http(503), Fault.drop(), Fault.malformed(), Fault.no_choices(),
                         Fault.hang(), Reply("ok")])
    sleeps = SleepLog()
    backend = Retrying(client(server, http, timeout=0.5), RetryPolicy(attempts=10, initial_wait=0.1), sleep=sleeps)
    [completion] = await backend.chat("x")
    assert completion.text == "ok"
    assert len(server.requests) == 7 and len(sleeps.waits) == 6
    assert all(0 < w <= 30 for w in sleeps.waits)
    await backend.aclose()


@pytest.mark.parametrize(
    ("fault", "cause"),
    [(Fault.http(500, "engine exploded"), "HTTP 500"), (Fault.rate_limited(0.01), "HTTP 429"),
     (Fault.hang(), "timeout"), (Fault.drop(), "connection error"), (Fault.malformed(), "malformed response")],
)
async def test_retries_stop_at_the_attempt_bound_and_name_the_cause(
    server: ScriptedServer, fault: Fault, cause: str, http: str) -> None:
    server.set_script(lambda body: fault)
    backend = Retrying(client(server, http, timeout=0.3), RetryPolicy(attempts=3, initial_wait=0.01), sleep=SleepLog())
    with pytest.raises(BackendUnavailable) as info:
        await backend.chat("x")
    assert info.value.attempts == 3 and info.value.cause == cause
    assert "gave up after 3 attempt(s)" in str(info.value) and cause in str(info.value)
    assert len(server.requests) == 3
    await backend.aclose()


async def test_retries_stop_at_the_time_bound(server: ScriptedServer, http: str) -> None:
    server.set_script(lambda body: Fault.rate_limited(retry_after=0.2))
    backend = Retrying(client(server, http), RetryPolicy(attempts=1000, max_time=0.5))
    with pytest.raises(BackendUnavailable) as info:
        await backend.chat("x")
    assert 2 <= info.value.attempts <= 4  # ~0.5 s of 0.2 s waits, not 1000 attempts
    await backend.aclose()


async def test_a_refused_connection_is_tried_only_refused_attempts_times(http: str) -> None:
    sleeps = SleepLog()  # nothing listens on port 9: a wrong address fails in a few tries, not the whole backoff
    inner = OpenAICompatible("m", base_url="http://127.0.0.1:9/v1", timeout=5.0, http=http)
    backend = Retrying(inner, RetryPolicy(attempts=6, refused_attempts=3, initial_wait=0.01), sleep=sleeps)
    with pytest.raises(BackendUnavailable) as info:
        await backend.chat("x")
    assert info.value.attempts == 3 and info.value.cause == CONNECTION_REFUSED and backend.retries == 2
    assert len(sleeps.waits) == 2 and all(0.01 <= w <= 0.05 for w in sleeps.waits)  # backoff with jitter
    await backend.aclose()


async def test_a_400_is_not_retried_and_carries_the_server_message(server: ScriptedServer, http: str) -> None:
    server.set_script(lambda body: Fault.http(400, "max_tokens is too large"))
    sleeps = SleepLog()
    backend = Retrying(client(server, http), sleep=sleeps)
    with pytest.raises(BackendRequestError, match="max_tokens is too large") as info:
        await backend.chat("x")
    assert info.value.status == 400 and len(server.requests) == 1 and sleeps.waits == []
    await backend.aclose()


async def test_concurrency_limit_is_shared_and_call_n_plus_1_waits() -> None:
    async with ScriptedServer(latency=0.3) as server:
        limit = ConcurrencyLimit(3)
        a = Limited(client(server), concurrency=limit)
        b = Limited(client(server), concurrency=limit)  # another backend sharing the same limit
        calls = [asyncio.create_task((a if i % 2 else b).chat(f"q{i}")) for i in range(4)]
        await asyncio.sleep(0.15)
        assert limit.in_flight == 3 and limit.waiting == 1  # call N+1 waits
        assert server.in_flight == 3
        await asyncio.gather(*calls)
        assert limit.peak == 3 and server.max_in_flight == 3 and len(server.requests) == 4
        await a.aclose()
        await b.aclose()


async def test_concurrency_limit_max_queued_refuses_instead_of_growing() -> None:
    limit = ConcurrencyLimit(1, max_queued=1)
    backend = Limited(ScriptedBackend(latency=0.2), concurrency=limit)
    first = asyncio.create_task(backend.chat("a"))
    second = asyncio.create_task(backend.chat("b"))
    await asyncio.sleep(0.05)
    with pytest.raises(ConfigError, match="saturated"):
        await backend.chat("c")
    await asyncio.gather(first, second)


async def test_rate_limit_makes_the_request_past_the_quota_wait() -> None:
    # A bucket of 60 requests refilled at one per second: the 60 calls fit in well under a second even on a
    # loaded machine (at 600 per minute, a slow machine refilled the bucket before call N+1 came).
    rate = RateLimit(requests_per_minute=60)
    backend = Limited(ScriptedBackend(), rate=rate)
    await asyncio.gather(*(backend.chat(f"q{i}") for i in range(60)))
    assert rate.waited_s == 0
    started = time.monotonic()
    await backend.chat("one more")
    assert rate.waited_s > 0  # call N+1 waited for the bucket to refill (up to a second)
    assert time.monotonic() - started >= 0.05


async def test_token_rate_limit_charges_real_usage() -> None:
    rate = RateLimit(tokens_per_minute=6000)
    backend = Limited(ScriptedBackend(lambda body: Reply("w " * 100)), rate=rate)
    await backend.chat("x", max_tokens=100)
    # One request: estimated (1//4 + 4 + 100) then settled to the real 1 + 100 tokens.
    assert rate._tokens == pytest.approx(6000 - 101, abs=1)
    with pytest.raises(ConfigError):
        RateLimit(tokens_per_minute=0)


async def test_cache_keys_on_branch_and_sample_so_drafts_never_collapse(tmp_path: Path) -> None:
    counter = iter(range(100))
    inner = ScriptedBackend(lambda body: Reply(f"draft {next(counter)}"))
    cache = ResponseCache(tmp_path / "cache.sqlite")
    backend = Cached(inner, cache)
    drafts = [await backend.chat("same prompt", temperature=0.8, seed=1,
                                 context=CallContext(run_id="r", role="student", round=1, branch=b))
              for b in range(4)]
    assert len({d[0].text for d in drafts}) == 4 and len(inner.requests) == 4
    # The same call again (same branch) is served from the cache with its original usage, flagged.
    [again] = await backend.chat("same prompt", temperature=0.8, seed=1,
                                 context=CallContext(run_id="r", role="student", round=1, branch=2))
    assert again.cached and again.text == drafts[2][0].text
    assert (again.input_tokens, again.output_tokens) == (drafts[2][0].input_tokens, drafts[2][0].output_tokens)
    assert len(inner.requests) == 4 and cache.hits == 1
    # A different sample index, seed, or any sampling parameter is a different request.
    await backend.chat("same prompt", temperature=0.8, seed=1, context=CallContext(run_id="r", round=1, branch=2,
                                                                                  role="student", sample=1))
    await backend.chat("same prompt", temperature=0.8, seed=2, context=CallContext(run_id="r", round=1, branch=2,
                                                                                  role="student"))
    assert len(inner.requests) == 6
    # Sampled, unseeded calls without a context cannot be told apart, so they are never cached.
    await backend.chat("p", temperature=0.8)
    await backend.chat("p", temperature=0.8)
    assert len(inner.requests) == 8
    cache.close()


async def test_cache_persists_across_instances_and_never_stores_failures_or_empty_replies(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    inner = ScriptedBackend([Fault.http(500), Reply("   "), Reply("real answer")])
    cache = ResponseCache(path)
    backend = Retrying(inner, RetryPolicy(attempts=1))
    cached = Cached(backend, cache)
    with pytest.raises(BackendUnavailable):
        await cached.chat("q")
    [empty] = await cached.chat("q")
    assert empty.text.strip() == "" and len(cache) == 0
    [real] = await cached.chat("q")
    assert real.text == "real answer" and len(cache) == 1
    cache.close()
    reopened = Cached(ScriptedBackend([Reply("should not be called")]), ResponseCache(path))
    [hit] = await reopened.chat("q")
    assert hit.cached and hit.text == "real answer"


async def test_cache_is_bounded(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite", max_entries=3)
    backend = Cached(ScriptedBackend(), cache)
    for i in range(10):
        await backend.chat(f"prompt {i}")
    assert len(cache) == 3
    cache.close()


async def test_with_middleware_stacks_in_order(server: ScriptedServer, tmp_path: Path) -> None:
    limit = ConcurrencyLimit(2)
    cache = ResponseCache(tmp_path / "c.sqlite")
    backend = with_middleware(client(server), concurrency=limit, cache=cache)
    assert isinstance(backend, Cached) and isinstance(backend.inner, Retrying)
    assert isinstance(backend.inner.inner, Limited) and backend.inner.inner.concurrency is limit
    assert backend.unwrap().model == "scripted" and backend.name == "openai-compatible:scripted"
    [c] = await backend.chat("hello world")
    assert c.text == "echo: hello world" and c.input_tokens == 2 and c.output_tokens == 3
    await backend.aclose()
    cache.close()


async def test_n_choices_fan_out_when_the_server_cannot_do_n(server: ScriptedServer) -> None:
    backend = OpenAICompatible("scripted", base_url=server.base_url, supports_n=False)
    completions = await backend.chat("p q", n=3, seed=10, temperature=0.7)
    assert [c.index for c in completions] == [0, 1, 2]
    assert sorted(r["seed"] for r in server.requests) == [10, 11, 12] and all("n" not in r for r in server.requests)
    native = OpenAICompatible("scripted", base_url=server.base_url, supports_n=True)
    completions = await native.chat("p q", n=3, seed=10)
    assert server.requests[-1]["n"] == 3 and len(completions) == 3
    assert sum(c.output_tokens for c in completions) == 3 * 3 and all(c.usage_estimated for c in completions)
    await backend.aclose()
    await native.aclose()


async def test_invalid_requests_are_config_errors() -> None:
    backend = ScriptedBackend()
    for kwargs in ({"max_tokens": 0}, {"temperature": -1}, {"n": 0}, {"top_p": 2.0}):
        with pytest.raises(ConfigError, match="invalid chat request"):
            await backend.chat("x", **kwargs)
    with pytest.raises(ConfigError, match="messages"):
        await backend.chat([])
    with pytest.raises(ConfigError, match="role"):
        await backend.chat([{"role": "wizard", "content": "x"}])


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # the session left open on the first, closed loop
@pytest.mark.parametrize("close_between", [True, False])
def test_an_aiohttp_backend_works_under_a_new_event_loop(close_between: bool) -> None:
    """A session belongs to one loop: a backend used under two `asyncio.run` calls opens a new one, whether
    or not it was closed in between (closing it is the clean way: nothing is left open)."""

    async def serve_and_ask(backend: OpenAICompatible | None) -> tuple[OpenAICompatible, str]:
        async with ScriptedServer([Reply("one"), Reply("two")]) as server:
            backend = backend or OpenAICompatible("scripted", base_url=server.base_url)
            backend.base_url = server.base_url
            [completion] = await backend.chat("x")
            if close_between:
                await backend.aclose()
            return backend, completion.text

    backend, first = asyncio.run(serve_and_ask(None))
    backend, second = asyncio.run(serve_and_ask(backend))
    assert (first, second) == ("one", "one") and backend.describe()["http"].startswith("aiohttp")
    asyncio.run(backend.aclose())


def test_transport_choice_is_checked() -> None:
    with pytest.raises(ConfigError, match="needs a base_url"):
        OpenAICompatible("gpt-4o-mini", http="aiohttp")
    with pytest.raises(ConfigError, match="'aiohttp' or 'sdk'"):
        OpenAICompatible("m", base_url="http://127.0.0.1:1/v1", http="curl")
    assert OpenAICompatible("gpt-4o-mini", api_key="k").http == "sdk"
