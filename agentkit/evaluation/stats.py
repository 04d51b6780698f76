"""Small, exact statistics for reporting accuracy honestly.

``wilson_interval`` gives the 95% (by default) Wilson score interval of a binomial proportion: it stays inside
[0, 1] and behaves at 0/n and n/n where the normal approximation does not, which matters at the 20 to 100
problems a local run affords. ``pass_at_k`` is the unbiased estimator of Chen et al. (2021): with n samples of
which c are correct, ``1 - C(n-c, k) / C(n, k)``; its mean over problems at k = 1 equals the mean accuracy
over samples whatever n is.

For repeated samples of one problem (seeds), samples are not independent: ``bootstrap_mean_ci`` resamples
problems with their samples together, ``seed_mean_se`` gives the spread across seeds, and
``paired_difference`` compares two methods on the same problems (a paired bootstrap and win/loss counts),
which is the question users ask ("does PDR beat long CoT here?").
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from statistics import NormalDist

from agentkit.errors import ConfigError

__all__ = ["accuracy_summary", "bootstrap_mean_ci", "mcnemar_exact", "mcnemar_mde", "paired_difference", "pass_at_k",
           "seed_mean_se", "wilson_interval"]


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


def bootstrap_mean_ci(per_item: Sequence[Sequence[float]], *, confidence: float = 0.95, resamples: int = 2000,
                      seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap interval of the mean of per-item means, resampling **items** (each item's samples,
    e.g. its seeds, stay together: they are not independent draws). Seeded, so a report is reproducible."""
    means = [sum(v) / len(v) for v in per_item if v]
    if not means:
        return 0.0, 0.0
    rng = random.Random(seed)
    n = len(means)
    stats = sorted(sum(means[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    alpha = (1 - confidence) / 2
    return stats[int(alpha * (resamples - 1))], stats[int((1 - alpha) * (resamples - 1))]


def seed_mean_se(per_seed: Sequence[float]) -> tuple[float, float]:
    """The mean of per-seed accuracies and its standard error across seeds (0 with one seed)."""
    if not per_seed:
        return 0.0, 0.0
    mean = sum(per_seed) / len(per_seed)
    if len(per_seed) < 2:
        return mean, 0.0
    variance = sum((x - mean) ** 2 for x in per_seed) / (len(per_seed) - 1)
    return mean, math.sqrt(variance / len(per_seed))


def mcnemar_exact(wins: int, losses: int) -> float:
    """The exact (binomial) McNemar test's two-sided p-value for paired binary outcomes: ``wins`` items only A
    got right, ``losses`` only B; ties carry no information. With several seeds per item it is the exact sign
    test over items whose mean scores differ. 1.0 when nothing is discordant."""
    if wins < 0 or losses < 0:
        raise ConfigError(f"mcnemar_exact needs counts >= 0, got {wins} and {losses}")
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2 ** n
    return float(min(1.0, 2 * tail))


def mcnemar_mde(items: int, discordance: float, *, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """The smallest accuracy difference a paired comparison of two methods on ``items`` problems detects with
    probability ``power`` at two-sided level ``alpha``, when a share ``discordance`` of the problems is solved by
    exactly one of the two (McNemar's test, normal approximation of Connor 1987:
    ``n = (z_a sqrt(d) + z_b sqrt(d - delta^2))^2 / delta^2``, solved for delta). None when no difference is
    detectable: even one method winning every discordant problem would be missed that often (too few problems)."""
    if items < 1 or not 0 < discordance <= 1:
        raise ConfigError(f"mcnemar_mde needs items >= 1 and 0 < discordance <= 1, got {items} and {discordance}")
    z_a, z_b = NormalDist().inv_cdf(1 - alpha / 2), NormalDist().inv_cdf(power)

    def needed(delta: float) -> float:
        return (z_a * math.sqrt(discordance) + z_b * math.sqrt(max(discordance - delta * delta, 0.0))) ** 2 / delta ** 2

    low, high = 1e-6, discordance  # |delta| cannot exceed the discordant share
    if needed(high) > items:
        return None
    for _ in range(60):  # needed() falls as delta grows: bisect for needed(delta) = items
        mid = (low + high) / 2
        low, high = (mid, high) if needed(mid) > items else (low, mid)
    return high


def paired_difference(a: Mapping[str, float], b: Mapping[str, float], *, confidence: float = 0.95,
                      resamples: int = 2000, seed: int = 0) -> dict[str, float | int]:
    """Method A minus method B on the items both have (``a``/``b``: item -> its score, e.g. the mean correctness
    over seeds): the mean difference, a paired bootstrap interval (items resampled together for both methods),
    the items A won, lost and tied, and the exact McNemar p-value of those wins and losses (``mcnemar_exact``)."""
    items = sorted(set(a) & set(b))
    diffs = [a[i] - b[i] for i in items]
    if not diffs:
        return {"items": 0, "difference": 0.0, "ci_low": 0.0, "ci_high": 0.0, "wins": 0, "losses": 0, "ties": 0,
                "p_value": 1.0}
    low, high = bootstrap_mean_ci([[d] for d in diffs], confidence=confidence, resamples=resamples, seed=seed)
    wins, losses = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    return {"items": len(items), "difference": sum(diffs) / len(diffs), "ci_low": low, "ci_high": high,
            "wins": wins, "losses": losses, "ties": sum(d == 0 for d in diffs), "p_value": mcnemar_exact(wins, losses)}
