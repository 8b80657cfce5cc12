"""The practitioner's baselines beside synthetic samples, and synthetic samples on top of them.

``synthaug eval`` asks more than "do synthetic samples beat real images alone?": would a user do
better with what they would otherwise reach for? When the labels are imbalanced (the largest
class at least :data:`IMBALANCE_RATIO` times the smallest) the candidates are class-balanced
resampling, logit adjustment and synthaug's ``balance=True`` (synthetic rows filling every class
up to the largest); with unlabelled images, pseudo-labelling and FixMatch. Each baseline runs
alone and with synthetic rows at each dose, paired by seed with the gain experiment's arms
(:func:`~synthaug.evaluation.gain.downstream_gain`, fraction 1). The headline score is balanced
accuracy when the labels are imbalanced (every class counts alike), else accuracy; with
imbalance, the rare classes' accuracy is reported too.

:func:`recommend_method` names the best arm, plainly, also when it is not synthaug's: the best
baseline, and synthetic samples only where their paired gain over it has an interval above zero
(:func:`choose_arm`; the benchmark applies the same rule on validation scores).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..data import ImageData
from ..errors import SynthaugError
from ..metrics.methods import FIXMATCH_MU, Method
from ..metrics.stats import mean_interval, paired_gain
from .gain import train_arm
from .recommendation import points

#: Largest class count over smallest at or above which the labels count as imbalanced.
IMBALANCE_RATIO = 2.0
#: The arm every gain is measured against: real images with classical augmentation.
REAL = "real"


def imbalance(train: ImageData) -> float:
    """Largest class count over smallest (``inf`` when a class has no image)."""
    counts = train.class_counts()
    return float("inf") if min(counts) == 0 else max(counts) / min(counts)


def rare_classes(train: ImageData) -> list[int]:
    """Classes with at most 1 / :data:`IMBALANCE_RATIO` of the largest class's images."""
    counts = train.class_counts()
    return [c for c, n in enumerate(counts) if n * IMBALANCE_RATIO <= max(counts)]


def applicable_baselines(train: ImageData, unlabeled: torch.Tensor | None) -> tuple[list[Method], dict[str, str]]:
    """The baselines that apply to this data, and why the others were skipped."""
    ratio = imbalance(train)
    methods, skipped = [], {}
    if ratio >= IMBALANCE_RATIO:
        methods += [Method(sampling="balanced"), Method(loss="logit_adjusted")]
    else:
        why = f"the labels are balanced (largest class / smallest {ratio:.2f} < {IMBALANCE_RATIO:g})"
        skipped.update({"resample": why, "logit_adjust": why, "balance": why})
    if unlabeled is not None and len(unlabeled):
        methods += [Method(unlabeled="pseudo_label"), Method(unlabeled="fixmatch")]
    else:
        skipped.update({"pseudo_label": "no unlabelled images (unlabeled=...)", "fixmatch": "no unlabelled images "
                        "(unlabeled=...)"})
    return methods, skipped


def balance_dose(train: ImageData) -> tuple[float, list[float]]:
    """``SyntheticDataset(balance=True)`` as a batch mix: the synthetic share of an epoch and the
    per-class weights of the synthetic rows (each class's deficit below the largest).

    Example:
        >>> import torch
        >>> data = ImageData(torch.zeros(8, 1, 8, 8, dtype=torch.uint8), torch.tensor([0] * 6 + [1] * 2), ["a", "b"], "x")
        >>> balance_dose(data)
        (0.3333333333333333, [0.0, 1.0])
    """
    counts = train.class_counts()
    deficits = [max(counts) - n for n in counts]
    total = sum(deficits)
    return total / (total + sum(counts)), [d / total if total else 0.0 for d in deficits]


