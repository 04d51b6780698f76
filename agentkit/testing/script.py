"""Scripts: what a scripted server or backend answers (``Reply``, ``Fault``, a callable), how tests tell calls
apart (``call_step``: the call's role and template; ``prompt_kind``), how usage is counted (one token per
word), and the bookkeeping the server and the backend share."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agentkit.backends.base import ChatRequest

__all__ = ["Action", "Fault", "PromptCounter", "Reply", "Script", "call_step", "count_words", "echo", "prompt_kind",
           "reuse_script", "template_of"]


def count_words(text: str) -> int:
    """The scripted servers' tokenizer: one token per whitespace-separated word."""
    return len(text.split())


@dataclass(frozen=True)
class Reply:
    """A successful chat completion."""

    text: str
    finish_reason: str = "stop"
    delay: float = 0.0
    """Extra seconds before answering (on top of the server's latency)."""
    reasoning: str = ""
    """A reasoning model's reasoning: sent as ``reasoning_content`` or inline in ``<think>...</think>``, as the
    server's ``reasoning`` shape says, and counted in ``completion_tokens_details.reasoning_tokens``."""


@dataclass(frozen=True)
class Fault:
    """A failure to inject. Build with the class methods."""

    kind: Literal["status", "hang", "drop", "malformed", "no_choices"]
    status: int = 500
    message: str = "scripted failure"
    retry_after: float | None = None

    @classmethod
    def http(cls, status: int, message: str = "scripted failure", *, retry_after: float | None = None) -> Fault:
        """Answer with HTTP ``status`` and an OpenAI-style error body (and ``Retry-After`` if given)."""
        return cls("status", status=status, message=message, retry_after=retry_after)

    @classmethod
    def rate_limited(cls, retry_after: float = 1.0) -> Fault:
        return cls.http(429, "rate limit exceeded", retry_after=retry_after)

    @classmethod
    def hang(cls) -> Fault:
        """Never answer (the client's timeout must fire)."""
        return cls("hang")

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without answering."""
        return cls("drop")

    @classmethod
    def malformed(cls) -> Fault:
        """Answer 200 with a body that is not JSON."""
        return cls("malformed")

    @classmethod
    def no_choices(cls) -> Fault:
        """Answer 200 with valid JSON that has no choices."""
        return cls("no_choices")


Action = Reply | Fault
Script = Iterable[Action] | Callable[[dict[str, Any]], Action]


def echo(body: dict[str, Any]) -> Reply:
    """Default script: a deterministic reply that quotes the last user message."""
    last = next((m.get("content", "") for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
    return Reply(f"echo: {last}")


_KINDS = {"strategist_solve": "solve", "long_cot": "solve", "bci_plain": "solve", "strategist_reflect": "reflect",
          "strategist_extract": "extract", "bci": "bci", "critique_revise": "revise", "critique_revise_many": "revise", "pdr_refine": "refine",
          "pdr_summary": "summary", "pdr_judge": "judge", "sr_error_analysis": "error-analysis"}


def _in_order(text: str, parts: list[str]) -> bool:
    at = 0
    for part in parts:
        found = text.find(part, at)
        if found < 0:
            return False
        at = found + len(part)
    return True


def template_of(messages: Sequence[dict[str, Any]]) -> str | None:
    """Which of agentkit's prompt templates rendered ``messages``: the template whose fixed text (everything
    but its ``{fields}``) appears, in order, in the system and user parts; the most specific one when several
    do. For requests that carry no ``CallContext`` (HTTP)."""
    from importlib import resources

    from agentkit.prompts import _FIELD, load_prompt

    system = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
    user = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")
    best: tuple[int, str] | None = None
    for entry in resources.files("agentkit.prompts").iterdir():
        if not entry.name.endswith(".txt"):
            continue
        template = load_prompt(entry.name.removesuffix(".txt"))
        parts = [(system, [p for p in _FIELD.split(template.system)[::2] if p.strip()]),
                 (user, [p for p in _FIELD.split(template.user)[::2] if p.strip()])]
        if all(_in_order(text, fixed) for text, fixed in parts):
            size = sum(len(p) for _, fixed in parts for p in fixed)
            if best is None or size > best[0]:
                best = (size, template.name)
    return best[1] if best else None


def call_step(body: dict[str, Any]) -> tuple[str, str]:
    """A request's ``(role, step)``: from its ``CallContext`` (``ScriptedBackend`` bodies carry it), else the
    template that rendered it (``ScriptedServer``: HTTP carries no context; role is then empty)."""
    context = body.get("context") or {}
    if context.get("step"):
        return str(context.get("role", "")), str(context["step"])
    return str(context.get("role", "")), template_of(body.get("messages", [])) or ""


def prompt_kind(body: dict[str, Any]) -> str:
    """Which step of agentkit's methods a request is: ``solve``, ``reflect``, ``extract``, ``bci``, ``revise``
    (critique-and-revise), ``refine``, ``summary``, ``judge`` or ``error-analysis``; chosen by the call's
    ``CallContext`` step (the template it renders), never by the prompt's wording, so editing a prompt does not
    change which reply a script gives."""
    return _KINDS.get(call_step(body)[1], "solve")


def reuse_script(behaviors: dict[str, str], *, answer: str = "9", extraction: str | None = None
                 ) -> Callable[[dict[str, Any]], Reply]:
    """A script that plays every role of metacognitive reuse: solves with ``\\boxed{answer}``, reflects,
    extracts ``behaviors`` as fenced JSON (or ``extraction`` verbatim), answers BCI prompts citing the first
    behavior, and revises. For testing recipes and pipelines built on curation, BCI and self-improvement."""
    first = next(iter(behaviors), "behavior_none")
    fenced = extraction if extraction is not None else "Here you go:\n```json\n" + json.dumps(behaviors) + "\n```"
    replies = {
        "reflect": f"The answer is right; {first} would have shortened it.",
        "extract": fenced,
        "bci": f"Using {first}: the steps give \\boxed{{{answer}}}",
        "revise": f"The earlier steps hold. \\boxed{{{answer}}}",
        "solve": f"Step by step, the result is \\boxed{{{answer}}}",
    }
    return lambda body: Reply(replies[prompt_kind(body)])


def _context(request: ChatRequest) -> dict[str, Any] | None:
    """The call's ``CallContext`` as a dict (``step`` only when set)."""
    if request.context is None:
        return None
    return request.context.model_dump(exclude=None if request.context.step else {"step"})


