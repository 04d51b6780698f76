"""The Refiner and Distiller roles: the model steps of Parallel-Distill-Refine and Sequential Refinement
("Rethinking Thinking Tokens", arXiv 2510.01123). The orchestration (rounds, schedules, budgets) is
``agentkit.methods.pdr``'s.

- ``Refiner`` answers ``RefineRequest`` with a ``Draft`` (``write_draft``): round 1, no workspace, is a plain
  solve; later rounds get the problem plus the workspace. Behaviors in the request go first in the system part
  (BCI inside PDR) and the draft's ``cited`` lists the ones it names. Attached with ``concurrency=M`` so the M
  drafts of a round, one bus message each, run at once up to the backend's own limits.
- ``Distiller`` answers ``DistillRequest`` with a ``DistillResult`` (``distill``): the next round's workspace,
  or one per next-round draft.

Workspace variants:

- ``summary``: one LLM call writes a shared summary (agreements, contradictions, derived facts, unresolved
  subgoals, next actions) with ``max_tokens = kappa`` (the server enforces the bound; the workspace's token
  count is the server's output count).
- ``topk``: the k best drafts, shared by every next-round draft; ``topk-per-sample``: each next-round draft
  gets its own k (agreement-weighted, seeded sampling; or a judge call per branch over a shuffled list);
  ``random-k``: each next-round draft gets k drafts drawn uniformly (seeded). "Best" is decided by answer
  agreement (drafts whose extracted answer is shared by the most drafts first, then finished before the
  length limit, then shorter) or by the model's own judgement (a judge call; agreement breaks ties and
  replaces an unparsable judgement).
- ``error-analysis`` (SR): one LLM call lists the errors of the single previous draft, bounded by kappa.

Extractive truncation rule (measured with the ledger's token counter): each of the k drafts gets an equal
share ``kappa // k`` of the workspace including its header; a longer draft keeps its **last** tokens (where
the final answer is), prefixed with ``[...]``.

Drafts of reasoning models keep their reasoning apart (``Draft.reasoning``); workspaces are built from the
final text unless the request asks for the reasoning too (``DistillRequest.with_reasoning``).

Both charge their calls to the run ledger they were built with (a method attaches them for its run).
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable

from agentkit._behavior import find_citations, render_behaviors
from agentkit.backends.base import Backend
from agentkit.calls import budgeted_chat
from agentkit.errors import ConfigError
from agentkit.evaluation.answers import answers_match, extract_answer
from agentkit.ledger import Ledger
from agentkit.messages import DistillRequest, DistillResult, Draft, RefineRequest, TokenUsage, Workspace
from agentkit.prompts import load_prompt
from agentkit.seeds import derive_seed

from ._base import Role

__all__ = ["EXTRACTIVE", "JUDGE_OUTPUT_TOKENS", "Distiller", "Refiner", "distill", "draft_text", "write_draft"]

EXTRACTIVE = frozenset({"topk", "topk-per-sample", "random-k"})
"""The workspace variants that copy (the tails of) drafts instead of asking the model for a summary."""
JUDGE_OUTPUT_TOKENS = 16
"""Output cap of a judge call (a ranking of draft numbers)."""


async def write_draft(request: RefineRequest, backend: Backend, ledger: Ledger) -> Draft:
    """One draft: a plain solve in round 1 (no workspace), else the problem plus the workspace."""
    problem, r, b = request.problem, request.round, request.branch
    if request.workspace is None:
        template = load_prompt("long_cot")
        messages = template.render(problem=problem.text)
    else:
        template = load_prompt("pdr_refine")
        messages = template.render(problem=problem.text, workspace=request.workspace.text)
    if request.behaviors:  # behavior-conditioned inference inside PDR: the block goes first in the system part
        messages[0] = {**messages[0], "content": render_behaviors(request.behaviors) + "\n\n" + messages[0]["content"]}
    [(record, completion)] = await budgeted_chat(
        ledger, backend, messages, role="student" if r == 1 else "refiner", round=r, branch=b, final=request.final,
        accepted=request.final, step=template.name, max_tokens=request.max_tokens, temperature=request.temperature,
        seed=request.seed)
    return request.derive(
        Draft, sender="refiner", problem_id=problem.problem_id, round=r, branch=b, text=completion.text,
        answer=extract_answer(completion.text), finish_reason=completion.finish_reason,
        usage=TokenUsage(input_tokens=record.input_tokens, output_tokens=record.output_tokens, calls=1,
                         cached=completion.cached),
        cited=find_citations(completion.text, [behavior.name for behavior in request.behaviors]),
        reasoning=completion.reasoning)


def draft_text(draft: Draft, with_reasoning: bool = False) -> str:
    """What a workspace sees of a draft: its final text, or (``with_reasoning``) its reasoning and final text."""
    if with_reasoning and draft.reasoning:
        return f"{draft.reasoning}\n\n{draft.text}"
    return draft.text


def render_drafts(drafts: list[Draft], with_reasoning: bool = False) -> str:
    return "\n\n".join(f"Attempt {i + 1}:\n{draft_text(d, with_reasoning)}" for i, d in enumerate(drafts))


def _tail(text: str, tokens: int, count: Callable[[str], int]) -> str:
    """The end of ``text`` that fits ``tokens`` (by ``count``), prefixed with ``[...]`` when cut."""
    if count(text) <= tokens:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # smallest cut whose tail fits
        mid = (lo + hi) // 2
        if count("[...] " + text[mid:]) <= tokens:
            hi = mid
        else:
            lo = mid + 1
    return "[...] " + text[lo:]


def agreement_order(drafts: list[Draft]) -> list[int]:
    """Draft indices, best first: larger answer group, finished (not cut by length), shorter, earlier."""
    groups: list[list[int]] = []
    for i, d in enumerate(drafts):
        for group in groups:
            if answers_match(d.answer, drafts[group[0]].answer):
                group.append(i)
                break
        else:
            groups.append([i])
    size = {i: (len(g) if drafts[g[0]].answer is not None else 0) for g in groups for i in g}
    return sorted(range(len(drafts)), key=lambda i: (-size[i], drafts[i].finish_reason == "length",
                                                     len(drafts[i].text), i))


def _extractive(drafts: list[Draft], chosen: list[int], kappa: int, count: Callable[[str], int],
                with_reasoning: bool = False) -> str:
    share = kappa // max(1, len(chosen))
    parts = []
    for n, i in enumerate(chosen, 1):
        header = f"Attempt {n} (answer: {drafts[i].answer or 'none'}):\n"
        parts.append(header + _tail(draft_text(drafts[i], with_reasoning), max(1, share - count(header) - 1), count))
    text = "\n\n".join(parts)
    return _tail(text, kappa, count)  # guarantees the bound even when headers are long


async def _judge_order(request: DistillRequest, order: list[int], backend: Backend, ledger: Ledger,
                       b: int) -> list[int]:
    """The judge's ranking of the drafts presented in ``order``; agreement fills in what it leaves out."""
    drafts = list(request.drafts)
    shown = [drafts[i] for i in order]
    messages = load_prompt("pdr_judge").render(problem=request.problem.text,
                                                drafts=render_drafts(shown, request.with_reasoning), k=str(request.k))
    [(_, completion)] = await budgeted_chat(
        ledger, backend, messages, role="distiller", round=request.round, branch=b, accepted=True,
        step="pdr_judge", max_tokens=JUDGE_OUTPUT_TOKENS, temperature=0.0, seed=request.seed)
    picked: list[int] = []
    for number in re.findall(r"\d+", completion.text):
        n = int(number) - 1
        if 0 <= n < len(shown) and order[n] not in picked:
            picked.append(order[n])
    return picked + [i for i in agreement_order(drafts) if i not in picked]


