"""The two tail probabilities the drift tests need, in plain Python.

scipy computes them too, but importing ``scipy.special`` costs ~0.2 s (``scipy.stats`` ~0.6 s) of every
ingestion that runs drift tests; these are short, classic series. ``tests/quality/test_drift_reference.py``
checks them against scipy.
"""

from __future__ import annotations

import math

_MAX_TERMS = 500
_EPSILON = 1e-16
_TINY = 1e-300


def kolmogorov_sf(x: float) -> float:
    """P(K > x) for Kolmogorov's limit distribution K (Kolmogorov 1933).

    For x >= 1 the alternating series 2 * sum (-1)^(k-1) exp(-2 k^2 x^2); below, the complement of the
    theta-function form sqrt(2 pi) / x * sum exp(-(2k-1)^2 pi^2 / (8 x^2)). Both converge in a few terms.
    """
    if x <= 0:
        return 1.0
    if x >= 1.0:
        total = 0.0
        for k in range(1, _MAX_TERMS):
            term = math.exp(-2.0 * k * k * x * x)
            total += term if k % 2 else -term
            if term < _EPSILON * total:
                break
        return min(1.0, max(0.0, 2.0 * total))
    total = 0.0
    for k in range(1, _MAX_TERMS):
        term = math.exp(-((2 * k - 1) ** 2) * math.pi**2 / (8.0 * x * x))
        total += term
        if term <= _EPSILON * total:
            break
    return min(1.0, max(0.0, 1.0 - math.sqrt(2.0 * math.pi) / x * total))


def chi2_sf(dof: int, x: float) -> float:
    """P(X > x) for a chi-squared variable with ``dof`` degrees of freedom: the regularized upper
    incomplete gamma function Q(dof/2, x/2), by its series below a + 1 and Lentz's continued fraction
    above (where it keeps full relative precision for tiny p-values)."""
    if dof < 1:
        raise ValueError("a chi-squared distribution needs at least one degree of freedom")
    if x <= 0:
        return 1.0
    a, z = dof / 2.0, x / 2.0
    log_prefix = a * math.log(z) - z - math.lgamma(a)
    if z < a + 1.0:
        return min(1.0, max(0.0, 1.0 - _lower_series(a, z) * math.exp(log_prefix)))
    return min(1.0, max(0.0, _upper_fraction(a, z) * math.exp(log_prefix)))


def _lower_series(a: float, z: float) -> float:
    term = total = 1.0 / a
    n = a
    for _ in range(_MAX_TERMS):
        n += 1.0
        term *= z / n
        total += term
        if abs(term) < abs(total) * _EPSILON:
            break
    return total


def _upper_fraction(a: float, z: float) -> float:
    b = z + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_TERMS):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPSILON:
            break
    return h
