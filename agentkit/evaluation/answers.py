"""Answer extraction and a light equivalence check.

``extract_answer`` takes the last ``\\boxed{...}`` (balanced braces), else the text after a final
``Answer:``, else the last number in the text. ``answers_match`` compares two answers numerically when both
parse as numbers (``1,000`` = ``1000``, ``18.0`` = ``18``, ``$18`` = ``18``) and as normalised strings
otherwise. Full symbolic equivalence with math-verify, in a process pool with its own timeout, is the
job of the sweep grader; this module is what ``agentkit solve`` needs for GSM8K-style numeric answers.
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["answers_match", "extract_answer", "last_boxed"]

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_ANSWER_LINE = re.compile(r"answer\s*(?:is)?\s*[:=]?\s*(.+)", re.IGNORECASE)


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
    """The final answer a model wrote, or None. ``pattern``: a regular expression whose first group (or whole
    match) is the answer; its last match wins, and no other rule applies."""
    if not text:
        return None
    if pattern is not None:
        matches = list(re.finditer(pattern, text))
        if not matches:
            return None
        last = matches[-1]
        return (last.group(1) if last.groups() else last.group(0)).strip() or None
    boxed = last_boxed(text)
    if boxed:
        return boxed
    lines = [m.group(1).strip() for m in _ANSWER_LINE.finditer(text)]
    if lines and lines[-1]:
        numbers = _NUMBER.findall(lines[-1])
        return numbers[0].replace(",", "") if numbers else lines[-1].rstrip(".")
    numbers = _NUMBER.findall(text)
    return numbers[-1].replace(",", "") if numbers else None


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
