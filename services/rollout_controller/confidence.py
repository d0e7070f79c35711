"""Confidence sequences: intervals that hold at every look at once, so the controller may look every interval and
stop as soon as one excludes the margin, without the false-alarm rate growing with the number of looks.

The boundary is the two-sided normal mixture (Robbins; in the form of Waudby-Smith, Arbour, Sinha, Kennedy and
Ramdas, "Time-uniform central limit theory and asymptotic confidence sequences", 2021): for an estimate with
variance ``v`` (information ``I = 1/v``) the radius is

    (1/I) * sqrt(2 (1 + rho^2 I) / rho^2 * log(sqrt(1 + rho^2 I) / alpha))

with the variance plugged in from the data (an asymptotic confidence sequence). ``rho`` decides where the
sequence is tightest; it is set from the power wanted at the margin: the information at which a single test at
``alpha`` would have that power. Plain Python, no numpy: the control image's code path stays small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

_Z = NormalDist()


def planned_information(alpha: float, power: float, margin: float) -> float:
    """Information (1 / variance of the estimate) at which a fixed test at ``alpha`` has ``power`` at ``margin``."""
    z = _Z.inv_cdf(1 - alpha / 2) + _Z.inv_cdf(power)
    return (z / margin) ** 2


def radius(variance: float, alpha: float, planned: float) -> float:
    """Half-width of the confidence sequence for an estimate of ``variance``, tuned to ``planned`` information."""
    if variance <= 0:
        return 0.0
    information = 1.0 / variance
    # The near-optimal mixing variance for width at the planned information (Waudby-Smith et al., section 2.4).
    rho2 = (-2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))) / planned
    grown = 1 + rho2 * information
    return math.sqrt(2 * grown / rho2 * math.log(math.sqrt(grown) / alpha)) / information


def rate_variance(hits: float, n: float) -> float:
    """Variance of a share ``hits / n``, smoothed (half a hit either way) so that 0 of n still has some width."""
    if n <= 0:
        return math.inf
    p = (hits + 0.5) / (n + 1)
    return p * (1 - p) / n


def paired_variance(worse: float, better: float, n: float) -> float:
    """Variance of the mean of paired differences that are +1 (``worse``), -1 (``better``) or 0, over ``n`` pairs;
    the share of unequal pairs is smoothed as in rate_variance."""
    if n <= 0:
        return math.inf
    unequal, mean = (worse + better + 0.5) / (n + 1), (worse - better) / n
    return max(unequal - mean * mean, unequal * (1 - unequal)) / n


@dataclass(frozen=True)
class Judgement:
    """A check's estimate of "how much worse the candidate is", its interval, and what that shows at the margin."""

    estimate: float
    lower: float
    upper: float
    margin: float
    samples: int  # the candidate's sample size behind the estimate
    source: str = "measured"  # "paired" (accuracy on requests both answered) or "estimated" (from scores, CBPE)
    skipped: str = ""  # why the check does not hold the candidate back although it is not shown within its margin

    @property
    def decision(self) -> str:
        """passed: shown within the margin; failed: shown beyond it; undecided: the interval holds the margin."""
        if self.skipped:
            return "skipped"
        if self.upper < self.margin:
            return "passed"
        if self.lower > self.margin:
            return "failed"
        return "undecided"

    def as_dict(self) -> dict:
        out = {
            "estimate": round(self.estimate, 6),
            "lower": round(self.lower, 6),
            "upper": round(self.upper, 6),
            "margin": round(self.margin, 6),
            "samples": self.samples,
            "source": self.source,
            "decision": self.decision,
        }
        return {**out, "skipped": self.skipped} if self.skipped else out


def judge(estimate: float, variance: float, margin: float, samples: int, alpha: float, power: float,
          source: str = "measured") -> Judgement:  # fmt: skip
    """A confidence sequence around ``estimate`` (oriented so that larger is worse), judged at ``margin``."""
    r = radius(variance, alpha, planned_information(alpha, power, margin))
    return Judgement(estimate, estimate - r, estimate + r, margin, samples, source)


def cdf(counts: list[float]) -> list[float]:
    """Cumulative shares of a histogram's bucket counts (per bucket, not cumulative)."""
    total = sum(counts)
    out, running = [], 0.0
    for c in counts:
        running += c
        out.append(running / total if total else 0.0)
    return out


def rank_shift(candidate: list[float], main: list[float]) -> tuple[float, float]:
    """P(candidate > main) + P(tie) / 2 from two histograms over the same buckets (the Mann-Whitney statistic, as
    Kayenta judges canaries), less 1/2, and its variance from DeLong's placements."""
    nc, nm = sum(candidate), sum(main)
    fc, fm = [c / nc for c in candidate], [m / nm for m in main]
    below_m = below_c = 0.0
    place_c, place_m = [], []  # per bucket: P(other < x) + P(other == x) / 2
    for pc, pm in zip(fc, fm):
        place_c.append(below_m + pm / 2)
        place_m.append(1 - below_c - pc / 2)  # P(candidate > x) + tie / 2, for x drawn from main
        below_m += pm
        below_c += pc
    theta = sum(p * v for p, v in zip(fc, place_c))
    var_c = sum(p * (v - theta) ** 2 for p, v in zip(fc, place_c))
    var_m = sum(p * (v - theta) ** 2 for p, v in zip(fm, place_m))
    # A floor of one pair's worth of variance keeps two identical single-bucket histograms from a zero width.
    variance = var_c / nc + var_m / nm + 1 / (4 * nc * nm)
    return theta - 0.5, variance
