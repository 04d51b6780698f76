"""Answer extraction and a light equivalence check.

``extract_answer`` takes the last ``\\boxed{...}`` (balanced braces), else the text after a final
``Answer:``, else the last number in the text. ``extract_strict`` is the evaluation rule sweeps use: it also says
how the answer was found, and text cut off by its token cap counts only with a boxed answer. ``answers_match`` compares two answers numerically when both
parse as numbers (``1,000`` = ``1000``, ``18.0`` = ``18``, ``$18`` = ``18``) and as normalised strings
otherwise. Full symbolic equivalence with math-verify, in a process pool with its own timeout, is the
job of the sweep grader; this module is what ``agentkit solve`` needs for GSM8K-style numeric answers.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Literal

__all__ = ["Extraction", "answers_match", "extract_answer", "extract_strict", "last_boxed"]

Extraction = Literal["boxed", "answer-line", "final-number", "pattern", "none"]
"""How an answer was found: the last ``\\boxed{}``, a final ``Answer:`` line, the last number in the text, a
caller's pattern, or not at all."""

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
# An answer line states the answer: "Answer: 18", "**Final answer:** 18", "The answer is 18", "So the final answer
# is 18." It starts a line or a sentence ("To answer this question ..." and "... the answer." are not answer
# lines), and "answer" is followed by "is", ":" or "=".
_ANSWER_LINE = re.compile(
    r"(?:^|(?<=[.!?:])[ \t]+)[ \t*#>_-]*(?:(?:so|thus|therefore|hence)\b,?[ \t]+)?(?:the[ \t]+)?(?:final[ \t]+)?"
    r"answer\b[ \t*]*(?:is\b[ \t*:]*|[:=][ \t*]*)(?P<value>[^\n]+)", re.IGNORECASE | re.MULTILINE)
_MATH_DELIMITERS = re.compile(r"\\[()\[\]]|\$|\*\*|`")
_EXPRESSION = re.compile(r"\\d?frac|\\sqrt|\\pi|\^|^\(?-?\d+\s*/\s*\d+\)?$")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced; None if there is none."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0:
        return None
    depth = 0
    for i in range(brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1 : i].strip()
    return None


def extract_answer(text: str, *, pattern: str | None = None) -> str | None:
    """The final answer a model wrote, or None (lenient: the last number counts when nothing else does).
    ``pattern``: a regular expression whose first group (or whole match) is the answer; its last match wins,
    and no other rule applies."""
    return _extract(text, pattern=pattern, final_number=True)[0]


def extract_strict(text: str, *, finish_reason: str = "stop", final_number: bool = True,
                   pattern: str | None = None) -> tuple[str | None, Extraction]:
    """The answer and how it was found, under the evaluation rule: a ``\\boxed{}`` answer always counts; a
    final ``Answer:`` line or (with ``final_number``, GSM8K's rule) the last number counts only when the text
    finished by itself: text cut off by its token cap (``finish_reason == "length"``) without a boxed answer has
    no answer, since its last number is wherever the cap fell."""
    finished = finish_reason != "length"
    answer, how = _extract(text, pattern=pattern, final_number=final_number)
    if how in ("answer-line", "final-number") and not finished:
        return None, "none"
    return answer, how


def _extract(text: str, *, pattern: str | None, final_number: bool) -> tuple[str | None, Extraction]:
    if not text:
        return None, "none"
    if pattern is not None:
        matches = list(re.finditer(pattern, text))
        if not matches:
            return None, "none"
        last = matches[-1]
        found = (last.group(1) if last.groups() else last.group(0)).strip() or None
        return found, "pattern" if found else "none"
    boxed = last_boxed(text)
    if boxed:
        return boxed, "boxed"
    lines = [m.group("value") for m in _ANSWER_LINE.finditer(text)]
    value = _answer_value(lines[-1]) if lines else None
    if value:
        return value, "answer-line"
    if not final_number:
        return None, "none"
    numbers = _NUMBER.findall(text)
    return (numbers[-1].replace(",", ""), "final-number") if numbers else (None, "none")


def _answer_value(line: str) -> str | None:
    """The answer an answer line states: what follows its last ``=`` (``16 - 3 - 4 = 9`` states 9), a math
    expression whole (``\\frac{14}{3}``, ``2\\sqrt{3}``, ``14/3``), else its first number (``18 dollars``), else the
    text itself (``(B)``, ``yes``)."""
    value = _MATH_DELIMITERS.sub(" ", line).strip()
    if "=" in value:
        value = value.rsplit("=", 1)[1]
    value = value.strip().rstrip(".").strip()
    if not value:
        return None
    if _EXPRESSION.search(value):
        # the expression up to the words that follow it ("\\frac{14}{3} hours", "2\\sqrt{3} units.")
        return re.sub(r"(?:\s+(?:[A-Za-z]{2,}|\\text\{[^}]*\})\.?)+$", "", value).strip() or None
    numbers = _NUMBER.findall(value)
    return numbers[0].replace(",", "") if numbers else value


def _as_number(text: str) -> Fraction | None:
    cleaned = re.sub(r"\\text\{[^}]*\}|\\[,;!]|\$|\\%|%|\s", "", text).replace(",", "")
    cleaned = cleaned.removeprefix("\\$")
    frac = re.fullmatch(r"\\d?frac\{(-?\d+)\}\{(-?\d+)\}", cleaned)
    try:
        if frac:
            return Fraction(int(frac.group(1)), int(frac.group(2)))
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def answers_match(predicted: str | None, reference: str | None) -> bool:
    """Whether a predicted answer equals the reference (numerically where both are numbers)."""
    if predicted is None or reference is None:
        return False
    a, b = _as_number(predicted), _as_number(reference)
    if a is not None and b is not None:
        return a == b
    return _normalise(predicted) == _normalise(reference)


def _normalise(answer: str) -> str:
    return re.sub(r"\s+|\\left|\\right|\.$", "", answer).lower()
