"""The evidence protocol (analysis/evidence.py) against scipy's own tests, written differently, and
its verdict rules on intervals built by hand."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

from analysis import evidence as ev

values = st.lists(st.floats(-50, 50, allow_nan=False), min_size=2, max_size=12)


@settings(max_examples=60, deadline=None)
@given(values, st.floats(-5, 5))
def test_paired_interval_matches_scipy(a, shift):
    rng = np.random.default_rng(len(a))
    b = [x - shift + rng.normal() for x in a]
    iv = ev.contrast(dict(enumerate(a)), dict(enumerate(b)))
    d = np.subtract(a, b)
    if np.std(d) < 1e-9:
        return
    res = stats.ttest_rel(a, b)
    lo, hi = res.confidence_interval(0.95)
    assert iv.how == "paired" and iv.n == len(a)
    assert iv.diff == pytest.approx(d.mean(), abs=1e-9)
    assert (iv.low, iv.high) == pytest.approx((lo, hi), rel=1e-7, abs=1e-7)
    assert iv.p == pytest.approx(res.pvalue, rel=1e-6, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(values, values)
def test_welch_interval_matches_scipy(a, b):
    if np.std(a) < 1e-6 or np.std(b) < 1e-6:
        return
    iv = ev.contrast(dict(enumerate(a)), {100 + k: v for k, v in enumerate(b)})     # other seeds: unpaired
    res = stats.ttest_ind(a, b, equal_var=False)
    lo, hi = res.confidence_interval(0.95)
    assert iv.how == "Welch"
    assert (iv.low, iv.high) == pytest.approx((lo, hi), rel=1e-6, abs=1e-6)


def test_verdicts_read_from_the_interval():
    iv = lambda lo, hi: ev.Interval((lo + hi) / 2, lo, hi, 0.01, 5, "paired")  # noqa: E731
    assert ev.verdict(iv(0.2, 1.0)) == ev.SUPPORTED
    assert ev.verdict(iv(-1.0, -0.2)) == ev.CONTRADICTED
    assert ev.verdict(iv(-0.3, 0.4), margin=0.5) == ev.EQUIVALENT
    assert ev.verdict(iv(-0.3, 0.9), margin=0.5) == ev.INCONCLUSIVE
    assert ev.verdict(iv(-1.0, -0.2), direction="<") == ev.SUPPORTED
    assert ev.verdict(iv(-0.3, 0.4), direction="=", margin=0.5) == ev.EQUIVALENT
    assert ev.verdict(iv(0.6, 0.9), direction="=", margin=0.5) == ev.CONTRADICTED
    assert ev.verdict(iv(-0.3, 0.4), direction="=") == ev.INCONCLUSIVE      # no margin: no equivalence
    assert ev.verdict(None) == ev.MISSING
    one = ev.Interval(1.0, math.nan, math.nan, math.nan, 1, "one run a side")
    assert ev.verdict(one) == ev.INCONCLUSIVE


def test_a_family_needs_the_holm_adjusted_p():
    iv = ev.Interval(0.5, 0.05, 0.95, 0.03, 5, "paired")
    assert ev.verdict(iv) == ev.SUPPORTED
    assert ev.verdict(iv, p_adjusted=0.09) == ev.INCONCLUSIVE
    assert ev.verdict(iv, p_adjusted=0.01) == ev.SUPPORTED


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=10))
def test_holm_against_a_slow_reference(ps):
    """Step-down: the k-th smallest p times (m - k + 1), running maximum, capped at 1."""
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    ref, best = [0.0] * len(ps), 0.0
    for k, i in enumerate(order):
        best = max(best, min(1.0, (len(ps) - k) * ps[i]))
        ref[i] = best
    assert ev.holm(ps) == pytest.approx(ref)
    assert all(h >= p for h, p in zip(ev.holm(ps), ps))


def test_a_single_run_side_is_a_constant():
    iv = ev.contrast({0: 1.0, 1: 2.0, 2: 3.0}, {0: 1.0})
    assert iv.how == "Welch" and iv.n_b == 1
    ref = stats.ttest_1samp([0.0, 1.0, 2.0], 0.0).confidence_interval(0.95)
    assert (iv.low, iv.high) == pytest.approx(tuple(ref))