def _usage_prompt(messages: Sequence[dict[str, Any]]) -> int:
    return sum(count_words(str(m.get("content", ""))) for m in messages)


def _truncate_reasoning(reasoning: str, text: str, max_tokens: int | None) -> tuple[str, str, bool]:
    """Reasoning and text cut together to ``max_tokens`` words (the reasoning comes first, as it is generated)."""
    thought, cut = _truncate(reasoning, max_tokens)
    if cut:
        return thought, "", True
    rest = None if max_tokens is None else max_tokens - count_words(thought)
    final, cut = _truncate(text, rest)
    return thought, final, cut


def _truncate(text: str, max_tokens: int | None) -> tuple[str, bool]:
    words = text.split()
    if max_tokens is not None and len(words) > max_tokens:
        return " ".join(words[:max_tokens]), True
    return text, False


PromptCounter = Callable[[Sequence[dict[str, Any]]], int]
"""How a scripted server counts a request's prompt tokens (its messages as JSON dicts)."""


class _Scripted:
    """What the server and the backend share: script stepping and bookkeeping."""

    def __init__(self, script: Script | None, latency: float, prompt_tokens: PromptCounter | None = None,
                 tokenize: bool = True) -> None:
        self.set_script(script)
        self.latency = latency
        self.count_prompt: PromptCounter = prompt_tokens or _usage_prompt
        """The prompt tokenizer (default: one token per word of every message)."""
        self.tokenize = tokenize
        """Whether clients can count prompts exactly (``/tokenize`` on the server, ``count_prompt_tokens`` on
        the backend); off, they must estimate, as against a server with an unknown tokenizer."""
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.billed = 0
        """Tokens (prompt + completion) of every successful reply sent: what a real server would bill."""

    def set_script(self, script: Script | None) -> None:
        """Replace the script: a list of actions (then echo replies once it runs out), a callable that
        decides per request body, or None for echo replies."""
        if script is None:
            self._next: Callable[[dict[str, Any]], Action] = echo
        elif callable(script):
            self._next = script
        else:
            iterator = iter(list(script))
            self._next = lambda body: next(iterator, None) or echo(body)

    def step(self, body: dict[str, Any]) -> Action:
        self.requests.append(body)
        return self._next(body)


