"""Outcomes that can refute: how one effect's confidence interval is judged against a
claim, corrected for the number of cases a claim tests, and how many seeds would decide
an undetermined case.

Every case (one setting, data set, imbalance and fraction) gets one outcome for its
primary effect, a paired difference over seeds (:class:`analysis.claims.Interval`),
oriented so that the claimed direction is positive:

``as claimed``
    the interval is above 0 (Holm-corrected across the claim's cases) and the mean
    reaches the claimed size;
``smaller than claimed``
    the interval is above 0 (corrected) and entirely below the claimed size;
``below claimed size``
    the interval is entirely below the claimed size but reaches 0 (the claimed size is
    excluded; whether there is any effect is not);
``no effect``
    the interval lies inside the equivalence margin (+- :data:`MARGIN`): any effect is
    too small to matter (two one-sided tests at the same level, not corrected);
``hurts``
    the interval is below 0 (corrected);
``undetermined``
    none of these: the interval is too wide. :func:`seeds_to_decide` says roughly how
    many seeds would decide it, if the mean and spread stayed as they are.

Holm's step-down correction (Holm 1979, Scand. J. Statist. 6, 65-70; statsmodels'
``multipletests``) controls the family-wise error over a claim's cases: a claim tested
on 14 cases would otherwise find about one "significant" case by chance in every two
reports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: Family-wise error rate of each claim's tests, and 1 - the intervals' level.
ALPHA = 0.05
#: Equivalence margin: an effect inside +- 2 points (accuracy) or +- 0.02 (a sparseness
#: measure in [0, 1]) is "no effect".
MARGIN = 0.02
#: Largest number of seeds :func:`seeds_to_decide` looks at.
MAX_SEEDS = 200

AS_CLAIMED = "as claimed"
SMALLER = "smaller than claimed"
BELOW_SIZE = "below claimed size"
NO_EFFECT = "no effect"
HURTS = "hurts"
UNDETERMINED = "undetermined"
#: Every outcome, in the order tables count them.
OUTCOMES = (AS_CLAIMED, SMALLER, BELOW_SIZE, NO_EFFECT, HURTS, UNDETERMINED)
#: Outcomes that decide a case against the claim.
AGAINST = (SMALLER, BELOW_SIZE, NO_EFFECT, HURTS)


@dataclass(frozen=True)
class Rule:
    """How a claim judges its primary effect.

    Attributes
    ----------
    size : float
        The claimed size in the effect's units, in the claimed direction (0.20 for "20
        points more"; 0 for a direction alone, e.g. "sparser").
    sign : {1, -1}
        +1 when the claim is an increase of the effect, -1 a decrease.
    margin : float
        Equivalence margin of ``no effect``.
    """

    size: float = 0.0
    sign: int = 1
    margin: float = MARGIN

    def text(self, unit: str = "points", scale: float = 100.0) -> str:
        """The rule in words, for the report's *Rule* line."""
        size = f" of at least {scale * self.size:g} {unit}" if self.size else ""
        return (
            f"*as claimed*: 95 % CI above 0 after Holm's correction over the claim's cases, "
            f"mean{size} in the claimed direction; *smaller than claimed*: CI above 0 but "
            f"entirely below the claimed size; *below claimed size*: CI below the claimed "
            f"size but reaching 0; *no effect*: CI inside +-{scale * self.margin:g} {unit}; "
            f"*hurts*: CI on the wrong side of 0 (Holm); *undetermined*: none of these (the "
            "table says about how many seeds would decide it)"
        )


def p_value(mean: float, sd: float, n: int) -> float:
    """Two-sided one-sample t-test p-value of ``mean`` against 0 (NaN for ``n < 2``)."""
    if n < 2 or not math.isfinite(mean) or not math.isfinite(sd):
        return math.nan
    if sd == 0:
        return 0.0 if mean != 0 else 1.0
    t = mean / (sd / math.sqrt(n))
    return float(2 * stats.t.sf(abs(t), n - 1))


def holm(p_values: Sequence[float], alpha: float = ALPHA) -> list[bool]:
    """Which of the p-values are significant after Holm's correction (NaN: never).

    Parameters
    ----------
    p_values : sequence of float
        One per case of a claim.
    alpha : float
        Family-wise error rate.

    Returns
    -------
    list of bool
        In the order given.
    """
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    out = np.zeros(p.size, dtype=bool)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = multipletests(p[finite], alpha=alpha, method="holm")[0]
    return out.tolist()


def classify(mean: float, lo: float, hi: float, n: int, rule: Rule, significant: bool) -> str:
    """The outcome of one effect (see the module's list).

    Parameters
    ----------
    mean, lo, hi : float
        The effect's mean and 95 % interval, in its own orientation.
    n : int
        Seeds.
    rule : Rule
        The claim's rule (its ``sign`` orients the effect).
    significant : bool
        The effect differs from 0 after the claim's multiplicity correction.

    Returns
    -------
    str
        One of :data:`OUTCOMES`.
    """
    if n < 2 or not all(math.isfinite(v) for v in (mean, lo, hi)):
        return UNDETERMINED
    if rule.sign < 0:
        mean, lo, hi = -mean, -hi, -lo
    if hi < 0 and significant:
        return HURTS
    if -rule.margin <= lo and hi <= rule.margin:
        return NO_EFFECT
    if lo > 0 and significant and mean >= rule.size:
        return AS_CLAIMED
    if rule.size > 0 and hi < rule.size:
        return SMALLER if lo > 0 and significant else BELOW_SIZE
    return UNDETERMINED


def seeds_to_decide(mean: float, sd: float, n: int, rule: Rule) -> int | None:
    """About how many seeds would decide an undetermined effect.

    The smallest number of seeds whose interval, with the same mean and spread, gets an
    outcome other than ``undetermined`` (uncorrected: a lower bound when several cases
    are tested). None when no number up to :data:`MAX_SEEDS` would (a mean on a boundary,
    or no spread to go by).
    """
    if not (math.isfinite(mean) and math.isfinite(sd)) or sd == 0 or n < 1:
        return None
    for k in range(max(n + 1, 2), MAX_SEEDS + 1):
        half = float(stats.t.ppf(1 - ALPHA / 2, k - 1) * sd / math.sqrt(k))
        significant = p_value(mean, sd, k) < ALPHA
        if classify(mean, mean - half, mean + half, k, rule, significant) != UNDETERMINED:
            return k
    return None


def count_text(outcomes: Sequence[str]) -> str:
    """``2 as claimed, 5 smaller than claimed, 1 undetermined``: the non-zero counts, the
    outcomes of this module first, then a claim's own (e.g. *majority classes only*)."""
    order = [k for k in OUTCOMES if k in outcomes]
    order += sorted({o for o in outcomes if o not in OUTCOMES})
    return ", ".join(f"{sum(o == k for o in outcomes)} {k}" for k in order)