def compare_methods(sampler, train: ImageData, test: ImageData, unlabeled: torch.Tensor | None, *,
                    seeds: Sequence[int], doses: Sequence[float], steps: int, batch_size: int,
                    classical_augment: bool, model_factory: Callable[[int, int], nn.Module],
                    real_runs: dict[float, list[dict[str, Any]]], tick: Callable | None = None,
                    fixmatch_mu: int = FIXMATCH_MU) -> dict[str, Any]:
    """Every applicable baseline alone and + synthetic rows at each dose of ``doses`` above 0,
    beside ``real_runs`` (the gain experiment's per-seed scores by dose at fraction 1)."""
    if 0.0 not in real_runs:
        raise SynthaugError("compare_methods: expected the real arm's scores (dose 0) in real_runs")
    baselines, skipped = applicable_baselines(train, unlabeled)
    imbalanced = imbalance(train) >= IMBALANCE_RATIO
    options = {"steps": steps, "batch_size": batch_size, "classical_augment": classical_augment,
               "model_factory": model_factory, "tick": tick}
    runs: dict[str, dict[str, Any]] = {REAL: _arm(REAL, Method(), 0.0, real_runs[0.0])}
    for dose in sorted(d for d in real_runs if d > 0):
        runs[f"synthetic@{dose:g}"] = _arm(f"synthetic@{dose:g}", Method(), dose, real_runs[dose])
    if imbalanced:
        dose, weights = balance_dose(train)
        runs["balance"] = _arm("balance", Method(), dose, [
            train_arm(train, test, sampler, dose, seed, synthetic_labels=weights, **options) for seed in seeds],
            label="synthaug balance=True (synthetic rows fill every class up to the largest)")
    for method in baselines:
        extra = {"unlabeled": unlabeled, **({"mu": fixmatch_mu} if method.unlabeled == "fixmatch" else {})}
        for dose in [0.0, *sorted(d for d in doses if d > 0)]:
            name = method.name if dose == 0 else f"{method.name}+synthetic@{dose:g}"
            rows = [train_arm(train, test, sampler, dose, seed, method=method, **extra, **options) for seed in seeds]
            runs[name] = _arm(name, method, dose, rows)
    rare = rare_classes(train) if imbalanced else []
    metric = "balanced_accuracy" if imbalanced else "accuracy"
    arms = [_summarise(arm, runs, rare, train.class_names) for arm in runs.values()]
    return {"metric": metric, "imbalance": imbalance(train), "imbalance_threshold": IMBALANCE_RATIO,
            "rare_classes": [train.class_names[c] for c in rare], "seeds": list(seeds),
            "skipped": skipped, "fixmatch_mu": fixmatch_mu if unlabeled is not None else None,
            "arms": arms, "recommendation": recommend_method(arms, metric)}


def _arm(name: str, method: Method, dose: float, rows: list[dict[str, Any]], label: str | None = None) -> dict:
    base = method.label if method.name != REAL else "real images"
    text = label or (base if dose == 0 else f"{base} + synthetic samples (dose {dose:g})")
    return {"name": name, "label": text, "method": method.name, "dose": dose, "rows": rows}


def _rare_accuracy(row: dict[str, Any], rare: list[int]) -> float:
    return sum(row["per_class"][c] for c in rare) / len(rare)


def _summarise(arm: dict[str, Any], runs: dict[str, dict[str, Any]], rare: list[int],
               class_names: Sequence[str]) -> dict[str, Any]:
    """Means and paired gains: against real images, and (with synthetic rows) against the same
    method without them."""
    rows, real = arm["rows"], runs[REAL]["rows"]
    out = {k: arm[k] for k in ("name", "label", "method", "dose")}
    scores = {"accuracy": [r["accuracy"] for r in rows], "balanced_accuracy": [r["balanced_accuracy"] for r in rows]}
    if rare:
        scores["rare_accuracy"] = [_rare_accuracy(r, rare) for r in rows]
    for key, values in scores.items():
        out[key] = mean_interval(values)
    out["per_class_accuracy"] = {name: mean_interval([r["per_class"][c] for r in rows])["mean"]
                                 for c, name in enumerate(class_names)}
    out["gain"] = {key: paired_gain(_scores(real, key, rare), values) for key, values in scores.items()}
    without = arm["method"] if arm["dose"] > 0 and arm["method"] != REAL and arm["name"] != "balance" else None
    if without is not None:
        out["over_baseline"] = {key: paired_gain(_scores(runs[without]["rows"], key, rare), values)
                                for key, values in scores.items()}
        out["baseline"] = without
    return out


