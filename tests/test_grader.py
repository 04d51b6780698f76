"""math-verify grading in a process pool with our own timeout: a table of tricky cases, timeouts, versions."""

from __future__ import annotations

import pytest

from agentkit.evaluation.answers import extract_answer
from agentkit.evaluation.grader import MathVerifyGrader, grader_version

# (model response, gold, expected)
TABLE: list[tuple[str, str, bool]] = [
    ("so the answer is \\boxed{0.5}", "\\frac{1}{2}", True),            # fraction vs decimal
    ("\\boxed{\\dfrac{3}{4}}", "3/4", True),                            # \dfrac
    ("\\boxed{(1, 2)}", "(1,2)", True),                                 # tuples / open intervals
    ("\\boxed{[0, 1)}", "[0,1)", True),                                 # half-open interval
    ("\\boxed{(0, 1)}", "[0,1)", False),                                # different interval
    ("\\boxed{5\\text{ cm}}", "5", True),                               # units
    ("\\boxed{\\text{Monday}}", "\\text{Monday}", True),               # text answers
    ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}", True),                         # symbolic equivalence
    ("\\boxed{(x+1)^2}", "x^2+2x+1", True),
    ("\\boxed{0.33}", "\\frac{1}{3}", False),                           # a rounded decimal is not exact
    ("She has 16 - 3 - 4 = 9 eggs left.\nThe answer is 1,000", "1000", True),   # GSM8K style, commas
    ("\\boxed{18.0}", "18", True),
    ("\\boxed{3}", "2", False),
]


@pytest.fixture(scope="module")
def table_results() -> list[tuple[bool, str]]:
    import asyncio

    async def run() -> list[tuple[bool, str]]:
        async with MathVerifyGrader(workers=2, timeout=10) as grader:
            grades = await asyncio.gather(*(grader.grade(r, g) for r, g, _ in TABLE))
        return [(g.correct, g.status) for g in grades]

    return asyncio.run(run())


def test_integers_skip_the_worker() -> None:
    import asyncio

    async def run() -> None:
        grader = MathVerifyGrader(workers=1)
        for prediction, gold, expected in (("1,000", "1000", True), ("-7", "-7", True), ("18", "81", False)):
            grade = await grader.grade(prediction, gold, extracted=True)
            assert grade.correct is expected and grade.exact_integers
        assert grader._idle is None  # no worker was ever started
        assert not (await grader.grade("1,00", "100", extracted=True)).exact_integers  # not an integer literal
        await grader.aclose()

    asyncio.run(run())


@pytest.mark.parametrize("i", range(len(TABLE)))
def test_tricky_cases(i: int, table_results: list[tuple[bool, str]]) -> None:
    response, gold, expected = TABLE[i]
    assert table_results[i] == (expected, "ok"), (response, gold)


async def test_our_timeout_counts_and_the_pool_recovers() -> None:
    async with MathVerifyGrader(workers=1, timeout=0.3) as grader:
        slow = await grader.grade("\\boxed{2}", "9^{9^{9^{9}}}")  # sympy needs about a second here
        assert slow.status == "timeout" and not slow.correct and grader.timeouts == 1
        fine = await grader.grade("\\boxed{4}", "4")
        assert fine.correct and fine.status == "ok"


async def test_no_answer_pattern_and_version() -> None:
    async with MathVerifyGrader(workers=1, pattern=r"ANSWER:\s*(\S+)") as grader:
        assert (await grader.grade("I could not decide.", "4")).status == "no_answer"
        grade = await grader.grade("\\boxed{5} ... ANSWER: 4", "4")
        assert grade.correct and grade.prediction == "4" and grade.grader == grader_version()
    assert grader_version().startswith("math-verify==0.")
    assert extract_answer("x = 3, so \\boxed{3}", pattern=r"x = (\d+)") == "3"
    assert extract_answer("nothing", pattern=r"x = (\d+)") is None
