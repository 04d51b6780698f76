"""The token ledger: every LLM call of a run, and the budgets computed from them.

Each call is recorded with its role, round, branch, stage, input and output tokens (as the server reported
them, raw: a cached reply counts its original usage), latency, and whether it lies on the accepted path.

Definitions (after "Rethinking Thinking Tokens", arXiv 2510.01123, section 2.2; both count input *and*
output tokens):

- ``B_total`` = sum of (input + output) over every call: the compute / cost proxy.
- ``B_seq`` = sum over sequential **stages** of the largest **branch** in that stage: the critical path,
  i.e. the latency proxy assuming parallel branches really run in parallel. A stage is a set of calls that
  run side by side (the M drafts of a round; a distill step); stages run one after another in the order
  they first appear. Calls of one branch within one stage run one after another, so they add up. The stage
  defaults to ``"{round}:{role}"``.
- ``accepted_path_tokens`` = sum of (input + output) over calls marked accepted: the paper's literal
  definition when the caller knows which branch was kept.
- ``answer_output_tokens`` = output tokens of the call marked ``final`` (the Metacognitive Reuse metric).

A request with ``n > 1`` choices is recorded as n calls on branches ``branch .. branch + n - 1``, each with
the prompt's input tokens, exactly as n separate requests would be; so budgets do not depend on whether a
backend supports ``n``.

Budgets can be **enforced**: ``cap(max_tokens, prompt_tokens, ...)`` lowers the next call's ``max_tokens``
to what the remaining ``B_total`` and ``B_seq`` allow (raising ``BudgetExceeded`` when nothing is left);
``agentkit.calls.budgeted_chat`` does this for every model call a role makes, from the tokens the earlier
calls really used and the next prompt counted exactly where the backend can (see ``Ledger``).

The ledger only counts: it never calls a model (the budgeted call lives above it, in ``agentkit.calls``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentkit.errors import BudgetExceeded, ConfigError

__all__ = ["Budget", "CallRecord", "Ledger", "estimate_prompt_tokens", "estimate_tokens"]


class CallRecord(BaseModel):
    """One LLM call (one choice) as the ledger saw it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    call_id: int
    role: str
    round: int = 0
    branch: int = 0
    stage: str
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    latency_s: float = 0.0
    accepted: bool = True
    """On the accepted path (the drafts/steps whose output was kept)."""
    final: bool = False
    """Produced the final answer."""
    cached: bool = False
    model: str = ""
    finish_reason: str = ""
    reasoning_tokens: int = Field(default=0, ge=0)
    """Of ``output_tokens``, those the server reported as reasoning (0 when it reports none)."""
    temperature: float | None = None
    """The sampling temperature the call was sent with (None: not recorded)."""
    replica: str = ""
    """The replica that answered (a replicated backend); empty for a single server."""

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Budget(BaseModel):
    """Token budgets to enforce; None means unbounded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    total: int | None = Field(default=None, ge=1)
    """Bound on ``B_total`` (every call, input + output)."""
    sequential: int | None = Field(default=None, ge=1)
    """Bound on ``B_seq`` (the critical path, input + output)."""
    output: int | None = Field(default=None, ge=1)
    """Bound on the output tokens of every call together (what an API bills as completion tokens). Each call's
    ``max_tokens`` is capped to what is left, so a server that honours ``max_tokens`` never overruns it."""


def estimate_tokens(text: str) -> int:
    """About four characters per token for English and math text: agentkit's one pre-call token estimator.
    Used to plan and cap (``max_tokens``, extractive workspaces, rate limits) before a call, never to report
    usage, which always comes from the server."""
    return len(text) // 4 + 1


def estimate_prompt_tokens(messages: Iterable[Any], count: Callable[[str], int] = estimate_tokens) -> int:
    """A prompt's pre-call size: ``count`` of each message's content plus 4 per message (chat-template
    overhead). ``messages`` are dicts with ``content`` or objects with a ``content`` attribute."""
    return sum(count(m["content"] if isinstance(m, dict) else m.content) + 4 for m in messages)


class Ledger:
    """Records calls; computes ``B_total``, ``B_seq`` and the rest; optionally enforces a ``Budget``.

    Args:
        budget: budgets to enforce in ``cap`` / ``chat``.
        count_tokens: counts a prompt's tokens before a call (default: characters / 4, plus 4 per message).

    How a call's prompt is counted before it is sent, when a budget is enforced (``budgeted_chat``): exactly,
    by the backend's tokenizer (``Backend.count_prompt_tokens``: llama.cpp's and vLLM's tokenize endpoints,
    the scripted servers), plus ``exact_reserve`` (what the server was seen to bill beyond its own count, 0 on
    the servers we know); otherwise from the estimate, scaled by the largest reported/estimated ratio seen so far
    (at least 1) and widened by the spread of the ratios seen (``prompt_tokens``). ``calibrate``, called after
    each call with what the server reported, learns both. With an exact count an enforced budget is never
    overrun; from estimates alone it can be, by an estimation error larger than any seen before (the first
    call's, above all): ``over_budget`` then says so, and the sweep report counts such rows.
    """

    def __init__(self, budget: Budget | None = None, *, run_id: str = "",
                 count_tokens: Callable[[str], int] | None = None) -> None:
        self.budget = budget or Budget()
        self.run_id = run_id
        self._count = count_tokens or estimate_tokens
        self._records: list[CallRecord] = []
        self._ids = itertools.count(1)
        self.prompt_scale = 1.0
        """Largest (reported / estimated) prompt-token ratio seen so far, at least 1 (see the class doc)."""
        self._ratios: tuple[float, float] | None = None
        """The smallest and largest reported/estimated ratio seen (their spread widens later estimates)."""
        self.exact_reserve = 0
        """Tokens the server billed beyond the backend's own exact count, at most (added to later exact counts)."""

    # -- recording ---------------------------------------------------------------------------------
    def record(
        self,
        *,
        role: str,
        input_tokens: int,
        output_tokens: int,
        round: int = 0,
        branch: int = 0,
        stage: str | None = None,
        latency_s: float = 0.0,
        accepted: bool = True,
        final: bool = False,
        cached: bool = False,
        model: str = "",
        finish_reason: str = "",
        reasoning_tokens: int = 0,
        temperature: float | None = None,
        replica: str = "",
    ) -> CallRecord:
        """Record one call and return its record."""
        if input_tokens < 0 or output_tokens < 0:
            raise ConfigError(f"token counts cannot be negative ({input_tokens}, {output_tokens})")
        record = CallRecord(
            call_id=next(self._ids), role=role, round=round, branch=branch,
            stage=stage if stage is not None else f"{round}:{role}", input_tokens=input_tokens,
            output_tokens=output_tokens, latency_s=latency_s, accepted=accepted, final=final, cached=cached,
            model=model, finish_reason=finish_reason, reasoning_tokens=reasoning_tokens, temperature=temperature,
            replica=replica,
        )
        self._records.append(record)
        return record

    def _replace(self, call_id: int, **changes: Any) -> None:
        for i, record in enumerate(self._records):
            if record.call_id == call_id:
                self._records[i] = record.model_copy(update=changes)
                return
        raise ConfigError(f"no call {call_id} in this ledger")

    def mark_accepted(self, call_id: int, accepted: bool = True) -> None:
        self._replace(call_id, accepted=accepted)

    def mark_final(self, call_id: int) -> None:
        """Mark ``call_id`` as the call that produced the final answer (and only it)."""
        for i, record in enumerate(self._records):
            if record.final:
                self._records[i] = record.model_copy(update={"final": False})
        self._replace(call_id, final=True, accepted=True)

    @property
    def records(self) -> tuple[CallRecord, ...]:
        return tuple(self._records)

    # -- budgets -----------------------------------------------------------------------------------
    def _stage_costs(self, exclude_stage: str | None = None) -> dict[str, dict[int, int]]:
        stages: dict[str, dict[int, int]] = {}
        for r in self._records:
            if r.stage == exclude_stage:
                continue
            branches = stages.setdefault(r.stage, {})
            branches[r.branch] = branches.get(r.branch, 0) + r.tokens
        return stages

    @property
    def b_total(self) -> int:
        """Input + output tokens over every call."""
        return sum(r.tokens for r in self._records)

    @property
    def b_seq(self) -> int:
        """Sum over stages of the largest branch's input + output tokens (the critical path)."""
        return sum(max(branches.values()) for branches in self._stage_costs().values())

    @property
    def accepted_path_tokens(self) -> int:
        return sum(r.tokens for r in self._records if r.accepted)

    @property
    def input_tokens(self) -> int:
        return sum(r.input_tokens for r in self._records)

    @property
    def output_tokens(self) -> int:
        return sum(r.output_tokens for r in self._records)

    @property
    def answer_output_tokens(self) -> int:
        """Output tokens of the final-answer call (0 when none is marked final)."""
        return sum(r.output_tokens for r in self._records if r.final)

    @property
    def hidden_output_tokens(self) -> int:
        """Output tokens a reader of the final answer does not see: every call's but the final call's visible text
        (its own reasoning counts as hidden). With no call marked final, all of them."""
        visible = sum(r.output_tokens - r.reasoning_tokens for r in self._records if r.final)
        return max(0, self.output_tokens - visible)

    @property
    def calls(self) -> int:
        return len(self._records)

    def remaining(self, *, stage: str | None = None, branch: int = 0) -> int | None:
        """Tokens (input + output) a next call in ``stage``/``branch`` may still use; None if unbounded."""
        limits: list[int] = []
        if self.budget.total is not None:
            limits.append(self.budget.total - self.b_total)
        if self.budget.output is not None:
            limits.append(self.budget.output - self.output_tokens)
        if self.budget.sequential is not None:
            others = sum(max(b.values()) for b in self._stage_costs(exclude_stage=stage).values())
            here = sum(r.tokens for r in self._records if r.stage == stage and r.branch == branch)
            limits.append(self.budget.sequential - others - here)
        return min(limits) if limits else None

    def cap(self, max_tokens: int | None, *, prompt_tokens: int, stage: str | None = None, branch: int = 0,
            n: int = 1) -> int | None:
        """The ``max_tokens`` a call may use so that its prompt plus output fits the remaining budgets.

        ``n`` choices on branches ``branch..branch+n-1`` each need room; the total budget is shared.
        Raises ``BudgetExceeded`` when not even one output token fits.
        """
        room = self._room(prompt_tokens, stage=stage, branch=branch, n=n)
        caps = [c for c in (max_tokens, room) if c is not None]
        if not caps:
            return None
        allowed = min(caps)
        if allowed < 1:
            raise BudgetExceeded(
                f"no token budget left for a call with a {prompt_tokens}-token prompt in stage {stage!r} "
                f"(B_total {self.b_total}/{self.budget.total}, B_seq {self.b_seq}/{self.budget.sequential}); "
                "raise the budget or shorten the prompt"
            )
        return allowed

    @property
    def enforcing(self) -> bool:
        """Whether any budget is enforced (calls are then capped, and their prompts counted first)."""
        return self.budget.total is not None or self.budget.sequential is not None or self.budget.output is not None

    @property
    def over_budget(self) -> bool:
        """Whether the calls recorded exceed an enforced budget (possible only where prompts were estimated)."""
        return ((self.budget.sequential is not None and self.b_seq > self.budget.sequential)
                or (self.budget.total is not None and self.b_total > self.budget.total)
                or (self.budget.output is not None and self.output_tokens > self.budget.output))

    def fits(self, max_tokens: int, prompt_tokens: int, *, stage: str | None = None, branch: int = 0, n: int = 1
             ) -> bool:
        """Whether a call of ``prompt_tokens`` with its cap ``max_tokens`` fits every budget as it is (its cap would
        not be lowered)."""
        room = self._room(prompt_tokens, stage=stage, branch=branch, n=n)
        return room is None or max_tokens <= room

    def _room(self, prompt_tokens: int, *, stage: str | None, branch: int, n: int) -> int | None:
        """The most output tokens each of ``n`` choices may write after a ``prompt_tokens`` prompt within every
        budget (None: no budget)."""
        caps: list[int] = []
        if self.budget.total is not None:
            caps.append((self.budget.total - self.b_total) // n - prompt_tokens)
        if self.budget.output is not None:
            caps.append((self.budget.output - self.output_tokens) // n)
        if self.budget.sequential is not None:
            for b in range(branch, branch + n):
                left = self.remaining(stage=stage, branch=b)
                assert left is not None
                caps.append(left - prompt_tokens)
        return min(caps) if caps else None

    def calibrate(self, estimated: int, reported: int, *, exact: int | None = None) -> None:
        """Learn from one call: the server reported ``reported`` prompt tokens where ``estimated`` were estimated
        (and ``exact`` counted by the backend's tokenizer, when it has one)."""
        if exact is not None and reported > exact:
            self.exact_reserve = max(self.exact_reserve, reported - exact)
        if reported > 0 and estimated > 0:
            ratio = reported / estimated
            low, high = self._ratios or (ratio, ratio)
            self._ratios = (min(low, ratio), max(high, ratio))
            self.prompt_scale = max(self.prompt_scale, ratio)

    def prompt_tokens(self, messages: Iterable[Any]) -> int:
        """A prompt's pre-call size as this ledger caps it when the backend cannot count it exactly: its
        counter, plus 4 per message, times ``prompt_scale``, widened by the spread of the ratios seen (a
        prompt of another kind may sit at the other end of that spread), at most by half."""
        spread = min(self._ratios[1] / self._ratios[0] - 1, 0.5) if self._ratios else 0.0
        return math.ceil(estimate_prompt_tokens(messages, self._count) * self.prompt_scale * (1 + spread))

    def count_tokens(self, text: str) -> int:
        """This ledger's pre-call token counter (the one its budget caps use)."""
        return self._count(text)

    def summary(self) -> dict[str, Any]:
        """The figures every method reports (the shared ``--json`` shape uses these names)."""
        return {
            "B_seq": self.b_seq,
            "B_total": self.b_total,
            "accepted_path_tokens": self.accepted_path_tokens,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "answer_output_tokens": self.answer_output_tokens,
            "calls": self.calls,
            "cached_calls": sum(1 for r in self._records if r.cached),
            "reasoning_tokens": sum(r.reasoning_tokens for r in self._records),
        }

    def temperatures(self) -> dict[str, list[float]]:
        """Per role, the temperatures its calls were sent with (what a run really sampled at, step by step)."""
        out: dict[str, set[float]] = {}
        for r in self._records:
            if r.temperature is not None:
                out.setdefault(r.role, set()).add(r.temperature)
        return {role: sorted(values) for role, values in sorted(out.items())}
