"""From gains to advice: which dose to use, or a plain "it did not help"."""

from __future__ import annotations

from typing import Any

__all__ = ["DID_NOT_HELP", "points", "recommend", "recommend_fraction"]

DID_NOT_HELP = "synthetic samples did not help this classifier on this data"


def points(interval: dict[str, Any]) -> str:
    """A gain as accuracy points: ``+0.4 ± 1.0 points`` (``±`` omitted without an interval).

    Example:
        >>> points({"mean": 0.004, "ci95": 0.0101})
        '+0.4 ± 1.0 points'
    """
    text = f"{interval['mean'] * 100:+.1f}"
    if interval.get("ci95") is not None:
        text += f" ± {interval['ci95'] * 100:.1f}"
    return text + " points"


def recommend_fraction(entry: dict[str, Any]) -> dict[str, Any]:
    """The advice for one fraction of :func:`~synthaug.evaluation.gain.downstream_gain`'s output.

    The recommended dose is the one with the highest mean gain among those whose 95% interval
    lies entirely above zero; a dose whose interval lies entirely below zero earns a warning.

    Example:
        >>> arm = lambda dose, mean, half: {"dose": dose, "gain": {"mean": mean, "ci95": half,
        ...                                 "low": mean - half, "high": mean + half}}
        >>> entry = {"fraction": 1.0, "arms": [{"dose": 0.0}, arm(0.1, 0.01, 0.004), arm(0.5, -0.02, 0.01)]}
        >>> advice = recommend_fraction(entry)
        >>> advice["dose"], advice["text"]
        (0.1, 'use dose 0.1 (10% of each batch synthetic): +1.0 ± 0.4 points of accuracy')
        >>> advice["warnings"]
        ['dose 0.5 hurts: -2.0 ± 1.0 points of accuracy (95% interval below zero)']
    """
    treated = [arm for arm in entry["arms"] if arm["dose"] > 0 and arm["gain"]["mean"] is not None]
    helping = [arm for arm in treated if arm["gain"]["low"] is not None and arm["gain"]["low"] > 0]
    hurting = [arm for arm in treated if arm["gain"]["high"] is not None and arm["gain"]["high"] < 0]
    where = "" if entry["fraction"] >= 1.0 else f" at {entry['fraction']:.0%} of the training data"
    warnings = [f"dose {arm['dose']:g} hurts{where}: {points(arm['gain'])} of accuracy (95% interval below zero)"
                for arm in hurting]
    if helping:
        best = max(helping, key=lambda arm: arm["gain"]["mean"])
        text = (f"use dose {best['dose']:g} ({best['dose']:.0%} of each batch synthetic){where}: "
                f"{points(best['gain'])} of accuracy")
        return {"fraction": entry["fraction"], "dose": best["dose"], "helps": True, "gain": best["gain"],
                "text": text, "warnings": warnings}
    if not treated:
        return {"fraction": entry["fraction"], "dose": None, "helps": False, "gain": None,
                "text": "no synthetic dose was measured", "warnings": warnings}
    best = max(treated, key=lambda arm: arm["gain"]["mean"])
    text = f"{DID_NOT_HELP}{where} (best gain {points(best['gain'])} at dose {best['dose']:g})"
    return {"fraction": entry["fraction"], "dose": None, "helps": False, "gain": best["gain"],
            "best_dose": best["dose"], "text": text, "warnings": warnings}


def recommend(gain: dict[str, Any]) -> dict[str, Any]:
    """Advice per fraction, and the headline: the advice for all of the user's data (fraction 1,
    else the largest fraction measured)."""
    per_fraction = [recommend_fraction(entry) for entry in gain["fractions"]]
    headline = max(per_fraction, key=lambda advice: advice["fraction"])
    return {**headline, "warnings": [w for advice in per_fraction for w in advice["warnings"]],
            "per_fraction": per_fraction}
