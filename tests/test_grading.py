from __future__ import annotations

import pytest

from agentkit.evaluation.answers import answers_match, extract_answer, last_boxed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so the answer is \\boxed{18}.", "18"),
        ("\\boxed{1} then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("She makes 9 * 2 = $18.\nAnswer: 18", "18"),
        ("Answer: $1,000", "1000"),
        ("First 3 then 5 and finally 7 apples", "7"),
        ("no numbers here", None),
        ("", None),
    ],
)
def test_extract_answer(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


def test_last_boxed_balances_braces() -> None:
    assert last_boxed("\\boxed{\\frac{a}{b}+{c}}") == "\\frac{a}{b}+{c}"
    assert last_boxed("\\boxed{unclosed") is None


@pytest.mark.parametrize(
    ("predicted", "reference", "match"),
    [("18", "18", True), ("18.0", "18", True), ("1,000", "1000", True), ("$18", "18", True),
     ("\\frac{1}{2}", "0.5", True), ("19", "18", False), (None, "18", False), ("(1,2)", "(1, 2)", True),
     ("\\left(1,2\\right)", "(1,2)", True), ("abc", "abd", False)],
)
def test_answers_match(predicted: str | None, reference: str, match: bool) -> None:
    assert answers_match(predicted, reference) is match
