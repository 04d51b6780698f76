"""Small, exact statistics for reporting accuracy honestly.

``wilson_interval`` gives the 95% (by default) Wilson score interval of a binomial proportion: it stays inside
[0, 1] and behaves at 0/n and n/n where the normal approximation does not, which matters at the 20 to 100
problems a local run affords. ``pass_at_k`` is the unbiased estimator of Chen et al. (2021): with n samples of
which c are correct, ``1 - C(n-c, k) / C(n, k)``; its mean over problems at k = 1 equals the mean accuracy
over samples whatever n is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from statistics import NormalDist

from agentkit.errors import ConfigError

__all__ = ["accuracy_summary", "pass_at_k", "wilson_interval"]


def wilson_interval(successes: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for ``successes`` out of ``n`` trials; (0.0, 1.0) when n is 0."""
    if n < 0 or successes < 0 or successes > n:
        raise ConfigError(f"wilson_interval needs 0 <= successes <= n, got {successes} of {n}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must lie in (0, 1), got {confidence}")
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # 0 and n successes have the exact endpoints 0 and 1 (the formula can miss them by a rounding error, which
    # would put the estimate itself outside its interval)
    low = 0.0 if successes == 0 else min(p, max(0.0, centre - half))
    high = 1.0 if successes == n else max(p, min(1.0, centre + half))
    return low, high


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with ``n`` samples of which ``c`` are correct (needs k <= n)."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ConfigError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    # 1 - prod_{i=n-c+1}^{n} (1 - k/i): numerically stable form of 1 - C(n-c, k) / C(n, k)
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def accuracy_summary(correct: Iterable[bool], *, confidence: float = 0.95) -> dict[str, float | int]:
    """``{"n", "correct", "accuracy", "ci_low", "ci_high"}`` for a sequence of graded outcomes."""
    outcomes = [bool(c) for c in correct]
    n, k = len(outcomes), sum(outcomes)
    low, high = wilson_interval(k, n, confidence=confidence)
    return {"n": n, "correct": k, "accuracy": k / n if n else 0.0, "ci_low": low, "ci_high": high}
