from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentkit.bus import Bus, Recorder, read_recording, replay
from agentkit.errors import BusClosed, ConfigError, HandlerFailed, RequestTimeout
from agentkit.messages import Draft, Failure, Message, Problem, Solution, SolveRequest


def problem(i: int, run: str = "run") -> Problem:
    return Problem(problem_id=f"p{i}", text=f"problem {i}", run_id=run)


async def test_publish_fans_out_to_every_matching_subscriber_in_order() -> None:
    seen: dict[str, list[str]] = {"a": [], "b": [], "all": [], "drafts": []}
    async with Bus() as bus:
        bus.subscribe(Problem, lambda m: seen["a"].append(m.problem_id))

        async def slow(m: Problem) -> None:
            await asyncio.sleep(0.001 * (5 - int(m.problem_id[1:])))  # later messages finish faster
            seen["b"].append(m.problem_id)

        bus.subscribe(Problem, slow)
        bus.subscribe(Message, lambda m: seen["all"].append(m.kind))
        bus.subscribe(Draft, lambda m: seen["drafts"].append(m.id))
        for i in range(5):
            await bus.publish(problem(i))
    expected = [f"p{i}" for i in range(5)]
    assert seen["a"] == expected and seen["b"] == expected  # per-subscriber order, even for a slow one
    assert seen["all"] == ["problem"] * 5
    assert seen["drafts"] == []


async def test_predicate_filters() -> None:
    got: list[str] = []
    async with Bus() as bus:
        bus.subscribe(Problem, lambda m: got.append(m.problem_id), predicate=lambda m: m.problem_id.endswith("2"))
        for i in range(4):
            await bus.publish(problem(i))
    assert got == ["p2"]


async def test_run_subscriptions_get_only_their_runs_messages_in_order_with_the_global_ones() -> None:
    got: dict[str, list[str]] = {"a": [], "b": [], "b-not-p0": [], "all": []}
    async with Bus() as bus:
        bus.subscribe(Problem, lambda m: got["a"].append(m.problem_id), run_id="a")
        sub_b = bus.subscribe(Message, lambda m: got["b"].append(m.kind), run_id="b")
        bus.subscribe(Problem, lambda m: got["b-not-p0"].append(m.problem_id), run_id="b",
                      predicate=lambda m: m.problem_id != "p0")
        bus.subscribe(Message, lambda m: got["all"].append(f"{m.run_id}:{m.kind}"))
        for i in range(4):
            await bus.publish(problem(i, run="a" if i % 2 else "b"))
        await bus.publish(Draft(problem_id="p9", round=0, branch=0, text="x", run_id="a"))  # a's subscription takes Problems only
        await bus.drain()
        assert sub_b.matches(problem(0, run="b")) and not sub_b.matches(problem(0, run="a"))
        await bus.unsubscribe(sub_b)
        await bus.publish(problem(4, run="b"))
    assert got["a"] == ["p1", "p3"]
    assert got["b"] == ["problem", "problem"]  # p0 and p2; nothing after it unsubscribed
    assert got["b-not-p0"] == ["p2", "p4"]  # the predicate still applies to a run subscription
    assert got["all"] == ["b:problem", "a:problem", "b:problem", "a:problem", "a:draft", "b:problem"]


async def test_request_reply_and_timeout() -> None:
    async with Bus() as bus:
        async def solve(req: SolveRequest) -> Solution:
            return req.derive(Solution, problem_id=req.problem.problem_id, text="4", answer="4", sender="solver")

        bus.subscribe(SolveRequest, solve)
        request = SolveRequest(problem=problem(1), run_id="r9")
        reply = await bus.request(request, Solution, timeout=5)
        assert reply.parent_id == request.id and reply.run_id == "r9" and reply.answer == "4"

        with pytest.raises(RequestTimeout, match="no Draft answered"):
            await bus.request(SolveRequest(problem=problem(2)), Draft, timeout=0.05)


async def test_failure_is_published_isolated_and_raised_to_requesters() -> None:
    failures: list[Failure] = []
    handled: list[str] = []
    async with Bus() as bus:
        def flaky(m: Problem) -> None:
            if m.problem_id == "p1":
                raise ValueError("bad problem")
            handled.append(m.problem_id)

        bus.subscribe(Problem, flaky, name="flaky")
        bus.subscribe(Failure, failures.append)
        for i in range(3):
            await bus.publish(problem(i))

        def broken(req: SolveRequest) -> Solution:
            raise RuntimeError("solver crashed")

        bus.subscribe(SolveRequest, broken, name="broken")
        with pytest.raises(HandlerFailed, match="solver crashed") as info:
            await bus.request(SolveRequest(problem=problem(5)), Solution, timeout=5)
        assert isinstance(info.value.failure, Failure)
    assert handled == ["p0", "p2"]  # the bus kept running after the failure
    assert [f.handler for f in failures] == ["flaky", "broken"]
    assert failures[0].error_type == "ValueError" and failures[0].failed_kind == "problem"
    assert bus.failures == 2


