"""Seeds that do not collide: every sampled call's seed is a hash of what identifies it.

``derive_seed(seed, *parts)`` hashes the run's seed with the call's identity (the problem, the round, the
branch or sample) into a 31-bit integer (what vLLM, llama.cpp and the OpenAI API accept). Offsets such as
``seed + 1000 * round + branch`` collide as soon as a grid has more seeds than the offsets' spacing (16 seeds x 8
drafts gave 23 distinct first-round seeds, and vLLM then returns near-duplicate drafts); hashes collide with
probability about n^2 / 2^32.
"""

from __future__ import annotations

import hashlib
import json

__all__ = ["derive_seed"]


def derive_seed(seed: int | None, *parts: str | int) -> int | None:
    """A seed for one call, from the run's ``seed`` and the call's identity; None stays None (unseeded)."""
    if seed is None:
        return None
    digest = hashlib.sha256(json.dumps([seed, *parts]).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
