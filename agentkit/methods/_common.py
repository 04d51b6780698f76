"""What several methods share: showing earlier answers in one prompt."""

from __future__ import annotations

from collections.abc import Sequence

from agentkit.messages import Solution

__all__ = ["numbered_solutions"]


def numbered_solutions(solutions: Sequence[Solution]) -> str:
    """Earlier answers as a prompt shows several at once (critique-and-revise of many, RSA's aggregation):
    ``Solution i:`` and its text, blank lines between."""
    return "\n\n".join(f"Solution {i}:\n{s.text}" for i, s in enumerate(solutions, 1))
