"""The budgeted model call: one request to a ``Backend`` under a ``Ledger``.

``budgeted_chat`` is the one place where agentkit calls a model on behalf of a role. It renders nothing and
decides nothing: it caps ``max_tokens`` to what the ledger's budgets leave (``Ledger.cap``, with the prompt
counted exactly by the backend where it can, and the final call of a sequential budget given all that is left), passes a
``CallContext`` (run, role, round, branch, sample and step) so caches and test scripts can tell calls apart,
records every returned choice in the ledger, and calibrates the ledger's prompt estimates on the server's
reported counts. Roles call it; the ledger below it only counts, and the backend contract beside it
(``agentkit.backends.base.Backend``) only talks to a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentkit import tracing
from agentkit.backends.base import Backend, CallContext, ChatMessage, Completion, make_request
from agentkit.ledger import CallRecord, Ledger, estimate_prompt_tokens

__all__ = ["budgeted_chat", "counted_prompt_tokens"]


async def budgeted_chat(
    ledger: Ledger,
    backend: Backend,
    messages: Sequence[ChatMessage | dict[str, str]] | str,
    *,
    role: str,
    round: int = 0,
    branch: int = 0,
    sample: int = 0,
    stage: str | None = None,
    step: str = "",
    accepted: bool = True,
    final: bool = False,
    max_tokens: int | None = None,
    n: int = 1,
    **sampling: Any,
) -> list[tuple[CallRecord, Completion]]:
    """Call ``backend`` under ``ledger``: cap ``max_tokens`` to the budgets, pass a ``CallContext`` and record
    each returned choice (choice i on branch ``branch + i``). Returns (record, completion) pairs in choice
    order. ``stage`` defaults to ``"{round}:{role}"`` (see ``agentkit.ledger`` for what a stage is)."""
    stage = stage if stage is not None else f"{round}:{role}"
    request = make_request(messages, max_tokens=max_tokens, n=n, **sampling)
    estimate = estimate_prompt_tokens(request.messages, ledger.count_tokens)
    # The final answering call under a sequential budget takes whatever the budget leaves (its planned cap
    # came from estimates made before any call; the tokens really spent are known now).
    fill = final and ledger.budget.sequential is not None
    # The prompt is counted exactly (one tokenize request) unless the call cannot reach a budget's limit even
    # at its prompt's largest possible size: no more tokens than UTF-8 bytes, plus the chat template's.
    exact = None
    if ledger.enforcing and (fill or max_tokens is None or not ledger.fits(max_tokens, _most_tokens(request), stage=stage,
                                                                             branch=branch, n=n)):
        exact = await backend.count_prompt_tokens(request)
    prompt = exact + ledger.exact_reserve if exact is not None else ledger.prompt_tokens(request.messages)
    capped = ledger.cap(None if fill else max_tokens, prompt_tokens=prompt, stage=stage, branch=branch, n=n)
    context = CallContext(run_id=ledger.run_id, role=role, round=round, branch=branch, sample=sample, step=step)
    model = backend.model or backend.name
    # Built only when tracing is on; the run's identity (run id, method, problem) is on the method's span above.
    with tracing.span(lambda: f"chat {model}", lambda: {
            "gen_ai.operation.name": "chat", "openinference.span.kind": "LLM", "gen_ai.request.model": model,
            "gen_ai.request.max_tokens": capped, "gen_ai.request.temperature": request.temperature,
            "gen_ai.request.top_p": request.top_p, "agentkit.role": role, "agentkit.round": round,
            "agentkit.branch": branch, "agentkit.stage": stage, "agentkit.b_seq": ledger.b_seq,
            "agentkit.budget": ledger.budget.sequential}, kind="CLIENT") as current:
        completions = await backend.complete(request.model_copy(update={"max_tokens": capped, "context": context}))
        if current is not None:
            _trace_completions(current, request, completions)
    out = []
    for i, completion in enumerate(completions):
        record = ledger.record(
            role=role, round=round, branch=branch + i, stage=stage, input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens, latency_s=completion.latency_s, accepted=accepted, final=final,
            cached=completion.cached, model=completion.model, finish_reason=completion.finish_reason,
            reasoning_tokens=completion.reasoning_tokens, temperature=request.temperature,
            replica=completion.replica,
        )
        out.append((record, completion))
    ledger.calibrate(estimate, max((c.input_tokens for c in completions if not c.cached), default=0), exact=exact)
    return out


def _trace_completions(current: Any, request: Any, completions: Sequence[Completion]) -> None:
    """The response side of a model call's span: usage summed over its choices, finish reasons, the model that
    answered, and (opted in) the messages."""
    reasoning = sum(c.reasoning_tokens for c in completions)
    tracing.set_attributes(current, {
        "gen_ai.usage.input_tokens": sum(c.input_tokens for c in completions),  # as the ledger counts them
        "gen_ai.usage.output_tokens": sum(c.output_tokens for c in completions),
        "gen_ai.response.finish_reasons": [c.finish_reason for c in completions],
        "agentkit.reasoning_tokens": reasoning or None, "agentkit.cached": any(c.cached for c in completions) or None})
    if tracing.content_enabled():
        tracing.set_attributes(current, {
            "gen_ai.input.messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "gen_ai.output.messages": [{"role": "assistant", "content": c.text,
                                        "finish_reason": c.finish_reason} for c in completions]})


def _most_tokens(request: Any) -> int:
    """An upper bound on a request's prompt tokens: a token covers at least one byte of UTF-8 text, and a chat
    template adds fewer than 32 per message and 64 in all (a default system prompt)."""
    return sum(len(m.content.encode()) + 32 for m in request.messages) + 64


async def counted_prompt_tokens(backend: Backend, messages: Sequence[ChatMessage | dict[str, str]]) -> int:
    """A prompt's tokens as ``backend`` counts them (exactly, where it has a tokenizer endpoint), else estimated
    as the budgeted call estimates them (``estimate_prompt_tokens``)."""
    exact = await backend.count_prompt_tokens(make_request(messages))
    return exact if exact is not None else estimate_prompt_tokens(messages)
