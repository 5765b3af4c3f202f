"""The one evidence protocol every verdict of every paper and profile comes from.

Contrasts (A against B): seed-matched pairs (seed s of A and of B share the student's
initialisation, the data order and the teacher of seed s), the mean paired difference with its
two-sided 95 % confidence interval (Student t, n - 1 degrees of freedom). Where the runs cannot
be paired (other seeds, or one side a single run), Welch's interval, said in the row. The
verdict is read from the interval:

- supported: entirely in the claimed direction;
- contradicted: entirely the other way;
- equivalent: entirely inside +- the margin declared with the claim (the smallest difference
  that would matter), the verdict a claim of no difference asks for;
- inconclusive: anything else.

A family of contrasts (many methods against one baseline) is corrected with Holm's step-down
method: supported / contradicted then need the Holm-adjusted two-sided p below 0.05 (the interval
shown stays the unadjusted 95 % one). Validation choices, thresholds and checks are not contrasts
and have verdicts of their own (analysis/render.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from scipy import stats

LEVEL = 0.95
ALPHA = 1 - LEVEL
RULE = ("A claim A vs B is decided by the 95 % confidence interval of the mean difference A − B over seed-matched "
        "runs (Student t, n − 1 degrees of freedom; Welch's interval where runs cannot be paired, said in the row): "
        "supported if the interval lies entirely in the claimed direction, contradicted if entirely the other way, "
        "equivalent if entirely inside ± the claim's margin, else inconclusive. Where one table tests several "
        "methods against one baseline (a family), supported / contradicted need the Holm-adjusted p < 0.05.")
SUPPORTED, CONTRADICTED, EQUIVALENT, INCONCLUSIVE, MISSING = (
    "supported", "contradicted", "equivalent", "inconclusive", "missing")


@dataclass(frozen=True)
class Interval:
    """A difference A − B: its mean, 95 % interval, two-sided p against 0, and how it was formed."""
    diff: float
    low: float
    high: float
    p: float
    n: int                    # pairs (paired) or the smaller side (Welch)
    how: str                  # "paired", "Welch", "one run a side"
    n_b: int = 0              # Welch: the other side's runs

    def text(self, unit: str = "", digits: int = 2) -> str:
        f = lambda x: f"{x:+.{digits}f}"  # noqa: E731
        if self.how == "one run a side":
            return f"Δ = {f(self.diff)}{unit} (one run a side: no interval)"
        sides = f"n = {self.n}" if self.how == "paired" else f"n = {self.n} and {self.n_b}"
        return f"Δ = {f(self.diff)}{unit}, 95 % CI [{f(self.low)}, {f(self.high)}] ({self.how}, {sides})"


def mean(xs) -> float:
    return sum(xs) / len(xs)


def _var(xs) -> float:
    m = mean(xs)
    return sum((x - m) ** 2 for x in xs) / (len(xs) - 1)


def one_sample(d: list[float], how: str = "paired", n_b: int = 0) -> Interval:
    """The t interval of the mean of `d` (the paired differences)."""
    n, m = len(d), mean(d)
    if n < 2:
        return Interval(m, math.nan, math.nan, math.nan, n, "one run a side")
    se = math.sqrt(_var(d) / n)
    if se == 0:
        p = 0.0 if m != 0 else 1.0
        return Interval(m, m, m, p, n, how, n_b)
    q = stats.t.ppf(1 - ALPHA / 2, n - 1)
    p = 2 * stats.t.sf(abs(m) / se, n - 1)
    return Interval(float(m), float(m - q * se), float(m + q * se), float(p), n, how, n_b)


def welch(a: list[float], b: list[float]) -> Interval:
    """Welch's interval of mean(a) − mean(b); a side of one run counts as a constant."""
    if len(a) < 2 and len(b) < 2:
        return Interval(mean(a) - mean(b), math.nan, math.nan, math.nan, 1, "one run a side")
    if len(b) < 2:
        return replace(one_sample([x - b[0] for x in a], "Welch"), n=len(a), n_b=1)
    if len(a) < 2:
        return replace(one_sample([a[0] - x for x in b], "Welch"), n=1, n_b=len(b))
    va, vb = _var(a) / len(a), _var(b) / len(b)
    m, se = mean(a) - mean(b), math.sqrt(va + vb)
    if se == 0:
        return Interval(m, m, m, 0.0 if m else 1.0, len(a), "Welch", len(b))
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    q = stats.t.ppf(1 - ALPHA / 2, dof)
    p = 2 * stats.t.sf(abs(m) / se, dof)
    return Interval(float(m), float(m - q * se), float(m + q * se), float(p), len(a), "Welch", len(b))


def contrast(a: dict, b: dict | None) -> Interval | None:
    """A − B from {seed: value} dicts: paired over the seeds both have (when both have two or more
    runs on those seeds), else Welch's; `b` None: A itself is a difference (against 0)."""
    if not a or (b is not None and not b):
        return None
    if b is None:
        return one_sample(list(a.values()))
    common = sorted(set(a) & set(b))
    if len(common) >= 2 and len(common) == min(len(a), len(b)) and len(a) > 1 and len(b) > 1:
        return one_sample([a[s] - b[s] for s in common])
    return welch(list(a.values()), list(b.values()))


def verdict(iv: Interval | None, direction: str = ">", margin: float = 0.0, p_adjusted: float | None = None) -> str:
    """The verdict of a contrast read from its interval (see the module docstring)."""
    if iv is None:
        return MISSING
    if iv.how == "one run a side":
        return INCONCLUSIVE
    lo, hi, d = iv.low, iv.high, iv.diff
    if direction == "<":
        lo, hi, d = -hi, -lo, -d
    inside = margin > 0 and -margin < lo and hi < margin
    if direction == "=":
        if inside:
            return EQUIVALENT
        return CONTRADICTED if margin > 0 and (lo > margin or hi < -margin) else INCONCLUSIVE
    if p_adjusted is None:
        if lo > 0:
            return SUPPORTED
        if hi < 0:
            return CONTRADICTED
    elif p_adjusted < ALPHA:
        return SUPPORTED if d > 0 else CONTRADICTED
    return EQUIVALENT if inside else INCONCLUSIVE


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (monotone), in the input order; NaN stays NaN."""
    idx = sorted((i for i, p in enumerate(pvalues) if not math.isnan(p)), key=lambda i: pvalues[i])
    m, out, running = len(idx), list(pvalues), 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def threshold_interval(values: list[float]) -> Interval | None:
    """The 95 % interval of a quantity's mean over seeds (for a threshold claim)."""
    if not values:
        return None
    return one_sample(values)