def _scores(rows: list[dict[str, Any]], key: str, rare: list[int]) -> list[float]:
    return [_rare_accuracy(r, rare) if key == "rare_accuracy" else r[key] for r in rows]


def choose_arm(scores: dict[str, Sequence[float]], synthetic: set[str]) -> tuple[str, str]:
    """``(best baseline, recommended)`` from per-seed scores (the same seeds, in the same order,
    for every arm): the best baseline is the arm without synthetic samples with the highest mean;
    a synthetic arm is recommended over it only when its paired gain's 95% interval lies above
    zero (the one with the highest mean among those), else the baseline is.

    Example:
        >>> choose_arm({"real": [0.80, 0.82, 0.81], "resample": [0.90, 0.91, 0.89],
        ...             "resample+synthetic@0.25": [0.91, 0.90, 0.91]}, {"resample+synthetic@0.25"})
        ('resample', 'resample')
        >>> choose_arm({"real": [0.80, 0.82, 0.81], "resample": [0.90, 0.91, 0.89],
        ...             "resample+synthetic@0.25": [0.93, 0.94, 0.92]}, {"resample+synthetic@0.25"})
        ('resample', 'resample+synthetic@0.25')
    """
    def mean(name: str) -> float:
        return sum(scores[name]) / len(scores[name])

    base = max((n for n in scores if n not in synthetic), key=mean)
    helping = [n for n in synthetic if (paired_gain(scores[base], scores[n])["low"] or 0.0) > 0]
    return base, max(helping, key=mean) if helping else base


def recommend_method(arms: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """The advice :func:`choose_arm` gives on ``metric``, in words: the best baseline, and
    synthetic samples only where they beat it with a paired interval above zero.

    Example:
        >>> iv = lambda *v: {"mean": sum(v) / len(v), "values": list(v)}
        >>> arms = [{"name": "real", "label": "real images", "dose": 0.0, "accuracy": iv(0.80, 0.82, 0.81)},
        ...         {"name": "resample", "label": "class-balanced resampling", "dose": 0.0,
        ...          "accuracy": iv(0.90, 0.91, 0.89)},
        ...         {"name": "resample+synthetic@0.25", "dose": 0.25,
        ...          "label": "class-balanced resampling + synthetic samples (dose 0.25)",
        ...          "accuracy": iv(0.91, 0.90, 0.88)}]
        >>> print(recommend_method(arms, "accuracy")["text"])
        use class-balanced resampling without synthetic samples: +9.0 ± 2.5 points of accuracy over real images; synthetic samples on top: -0.3 ± 2.9 points (resample+synthetic@0.25) — do not add them
    """
    what = metric.replace("_", " ")
    by_name = {a["name"]: a for a in arms}
    scores = {name: a[metric]["values"] for name, a in by_name.items()}
    synthetic = {name for name, a in by_name.items() if a["dose"] > 0}
    base, chosen = choose_arm(scores, synthetic)
    best = by_name[chosen]
    over_real = paired_gain(scores[REAL], scores[chosen])
    result = {"best": chosen, "baseline": base, "method": chosen, "dose": best["dose"] or None, "metric": metric,
              "gain": over_real, "synthetic_helps": chosen != base}
    if chosen != base:
        result["over_baseline"] = paired_gain(scores[base], scores[chosen])
        text = (f"use {best['label']}: {points(over_real)} of {what} over real images; over "
                f"{by_name[base]['label']} alone: {points(result['over_baseline'])}")
    elif chosen == REAL:
        text = f"use real images with classical augmentation: no baseline nor synthetic arm beat it on {what}"
    else:
        text = (f"use {best['label']} without synthetic samples: {points(over_real)} of {what} over real images")
    if chosen == base and synthetic:
        gains = {n: paired_gain(scores[base], scores[n]) for n in synthetic}
        top = max(gains, key=lambda n: gains[n]["mean"])
        verdict = "do not add them" if gains[top]["mean"] <= 0 else "not a clear gain (interval reaches zero)"
        text += f"; synthetic samples on top: {points(gains[top])} ({top}) — {verdict}"
    result["text"] = text
    return result


__all__ = ["IMBALANCE_RATIO", "applicable_baselines", "balance_dose", "choose_arm", "compare_methods", "imbalance",
           "rare_classes", "recommend_method"]