def _agreement_weights(drafts: list[Draft]) -> list[float]:
    """Each draft's weight: how many drafts share its answer (0.5 for a draft without an answer)."""
    weights = []
    for d in drafts:
        same = sum(1 for other in drafts if d.answer is not None and answers_match(d.answer, other.answer))
        weights.append(float(same) if same else 0.5)
    return weights


def _weighted_sample(rng: random.Random, weights: list[float], k: int) -> list[int]:
    pool = list(range(len(weights)))
    chosen: list[int] = []
    for _ in range(min(k, len(pool))):
        i = rng.choices(pool, weights=[weights[j] for j in pool])[0]
        chosen.append(i)
        pool.remove(i)
    return chosen


async def distill(request: DistillRequest, backend: Backend, ledger: Ledger) -> list[Workspace]:
    """The workspace(s) for the next round: one shared, or one per next-round draft."""
    problem, drafts, r = request.problem, list(request.drafts), request.round
    count = ledger.count_tokens
    base = {"problem_id": problem.problem_id, "round": r, "variant": request.variant, "drafts_seen": len(drafts),
            "sender": "distiller"}
    if request.variant in {"summary", "error-analysis"}:
        template = "pdr_summary" if request.variant == "summary" else "sr_error_analysis"
        messages = load_prompt(template).render(problem=problem.text,
                                                drafts=render_drafts(drafts, request.with_reasoning),
                                                kappa=str(request.kappa))
        [(record, completion)] = await budgeted_chat(
            ledger, backend, messages, role="distiller", round=r, accepted=True, step=template,
            max_tokens=request.kappa, temperature=0.0, seed=request.seed)
        return [request.derive(Workspace, text=completion.text, tokens=record.output_tokens,
                               source_draft_ids=tuple(d.id for d in drafts), **base)]
    if request.variant not in EXTRACTIVE:
        raise ConfigError(f"unknown workspace variant {request.variant!r}")
    k = min(request.k, len(drafts))
    rng = random.Random(derive_seed(request.seed, request.problem.problem_id, "distill", r))
    if request.variant == "topk":
        order = (await _judge_order(request, list(range(len(drafts))), backend, ledger, 0)
                 if request.select == "judge" else agreement_order(drafts))
        selections = [order[:k]]
    elif request.variant == "random-k":
        selections = [sorted(rng.sample(range(len(drafts)), k)) for _ in range(request.next_drafts)]
    elif request.select == "judge":  # topk-per-sample: a judge call per next-round draft, over a shuffled list
        orders = []
        for _ in range(request.next_drafts):
            shuffled = list(range(len(drafts)))
            rng.shuffle(shuffled)
            orders.append(shuffled)
        ranked = await asyncio.gather(*(_judge_order(request, o, backend, ledger, b) for b, o in enumerate(orders)))
        selections = [order[:k] for order in ranked]
    else:  # topk-per-sample by agreement: seeded sampling weighted by how many drafts share each answer
        weights = _agreement_weights(drafts)
        selections = [_weighted_sample(rng, weights, k) for _ in range(request.next_drafts)]
    workspaces = []
    for chosen in selections:
        text = _extractive(drafts, chosen, request.kappa, count, request.with_reasoning)
        workspaces.append(request.derive(
            Workspace, text=text, tokens=count(text), source_draft_ids=tuple(drafts[i].id for i in chosen),
            **base))
    return workspaces


class Refiner(Role):
    """Writes drafts (``RefineRequest`` -> ``Draft``), charging its run ledger."""

    name = "refiner"
    request_type = RefineRequest
    default_concurrency = 8

    async def handle(self, request: RefineRequest) -> Draft:
        draft = await write_draft(request, self.backend, self.ledger_for(request))
        return draft.with_(parent_id=request.id)


class Distiller(Role):
    """Builds workspaces (``DistillRequest`` -> ``DistillResult``), charging its run ledger."""

    name = "distiller"
    request_type = DistillRequest
    default_concurrency = 2

    async def handle(self, request: DistillRequest) -> DistillResult:
        workspaces = await distill(request, self.backend, self.ledger_for(request))
        return request.derive(DistillResult, sender=self.name, problem_id=request.problem.problem_id,
                              round=request.round, workspaces=tuple(workspaces))
