from __future__ import annotations

from typing import Literal

import pytest
from pydantic import ValidationError

from agentkit.errors import ConfigError
from agentkit.messages import (
    AnswerRequest,
    BehaviorProposal,
    ContrastRequest,
    CurateRequest,
    DistillRequest,
    DistillResult,
    Draft,
    Failure,
    GradedAttempt,
    Message,
    Problem,
    RefineRequest,
    Reflection,
    Solution,
    SolveRequest,
    TeachRequest,
    TeachResult,
    TokenUsage,
    Workspace,
    from_json,
    message_types,
    to_json,
)

PROBLEM = Problem(problem_id="p1", text="What is 1/2 + 1/3? Use $\\frac{a}{b}$ — ünïcode ok", reference="5/6",
                  topics=("Algebra",), dataset="unit", run_id="r1", sender="dataset")
WORKSPACE = Workspace(problem_id="p1", round=1, text="agreements: 5/6", variant="summary",
                      source_draft_ids=("a", "b"), drafts_seen=2, tokens=4)
SOLUTION = Solution(problem_id="p1", text="\\boxed{5/6} by behavior_lcm", answer="5/6", finish_reason="stop",
                    usage=TokenUsage(input_tokens=10, output_tokens=5, calls=1), model="m", b_seq=15, b_total=15,
                    method="bci", behaviors=("behavior_lcm",), cited=("behavior_lcm",), behavior_tokens=8)
SAMPLES: dict[str, Message] = {
    "problem": PROBLEM,
    "solve_request": SolveRequest(problem=PROBLEM, method="bci", max_tokens=64, temperature=0.7, seed=3,
                                  behaviors={"behavior_lcm": "add fractions over the lcm"}, k=3),
    "solution": SOLUTION,
    "curate_request": CurateRequest(problem=PROBLEM, solution=SOLUTION, max_tokens=256, max_behaviors=3),
    "contrast_request": ContrastRequest(problem=PROBLEM, attempts=(
        GradedAttempt(text="1/2 + 1/3 = 5/6", answer="5/6", correct=True, trace_id="cell:r1b0"),
        GradedAttempt(text="1/2 + 1/3 = 2/5", answer="2/5", correct=False)), max_tokens=256),
    "teach_request": TeachRequest(problem=PROBLEM, behaviors={"behavior_lcm": "add fractions over the lcm"},
                                  plain=False, seed=None),
    "teach_result": TeachResult(problem_id="p1", conditioned=SOLUTION, plain=SOLUTION.with_(behaviors=())),
    "reflection": Reflection(problem_id="p1", solution_id="s1", text="fine", correct=True),
    "behavior_proposal": BehaviorProposal(problem_id="p1", behaviors={"behavior_common_denominator": "use the lcm"},
                                          source_trace_id="t1", trace_correct=False,
                                          dropped=(("area: x", "name does not start with behavior_"),),
                                          topics=("Algebra",), model="m", usage=TokenUsage(input_tokens=9, calls=3)),
    "draft": Draft(problem_id="p1", round=2, branch=3, text="draft", answer=None, cited=("behavior_x",),
                   usage=TokenUsage(input_tokens=1, output_tokens=2, calls=1, cached=True)),
    "workspace": WORKSPACE,
    "refine_request": RefineRequest(problem=PROBLEM, workspace=WORKSPACE, round=2, branch=1, seed=None, final=True,
                                    behaviors={"behavior_x": "do y"}),
    "answer_request": AnswerRequest(problem=PROBLEM, behaviors={"behavior_lcm": "add fractions over the lcm"},
                                    prompt="critique_revise", prompt_fields={"solution": SOLUTION.text},
                                    max_tokens=64, round=2, branch=1, final=False, method="x"),
    "distill_request": DistillRequest(problem=PROBLEM, round=1, drafts=(Draft(problem_id="p1", round=1, branch=0,
                                                                             text="d", answer="1"),),
                                      next_drafts=4, variant="topk-per-sample", kappa=64, k=2, select="judge"),
    "distill_result": DistillResult(problem_id="p1", round=1, workspaces=(WORKSPACE, WORKSPACE)),
    "failure": Failure(error_type="ValueError", error="boom", handler="h", failed_kind="draft", parent_id="x"),
}


def test_every_builtin_kind_has_a_sample() -> None:
    builtin = {k for k, cls in message_types().items() if cls.__module__ == "agentkit.messages"}
    assert builtin == set(SAMPLES)


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_json_round_trip_is_lossless(kind: str) -> None:
    message = SAMPLES[kind]
    decoded = from_json(to_json(message))
    assert type(decoded) is type(message)
    assert decoded == message
    assert to_json(decoded) == to_json(message)
    assert decoded.created_at.tzinfo is not None


def test_messages_are_immutable() -> None:
    with pytest.raises(ValidationError):
        PROBLEM.text = "changed"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Problem(problem_id="p", text="t", unexpected=1)  # type: ignore[call-arg]


def test_derive_keeps_lineage() -> None:
    reply = PROBLEM.derive(Solution, problem_id="p1", text="x", answer=None)
    assert reply.run_id == PROBLEM.run_id and reply.parent_id == PROBLEM.id and reply.id != PROBLEM.id
    changed = reply.with_(answer="1")
    assert changed.answer == "1" and changed.id == reply.id


def test_user_defined_messages_register_and_round_trip() -> None:
    class Ping(Message):
        kind: Literal["test_ping"] = "test_ping"
        count: int

    assert message_types()["test_ping"] is Ping
    ping = Ping(count=3)
    assert from_json(to_json(ping)) == ping


def test_duplicate_kind_is_an_error() -> None:
    with pytest.raises(ConfigError, match="already used"):
        class Clash(Message):
            kind: Literal["problem"] = "problem"


def test_unknown_kind_and_bad_json_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="unknown message kind"):
        from_json('{"kind": "nope"}')
    with pytest.raises(ConfigError, match="not a JSON message"):
        from_json("{")
