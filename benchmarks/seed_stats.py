"""Seed statistics of the claim studies (imported from their folder).

A difference between two arms counts only when both have at least
``MIN_SEEDS`` runs and the gap between their means exceeds twice the larger of
their seed ranges (max - min over seeds); a run that diverged (a non-finite
value) makes its arm "diverged".
"""

import math

MIN_SEEDS = 3


def stats(values):
    """``{"mean", "range", "n", "diverged"}`` of one arm's per-seed values."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < len(values):
        return {
            "mean": float("nan"),
            "range": float("nan"),
            "n": len(values),
            "diverged": len(values) - len(finite),
        }
    mean = sum(finite) / len(finite)
    return {"mean": mean, "range": max(finite) - min(finite), "n": len(values), "diverged": 0}


def compare(a, b):
    """Is arm ``a`` above arm ``b`` by more than twice the larger seed range?

    Returns:
        ``(gap, verdict)``: the difference of the means (infinite when one
        arm diverged) and "yes", "yes (other diverged)", "no (within
        spread)", "no (reversed)", "no (diverged)", "both diverged" or
        "n/a (< 3 seeds)".
    """
    if min(a["n"], b["n"]) < MIN_SEEDS:
        gap = a["mean"] - b["mean"]
        return gap, f"n/a (< {MIN_SEEDS} seeds)"
    if a["diverged"] and b["diverged"]:
        return float("nan"), "both diverged"
    if b["diverged"]:
        return float("inf"), "yes (other diverged)"
    if a["diverged"]:
        return float("-inf"), "no (diverged)"
    gap, spread = a["mean"] - b["mean"], max(a["range"], b["range"])
    if gap > 2 * spread:
        return gap, "yes"
    if gap < -2 * spread:
        return gap, "no (reversed)"
    return gap, "no (within spread)"


def within(a, b, margin):
    """Is arm ``a`` at most ``margin`` below arm ``b`` ("as good as", on the means)?

    Returns:
        ``(gap, verdict)``: the difference of the means and "yes", "no" (a
        diverged arm counts as no) or "n/a (< 3 seeds)".
    """
    gap = a["mean"] - b["mean"]
    if min(a["n"], b["n"]) < MIN_SEEDS:
        return gap, f"n/a (< {MIN_SEEDS} seeds)"
    return gap, "yes" if math.isfinite(gap) and gap >= -margin else "no"


def fmt(s):
    """``"mean ± half range"`` (dB), or how many seeds diverged."""
    if s["diverged"]:
        return f"diverged ({s['diverged']}/{s['n']})"
    return f"{s['mean']:.2f} ± {s['range'] / 2:.2f}"
