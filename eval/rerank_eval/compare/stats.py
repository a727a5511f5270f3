"""Paired statistics on per-query metric values: tests, multiple-comparison corrections,
bootstrap confidence intervals and win/tie/loss counts.

Every function takes two aligned arrays (same queries, same order): ``baseline`` and
``candidate``. Differences are ``candidate - baseline``. Random procedures take a seed, so a
report can be reproduced exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from ranx.statistical_tests import paired_student_t_test
from scipy.stats import wilcoxon

from rerank_eval.compare.options import (  # noqa: F401 - stats.TESTS etc. stay importable here
    CORRECTIONS,
    DEFAULT_BOOTSTRAP,
    DEFAULT_PERMUTATIONS,
    TESTS,
)
from rerank_eval.metrics.jit import quiet_jit

TIE_TOLERANCE = 1e-9


def _pair(baseline: npt.ArrayLike, candidate: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(baseline, dtype=float)
    b = np.asarray(candidate, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("baseline and candidate must be 1-d arrays of the same length")
    return a, b


def _identical(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(np.abs(b - a) <= TIE_TOLERANCE))


def t_test(baseline: npt.ArrayLike, candidate: npt.ArrayLike) -> float:
    """Two-sided paired Student's t-test p-value (ranx's test, i.e. scipy.stats.ttest_rel).

    Identical systems have no variance to test; their p-value is 1 (no evidence of a
    difference), not NaN.
    """
    a, b = _pair(baseline, candidate)
    if a.size < 2 or _identical(a, b):
        return 1.0
    with quiet_jit():
        p, _ = paired_student_t_test(a, b)
    return 1.0 if np.isnan(p) else float(p)


def wilcoxon_test(baseline: npt.ArrayLike, candidate: npt.ArrayLike) -> float:
    """Two-sided Wilcoxon signed-rank p-value; zero differences are dropped (Wilcoxon's
    method, scipy's default). No non-zero difference: p = 1."""
    a, b = _pair(baseline, candidate)
    if _identical(a, b):
        return 1.0
    return float(wilcoxon(b, a, zero_method="wilcox", alternative="two-sided").pvalue)


def randomization_test(
    baseline: npt.ArrayLike,
    candidate: npt.ArrayLike,
    *,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
) -> float:
    """Two-sided paired randomization (Fisher) test (Smucker et al., CIKM 2007).

    Under the null hypothesis each query's two values are exchangeable, so each difference's
    sign is flipped at random; the p-value is the share of permutations whose |mean
    difference| reaches the observed one, counting the observed labelling itself
    ((count + 1) / (permutations + 1)), so it is never exactly 0. Seeded: reproducible.
    """
    a, b = _pair(baseline, candidate)
    diff = b - a
    if _identical(a, b):
        return 1.0
    observed = abs(diff.mean())
    rng = np.random.default_rng(seed)
    count = 0
    chunk = 1000
    for start in range(0, permutations, chunk):
        n = min(chunk, permutations - start)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(n, diff.size))
        means = np.abs(signs @ diff) / diff.size
        count += int(np.sum(means >= observed - 1e-12))
    return (count + 1) / (permutations + 1)


def paired_p_value(test: str, baseline: npt.ArrayLike, candidate: npt.ArrayLike, *,
                   permutations: int = DEFAULT_PERMUTATIONS, seed: int = 0) -> float:
    """The p-value of the named test (one of TESTS)."""
    if test == "t-test":
        return t_test(baseline, candidate)
    if test == "wilcoxon":
        return wilcoxon_test(baseline, candidate)
    if test == "randomization":
        return randomization_test(baseline, candidate, permutations=permutations, seed=seed)
    raise ValueError(f"unknown test {test!r} (one of {', '.join(TESTS)})")


def correct(p_values: Sequence[float], method: str) -> list[float]:
    """Adjusted p-values for a family of comparisons.

    ``holm``: Holm's step-down (controls the family-wise error, uniformly more powerful than
    Bonferroni); ``bonferroni``: p * m; ``none``: unchanged. Adjusted values are capped at 1.
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if method == "none" or m == 0:
        return [float(x) for x in p]
    if method == "bonferroni":
        return [float(x) for x in np.minimum(p * m, 1.0)]
    if method != "holm":
        raise ValueError(f"unknown correction {method!r} (one of {', '.join(CORRECTIONS)})")
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[idx]))
        adjusted[idx] = running
    return [float(x) for x in adjusted]


def bootstrap_ci(
    baseline: npt.ArrayLike,
    candidate: npt.ArrayLike,
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean paired difference
    (candidate - baseline), resampling queries with replacement. Seeded."""
    a, b = _pair(baseline, candidate)
    diff = b - a
    if diff.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = 1000
    for start in range(0, resamples, chunk):
        n = min(chunk, resamples - start)
        idx = rng.integers(0, diff.size, size=(n, diff.size))
        means[start:start + n] = diff[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return (float(low), float(high))


@dataclass(frozen=True)
class WinTieLoss:
    """Queries where the candidate scores higher, equal (within 1e-9) or lower."""

    wins: int
    ties: int
    losses: int


def win_tie_loss(baseline: npt.ArrayLike, candidate: npt.ArrayLike) -> WinTieLoss:
    a, b = _pair(baseline, candidate)
    diff = b - a
    wins = int(np.sum(diff > TIE_TOLERANCE))
    losses = int(np.sum(diff < -TIE_TOLERANCE))
    return WinTieLoss(wins, diff.size - wins - losses, losses)
