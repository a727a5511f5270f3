"""Paired statistics: each test agrees with its reference implementation (scipy, ranx, exact
enumeration) on the same per-query values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.stats
from rerank_eval.compare import stats


@pytest.fixture
def paired() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    base = rng.uniform(0, 1, 80)
    cand = np.clip(base + rng.normal(0.05, 0.15, 80), 0, 1)
    cand[:10] = base[:10]  # ties, as real per-query metrics have
    return base, cand


def test_t_test_equals_scipy_ttest_rel(paired):
    base, cand = paired
    assert stats.t_test(base, cand) == pytest.approx(scipy.stats.ttest_rel(base, cand).pvalue,
                                                     rel=1e-12)


def test_wilcoxon_equals_scipy_wilcoxon(paired):
    base, cand = paired
    assert stats.wilcoxon_test(base, cand) == pytest.approx(
        scipy.stats.wilcoxon(cand, base).pvalue, rel=1e-12)


def test_randomization_test_matches_exact_enumeration():
    diffs = np.array([0.3, 0.1, 0.25, -0.05, 0.2, 0.15, -0.1, 0.4])
    base = np.full(diffs.size, 0.5)
    observed = abs(diffs.mean())
    signs = np.array(list(itertools.product([-1, 1], repeat=diffs.size)))
    exact = float(np.mean(np.abs(signs @ diffs) / diffs.size >= observed - 1e-12))
    p = stats.randomization_test(base, base + diffs, permutations=20_000, seed=1)
    assert p == pytest.approx(exact, abs=0.006)


def test_randomization_test_agrees_with_ranx_fisher(paired):
    from ranx.statistical_tests import fisher_randomization_test

    base, cand = paired
    base, cand = base[:40], cand[:40]  # a borderline difference, so p is far from 0
    ours = stats.randomization_test(base, cand, permutations=10_000, seed=3)
    theirs, _ = fisher_randomization_test(base, cand, 10_000, 0.05, 3)
    assert ours == pytest.approx(theirs, abs=0.02)


def test_randomization_test_is_reproducible_with_a_seed(paired):
    base, cand = paired
    base, cand = base[:40], cand[:40]
    first = stats.randomization_test(base, cand, permutations=2000, seed=5)
    assert stats.randomization_test(base, cand, permutations=2000, seed=5) == first
    assert 0 < first <= 1


def test_identical_systems_have_p_value_one_for_every_test():
    values = np.linspace(0, 1, 12)
    for test in stats.TESTS:
        assert stats.paired_p_value(test, values, values.copy()) == 1.0


def test_holm_and_bonferroni_adjustments():
    p = [0.01, 0.04, 0.03]
    assert stats.correct(p, "holm") == pytest.approx([0.03, 0.06, 0.06])
    assert stats.correct(p, "bonferroni") == pytest.approx([0.03, 0.12, 0.09])
    assert stats.correct(p, "none") == pytest.approx(p)
    assert stats.correct([0.5, 0.6], "bonferroni") == [1.0, 1.0]


def test_bootstrap_ci_brackets_the_mean_difference_and_is_seeded(paired):
    base, cand = paired
    low, high = stats.bootstrap_ci(base, cand, resamples=4000, seed=2)
    assert low < (cand - base).mean() < high
    assert stats.bootstrap_ci(base, cand, resamples=4000, seed=2) == (low, high)
    # A constant difference has no sampling spread.
    assert stats.bootstrap_ci(base, base + 0.1, resamples=500) == pytest.approx((0.1, 0.1))


def test_bootstrap_ci_narrows_with_more_queries():
    rng = np.random.default_rng(0)
    diffs = rng.normal(0.02, 0.2, 2000)
    small = stats.bootstrap_ci(np.zeros(50), diffs[:50], resamples=2000)
    large = stats.bootstrap_ci(np.zeros(2000), diffs, resamples=2000)
    assert large[1] - large[0] < (small[1] - small[0]) / 3


def test_win_tie_loss_counts_queries():
    base = [0.5, 0.5, 0.5, 0.2, 0.9]
    cand = [0.6, 0.5, 0.4, 0.2 + 1e-12, 1.0]
    assert stats.win_tie_loss(base, cand) == stats.WinTieLoss(wins=2, ties=2, losses=1)