async def test_failure_in_a_failure_handler_does_not_cascade() -> None:
    async with Bus() as bus:
        def bad(m: Failure) -> None:
            raise RuntimeError("again")

        bus.subscribe(Failure, bad)
        bus.subscribe(Problem, lambda m: 1 / 0)
        await bus.publish(problem(0))
    assert bus.failures == 2  # the Problem handler, then the Failure handler once; no loop


async def test_full_queue_blocks_the_publisher() -> None:
    gate = asyncio.Event()
    handled: list[str] = []
    bus = Bus()

    async def slow(m: Problem) -> None:
        await gate.wait()
        handled.append(m.problem_id)

    bus.subscribe(Problem, slow, queue_size=2)
    for i in range(3):  # one in the handler, two in the queue
        await asyncio.wait_for(bus.publish(problem(i)), 1)
    await asyncio.sleep(0)
    blocked = asyncio.create_task(bus.publish(problem(3)))
    await asyncio.sleep(0.05)
    assert not blocked.done()  # backpressure: the queue is full and the publisher waits
    gate.set()
    await asyncio.wait_for(blocked, 1)
    await bus.close()
    assert handled == ["p0", "p1", "p2", "p3"]


async def test_close_drains_in_flight_work_including_follow_ups() -> None:
    results: list[str] = []
    bus = Bus()

    async def step(m: Problem) -> Solution:
        await asyncio.sleep(0.01)
        return m.derive(Solution, problem_id=m.problem_id, text="t", answer="a")

    async def collect(m: Solution) -> None:
        await asyncio.sleep(0.01)
        results.append(m.problem_id)

    bus.subscribe(Problem, step)
    bus.subscribe(Solution, collect)
    for i in range(5):
        await bus.publish(problem(i))
    await bus.close()
    assert sorted(results) == [f"p{i}" for i in range(5)]
    with pytest.raises(BusClosed):
        await bus.publish(problem(9))
    with pytest.raises(BusClosed):
        bus.subscribe(Problem, print)


async def test_concurrent_subscription_overlaps_handlers() -> None:
    active = 0
    peak = 0
    async with Bus() as bus:
        async def work(m: Problem) -> None:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.02)
            active -= 1

        bus.subscribe(Problem, work, concurrency=4)
        for i in range(8):
            await bus.publish(problem(i))
    assert peak == 4


async def test_bad_arguments_are_config_errors() -> None:
    async with Bus() as bus:
        with pytest.raises(ConfigError):
            bus.subscribe(dict, print)  # type: ignore[arg-type]
        with pytest.raises(ConfigError):
            bus.subscribe(Problem, print, queue_size=0)
        with pytest.raises(ConfigError):
            await bus.publish({"kind": "problem"})  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Bus(queue_size=0)


async def test_recorder_and_replay_reproduce_the_message_sequence(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"

    async def pipeline(bus: Bus) -> None:
        async def solve(req: SolveRequest) -> Solution:
            await asyncio.sleep(0.001)
            return req.derive(Solution, problem_id=req.problem.problem_id, text="x", answer="1")

        bus.subscribe(SolveRequest, solve, concurrency=2)

    bus = Bus()
    recorder = Recorder(path, run_id="run-a").attach(bus)
    await pipeline(bus)
    for i in range(4):
        await bus.publish(SolveRequest(problem=problem(i, "run-a"), run_id="run-a"))
    await bus.publish(problem(99, "other-run"))  # filtered out by the recorder's run_id
    await bus.close()
    await recorder.close()
    recorded = read_recording(path)
    assert [m.kind for m in recorded].count("solve_request") == 4
    assert [m.kind for m in recorded].count("solution") == 4
    assert all(m.run_id == "run-a" for m in recorded)

    # Replaying everything into a fresh bus publishes the same messages in the same order.
    replayed_path = tmp_path / "replayed.jsonl"
    bus2 = Bus()
    recorder2 = Recorder(replayed_path).attach(bus2)
    assert await replay(path, bus2) == len(recorded)
    await bus2.close()
    await recorder2.close()
    assert read_recording(replayed_path) == recorded

    # Replaying only the requests into live handlers produces fresh replies to the same requests.
    bus3 = Bus()
    replies: list[Solution] = []
    await pipeline(bus3)
    bus3.subscribe(Solution, replies.append)
    await replay(path, bus3, kinds=["solve_request"])
    await bus3.close()
    request_ids = {m.id for m in recorded if m.kind == "solve_request"}
    assert {r.parent_id for r in replies} == request_ids


def test_read_recording_reports_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(problem(1).model_dump_json() + "\n{broken\n")
    with pytest.raises(ConfigError, match=r"bad\.jsonl:2"):
        read_recording(path)
