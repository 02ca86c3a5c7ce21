"""The drift statistics are computed without scipy.stats (too slow to import on every ingest): they must
agree with it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from mlwarden.quality import drift_tests


@pytest.mark.parametrize("seed", range(5))
def test_ks_and_wasserstein_match_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = np.sort(rng.normal(size=int(rng.integers(20, 3000))))
    cur = np.sort(rng.normal(0.1 * seed, 1 + 0.1 * seed, size=int(rng.integers(20, 3000))).round(1))
    statistic, p_value = drift_tests._ks(ref, cur)
    expected = stats.ks_2samp(ref, cur, method="asymp")
    assert statistic == pytest.approx(expected.statistic, abs=1e-12)
    # Kolmogorov's limit distribution (scipy's kstwobign); scipy's ks_2samp uses kstwo at round(n m / (n + m)),
    # which is a little less conservative: ours is never the smaller p-value by more than a few percent.
    effective = len(ref) * len(cur) / (len(ref) + len(cur))
    assert p_value == pytest.approx(stats.kstwobign.sf(np.sqrt(effective) * statistic), rel=1e-9, abs=1e-300)
    assert p_value >= expected.pvalue * 0.95
    scale = float(np.std(ref))
    assert drift_tests._wasserstein(ref, cur) == pytest.approx(stats.wasserstein_distance(ref, cur) / scale, rel=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_chi_squared_and_jensen_shannon_match_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    table = rng.integers(5, 500, size=(2, int(rng.integers(2, 12))))
    statistic, p_value = drift_tests._chi2_homogeneity(table)
    expected = stats.chi2_contingency(table, correction=False)
    assert statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-300)
    p, q = table[0] / table[0].sum(), table[1] / table[1].sum()
    assert drift_tests._jensen_shannon(table) == pytest.approx(distance.jensenshannon(p, q, base=2), rel=1e-9)


@pytest.mark.parametrize("x", [0.0, 0.01, 0.2, 0.5, 0.8, 0.99, 1.0, 1.01, 1.5, 2.5, 5.0, 10.0, 27.0])
def test_kolmogorov_tail_matches_scipy(x: float) -> None:
    from mlwarden.quality.distributions import kolmogorov_sf

    assert kolmogorov_sf(x) == pytest.approx(float(stats.kstwobign.sf(x)), rel=1e-10, abs=1e-300)


@pytest.mark.parametrize("dof", [1, 2, 3, 7, 30, 199])
@pytest.mark.parametrize("x", [0.0, 0.3, 1.0, 4.0, 15.0, 60.0, 250.0, 900.0])
def test_chi_squared_tail_matches_scipy(dof: int, x: float) -> None:
    from mlwarden.quality.distributions import chi2_sf

    assert chi2_sf(dof, x) == pytest.approx(float(stats.chi2.sf(x, dof)), rel=1e-9, abs=1e-300)
