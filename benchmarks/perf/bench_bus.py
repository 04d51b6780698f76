"""Bus throughput: N small messages, publish-to-handled, agentkit's Bus vs autogen-core's
SingleThreadedAgentRuntime delivering the same pre-built messages to one handler, in the same process.

    python benchmarks/perf/bench_bus.py [--messages 100000] [--repeats 3]

Target (issue 2): agentkit at least 3x autogen-core's messages per second. autogen-core is installed only
for benchmarks (`make bench` installs the `bench` extra).

The ceiling, next to it: a **bare bounded queue** in the same process, ``asyncio.Queue(1024)`` (the bus's
default per-subscriber queue) with one consumer task calling the same handler, the same guarantees kept
(bounded, in order, a handler's exception caught and kept as a failure record rather than killing the
consumer); nothing else (no type routing, no predicates, no run bookkeeping). Target (issue 18): the bus within
2x of it. Prints a table and writes benchmarks/perf/results/bus.json. Reported figures: medians of the repeats,
ratios with their min-max over repeats.
"""

import argparse
import asyncio
import gc
import platform
import statistics
import time
from typing import Literal

from autogen_core import (
    DefaultTopicId,
    MessageContext,
    RoutedAgent,
    SingleThreadedAgentRuntime,
    default_subscription,
    message_handler,
)

from agentkit.bus import Bus
from agentkit.messages import Message

from _common import write_result


class Tick(Message):
    kind: Literal["bench_tick"] = "bench_tick"
    n: int


async def run_agentkit(messages: list[Tick]) -> float:
    handled = 0

    def handler(m: Tick) -> None:
        nonlocal handled
        handled += 1

    bus = Bus()
    bus.subscribe(Tick, handler)
    started = time.perf_counter()
    for m in messages:
        await bus.publish(m)
    await bus.drain()
    elapsed = time.perf_counter() - started
    await bus.close()
    assert handled == len(messages), handled
    return elapsed


async def run_bare_queue(messages: list[Tick]) -> float:
    handled = 0
    failures: list[tuple[Tick, BaseException]] = []

    def handler(m: Tick) -> None:
        nonlocal handled
        handled += 1

    queue: asyncio.Queue[Tick | None] = asyncio.Queue(maxsize=1024)

    async def consume() -> None:
        while (m := await queue.get()) is not None:
            try:
                handler(m)
            except Exception as exc:  # kept, as the bus turns a failure into a message
                failures.append((m, exc))

    consumer = asyncio.create_task(consume())
    started = time.perf_counter()
    for m in messages:
        await queue.put(m)
    await queue.put(None)
    await consumer
    elapsed = time.perf_counter() - started
    assert handled == len(messages) and not failures, handled
    return elapsed


@default_subscription
class Counter(RoutedAgent):
    handled = 0

    def __init__(self) -> None:
        super().__init__("counts ticks")

    @message_handler
    async def on_tick(self, message: Tick, ctx: MessageContext) -> None:
        Counter.handled += 1


async def run_autogen(messages: list[Tick]) -> float:
    Counter.handled = 0
    runtime = SingleThreadedAgentRuntime()
    await Counter.register(runtime, "counter", lambda: Counter())
    runtime.start()
    topic = DefaultTopicId()
    started = time.perf_counter()
    for m in messages:
        await runtime.publish_message(m, topic)
    await runtime.stop_when_idle()
    elapsed = time.perf_counter() - started
    assert Counter.handled == len(messages), Counter.handled
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    messages = [Tick(n=i) for i in range(args.messages)]
    results: dict[str, list[float]] = {"agentkit": [], "autogen-core": [], "bare queue": []}
    for _ in range(args.repeats):
        for name, fn in (("agentkit", run_agentkit), ("autogen-core", run_autogen), ("bare queue", run_bare_queue)):
            gc.collect()
            results[name].append(asyncio.run(fn(messages)))
    rates = {name: args.messages / statistics.median(times) for name, times in results.items()}
    ratio = rates["agentkit"] / rates["autogen-core"]
    per_repeat = [b / a for a, b in zip(results["bare queue"], results["agentkit"], strict=True)]
    slower = {"median": round(statistics.median(per_repeat), 2), "min": round(min(per_repeat), 2),
              "max": round(max(per_repeat), 2)}
    import autogen_core

    report = {
        "benchmark": "bus throughput, publish-to-handled", "messages": args.messages, "repeats": args.repeats,
        "seconds": results, "messages_per_second": {k: round(v) for k, v in rates.items()},
        "ratio_agentkit_over_autogen": round(ratio, 2), "target": ">= 3.0", "met": ratio >= 3.0,
        "agentkit_time_over_bare_queue": slower, "bare_queue_target": "<= 2.0 (within 2x of a bare bounded queue)",
        "bare_queue_met": slower["median"] <= 2.0,
        "autogen_core": autogen_core.__version__, "python": platform.python_version(),
    }
    write_result("bus", report)
    print(f"{'runtime':<14}{'median s':>10}{'msg/s':>12}")
    for name, times in results.items():
        print(f"{name:<14}{statistics.median(times):>10.3f}{rates[name]:>12,.0f}")
    print(f"agentkit / autogen-core = {ratio:.2f}x (target >= 3x: {'met' if ratio >= 3 else 'NOT met'})")
    print(f"agentkit takes {slower['median']:.2f}x the bare queue's time (min {slower['min']}, max {slower['max']}; "
          f"target <= 2x: {'met' if slower['median'] <= 2 else 'NOT met'})")


if __name__ == "__main__":
    main()
