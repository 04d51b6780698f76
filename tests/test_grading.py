from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentkit.evaluation.answers import answers_match, extract_answer, extract_strict, last_boxed


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # "answer" in passing is no answer line: the final-number rule applies (GSM8K), or nothing (MATH).
        ("To answer this question, we add 2 and 3.\nSo there are 5 apples.", ("5", "final-number")),
        # the result of a worked line, not its first number
        ("Let's see.\nThe answer is 16 - 3 - 4 = 9", ("9", "answer-line")),
        ("So the answer is: 3 x 4 = 12 dollars.", ("12", "answer-line")),
        # an expression whole, not its first number
        ("Thus the answer is $\\frac{14}{3}$.", ("\\frac{14}{3}", "answer-line")),
        ("So, the final answer is 2\\sqrt{3} units.", ("2\\sqrt{3}", "answer-line")),
        ("Answer: 14/3", ("14/3", "answer-line")),
        ("**Final Answer:** 42", ("42", "answer-line")),
        ("Answer: 18 dollars.", ("18", "answer-line")),
        ("The final answer is: 1,200.", ("1200", "answer-line")),
        ("The answer is (B).", ("(B)", "answer-line")),
        ("I know the answer.\nx = 3 so 7", ("7", "final-number")),
    ],
)
def test_answer_lines_are_read_as_a_reader_would(text: str, expected: tuple[str, str]) -> None:
    assert extract_strict(text, final_number=True) == expected


def test_a_passing_mention_of_answer_is_no_answer_without_the_final_number_rule() -> None:
    assert extract_strict("To answer this question, we add 2 and 3.", final_number=False) == (None, "none")
    # cut off by its cap: only a boxed answer counts
    assert extract_strict("The answer is 9 because", finish_reason="length") == (None, "none")


CORPUS = Path(__file__).parent / "data" / "final_texts.jsonl"


def test_the_labelled_corpus_of_real_final_texts_is_read_right() -> None:
    """114 final texts and drafts from the committed results databases (boxed numbers, fractions and expressions,
    text cut off with and without a boxed answer, finished text without a box), each labelled with the answer it
    states (None: it states none); the sweep's rule must give exactly that label."""
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 100 and len({r["text"] for r in rows}) == len(rows)
    wrong = [(r["source"], r["answer"], got) for r in rows
             if (got := extract_strict(r["text"], finish_reason=r["finish_reason"], final_number=r["numeric"])[0])
             != r["answer"]]
    assert wrong == []
