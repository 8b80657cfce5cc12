"""``synthaug.evaluate``: on the user's own data, do a generator's samples help their classifier?

One call measures, in order: a feature space (trained on the real training data unless the user
brings one), sample quality in it (FID, KID, precision/recall, density/coverage, overall and per
class, beside the same numbers for held-out real images), memorisation, the Classification
Accuracy Score, and the downstream gain of mixing synthetic samples into a classifier's batches
at each dose, with paired seeds. It ends in a recommendation and a report directory.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._version import __version__
from ..data import ImageData, load_data, stratified_split
from ..data.unlabeled import load_unlabeled
from ..errors import SynthaugError
from ..metrics.cas import classification_accuracy_score, generate_images
from ..progress import progress_bar
from ..runtime import Sampler, load
from ..train.rundir import check_out_outside_data
from .defaults import DEFAULT_DOSES, DEFAULT_REFERENCE_STEPS, DEFAULT_STEPS, DEFAULT_TEST_FRACTION
from ..metrics.methods import FIXMATCH_MU
from ..metrics.features import (CACHE_DIR, FeatureSpace, cache_path, is_cache_file_name, reference_classifier, small_cnn_space,
                       user_space)
from .gain import downstream_gain
from .methods import IMBALANCE_RATIO, applicable_baselines, compare_methods
from .memorisation import memorisation
from ..metrics.quality import quality_metrics
from .recommendation import recommend
from .report import REPORT_FILES, is_our_report, json_safe, write_report
from ..metrics.specs import check_classifier, classifier_factory

log = logging.getLogger("synthaug")

#: At most this many real training images (stratified) define the real manifold for quality.
QUALITY_MAX_REAL = 10_000
#: Images per class each training subset must keep (batchnorm and a paired comparison need two).
MIN_PER_CLASS = 2


@dataclass
class EvalReport:
    """What :func:`evaluate` measured: ``results`` is everything in ``report.json``.

    The headline numbers are attributes; ``report["quality"]`` etc. index the full results.
    """

    results: dict[str, Any]
    out: Path | None = None
    files: dict[str, str] | None = None

    def __getitem__(self, key: str) -> Any:
        return self.results[key]

    @property
    def recommendation(self) -> str:
        return self.results["recommendation"]["text"]

    @property
    def dose(self) -> float | None:
        """The recommended dose, or ``None`` when synthetic samples did not help (or when a
        baseline without synthetic samples did best: see :attr:`method`)."""
        return self.results["recommendation"]["dose"]

    @property
    def method(self) -> str | None:
        """The best arm's name when the practitioner's baselines were compared (``"resample"``,
        ``"fixmatch+synthetic@0.25"``, ``"real"``), else ``None``."""
        return self.results["recommendation"].get("method")

    @property
    def warnings(self) -> list[str]:
        return self.results["recommendation"]["warnings"]

    def summary(self) -> dict[str, Any]:
        """The headline numbers, as the CLI prints them on stdout."""
        r = self.results
        overall = r["quality"]["generated"]
        return {
            "out": str(self.out) if self.out else None,
            "recommendation": self.recommendation, "dose": self.dose, "warnings": self.warnings,
            "method": r["recommendation"].get("method"),
            "gain": r["recommendation"]["gain"] and {k: r["recommendation"]["gain"][k] for k in ("mean", "ci95")},
            "cas": r["cas"]["cas"], "cas_ratio": r["cas"]["ratio"],
            "fid": overall["fid"], "kid": overall["kid"], "kid_std": overall["kid_std"],
            "precision": overall["precision"], "recall": overall["recall"], "coverage": overall["coverage"],
            "near_copy_share": r["memorisation"]["near_copy_share"],
            "seconds": r["seconds"], "files": self.files,
        }

    def __repr__(self) -> str:
        return f"EvalReport({self.recommendation!r}, out={str(self.out) if self.out else None!r})"


# --------------------------------------------------------------------------- checking the request


def check_settings(seeds: int | Sequence[int], doses: Sequence[float], fractions: Sequence[float],
                   steps: int, reference_steps: int) -> tuple[list[int], list[float], list[float]]:
    """Seeds as a list, doses sorted with the baseline 0 first, fractions sorted; one-line errors."""
    if isinstance(seeds, bool) or isinstance(seeds, str) or not isinstance(seeds, (numbers.Integral, Sequence)) \
            or (isinstance(seeds, Sequence) and not all(isinstance(s, numbers.Integral) for s in seeds)):
        raise SynthaugError(f"seeds: expected a count or a list of integer seeds, got {seeds!r}")
    seed_list = list(range(int(seeds))) if isinstance(seeds, numbers.Integral) else [int(s) for s in seeds]
    if len(seed_list) < 2 or len(set(seed_list)) != len(seed_list):
        raise SynthaugError(f"seeds: expected at least 2 distinct seeds (the gain's interval comes from paired "
                            f"seeds), got {seeds!r}")
    for name, values, low_open in (("dose", doses, False), ("fraction", fractions, True)):
        if not len(values):
            raise SynthaugError(f"{name}s: expected at least one value, got none")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or not 0 <= v <= 1 or (low_open and v == 0):
                interval = "(0, 1]" if low_open else "[0, 1]"
                raise SynthaugError(f"{name}: expected a share in {interval}, got {v!r}")
    dose_list = sorted({0.0, *map(float, doses)})
    if len(dose_list) < 2:
        raise SynthaugError("doses: expected at least one dose above 0 (0 is the baseline), got only 0")
    for name, value in (("steps", steps), ("reference_steps", reference_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SynthaugError(f"{name}: expected a positive number of optimiser steps, got {value!r}")
    return seed_list, dose_list, sorted({float(f) for f in fractions})


def check_report_dir(out: str | os.PathLike, force: bool, sources: Sequence[Any] = ()) -> Path:
    """Raise unless ``out`` can receive a report; changes nothing. A directory holding anything
    but eval's own feature cache needs ``force``; ``out`` may not lie inside an image folder of
    ``sources`` (the report would become a class of the next fit)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SynthaugError(f"report directory {out}: expected a directory, got an existing file")
    check_out_outside_data(out.resolve(), sources, "the report directory")
    if out.is_dir():
        cache = out / CACHE_DIR
        if cache.exists() or cache.is_symlink():
            _check_cache_dir(cache)
        others = sorted(p.name for p in out.iterdir() if p.name != CACHE_DIR)
        if others and not force:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise SynthaugError(f"report directory {out} is not empty (holds {shown}): pass force=True to "
                                f"overwrite the report in it")
        foreign = [name for name in REPORT_FILES if (out / name).exists() and not is_our_report(out / name)]
        if foreign:  # --force replaces only what eval wrote; it never writes any other name
            raise SynthaugError(f"report directory {out} holds {', '.join(foreign)} that synthaug eval did not "
                                f"write: refusing to overwrite it, even with force=True; choose another out=...")
        existing = out
    else:
        existing = next((p for p in out.parents if p.exists()), Path("."))
        if not existing.is_dir():
            raise SynthaugError(f"cannot create report directory {out}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SynthaugError(f"cannot write report directory {out}: {existing} is not writable")
    return out


def _check_cache_dir(cache: Path) -> None:
    """``REPORT_DIR/cache`` is eval's only when it is a plain folder of cached feature networks."""
    if cache.is_symlink() or not cache.is_dir():
        kind = "a link" if cache.is_symlink() else "a file"
        raise SynthaugError(f"report directory entry {cache} is {kind}: expected eval's folder of cached feature "
                            f"networks there (or nothing); move it away or choose another out=...")
    strangers = sorted(p.name for p in cache.iterdir() if not is_cache_file_name(p.name))
    if strangers:
        shown = ", ".join(strangers[:3]) + (", ..." if len(strangers) > 3 else "")
        raise SynthaugError(f"report directory folder {cache} holds files synthaug eval did not write ({shown}): "
                            f"eval keeps its feature networks there, even with force=True it adds none to a "
                            f"folder of yours; choose another out=...")


def check_against_card(data: ImageData, card, what: str) -> None:
    """The data must have the generator's classes (same names, same order) and image shape."""
    if list(data.class_names) != list(card.class_names):
        if len(data.class_names) != card.num_classes:
            raise SynthaugError(f"{what} has {data.num_classes} classes ({_short(data.class_names)}), the generator "
                                f"makes {card.num_classes} ({_short(card.class_names)})")
        i = next(i for i, (a, b) in enumerate(zip(data.class_names, card.class_names)) if a != b)
        raise SynthaugError(f"{what} classes differ from the generator's: class {i} is {data.class_names[i]!r} in "
                            f"the data, {card.class_names[i]!r} in the generator's card")
    if list(data.image_shape) != list(card.image_shape):
        shape = "x".join(map(str, data.image_shape))
        raise SynthaugError(f"{what} images are {shape} (CxHxW), the generator makes "
                            f"{'x'.join(map(str, card.image_shape))}: pass resize=True to convert the "
                            f"data to the generator's size")


def check_counts(train: ImageData, test: ImageData, fractions: Sequence[float], split: dict | None) -> None:
    """Every class keeps :data:`MIN_PER_CLASS` training images at the smallest fraction, and
    appears in the test set; the error says how many images a class needs."""
    smallest = min(fractions)
    need = math.ceil(MIN_PER_CLASS / smallest - 1e-9)
    held = " after holding out a test split (pass test=... to give one)" if split else ""
    for name, count in zip(train.class_names, train.class_counts()):
        if count < need:
            frac = f"fraction {smallest:g} needs" if smallest < 1 else "the gain experiment needs"
            raise SynthaugError(f"class {name!r} has {count} training image(s){held}: {frac} at least {need} per "
                                f"class ({MIN_PER_CLASS} in each training subset)")
    for name, count in zip(test.class_names, test.class_counts()):
        if count < 1:
            raise SynthaugError(f"class {name!r} has no test images: expected at least 1 per class in the test data")


def _short(names: Sequence[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")


# --------------------------------------------------------------------------- loading


def _load(source: Any, resize: bool, card) -> ImageData:
    if resize:
        c, h, _ = card.image_shape
        return load_data(source, image_size=h, channels=c)
    return source if isinstance(source, ImageData) else load_data(source)


def load_eval_data(train: Any, test: Any, unlabeled: Any, card, resize: bool, test_fraction: float,
                   split_seed: int) -> tuple[ImageData, ImageData, torch.Tensor | None, dict | None]:
    """``(train, test, unlabeled images or None, split record or None)``, checked against the card."""
    train_data = _load(train, resize, card)
    check_against_card(train_data, card, "the training data")
    split = None
    if test is None:
        rest, part = stratified_split(train_data.labels, test_fraction, split_seed)
        split = {"test_fraction": test_fraction, "seed": split_seed, "source": train_data.name,
                 "source_fingerprint": train_data.fingerprint(), "train_size": len(rest), "test_size": len(part)}
        train_data, test_data = train_data.subset(rest), train_data.subset(part)
    else:
        test_data = _load(test, resize, card)
        check_against_card(test_data, card, "the test data")
    extra = None
    if unlabeled is not None:
        if isinstance(unlabeled, torch.Tensor):
            extra = unlabeled.float()
        else:  # the reader fit --unlabeled uses: flat folders and label-less .npz files too
            extra = load_unlabeled(unlabeled, train_data.image_shape).as_float()
        if tuple(extra.shape[1:]) != tuple(train_data.image_shape):
            raise SynthaugError(f"unlabeled images: expected [N, {', '.join(map(str, train_data.image_shape))}], "
                                f"got {list(extra.shape)}")
    return train_data, test_data, extra, split


def _resolve_sampler(sampler: Any):
    if isinstance(sampler, Sampler):
        return sampler, getattr(sampler, "path", None) or type(sampler).__name__
    if isinstance(sampler, (str, os.PathLike)):
        return load(sampler), str(sampler)
    raise SynthaugError(f"expected a Sampler, a run directory, .safetensors or .onnx path, "
                        f"got {type(sampler).__name__}")


# --------------------------------------------------------------------------- the measurements


def measure_quality(space: FeatureSpace, train: ImageData, test: ImageData, generated: torch.Tensor,
                    generated_labels: torch.Tensor, k: int, kid_subsets: int, seed: int) -> dict[str, Any]:
    """Generated samples and held-out real images, each against the real training images (a
    stratified :data:`QUALITY_MAX_REAL` of them at most: k-NN balls cost N x N distances)."""
    if len(train) > QUALITY_MAX_REAL:
        train = train.subset(stratified_split(train.labels, QUALITY_MAX_REAL / len(train), seed)[1])
    real_f, test_f, gen_f = space(train.as_float()), space(test.as_float()), space(generated)
    args = {"k": k, "kid_subsets": kid_subsets, "seed": seed}
    out: dict[str, Any] = {
        "real_set": "training images", "n_real": len(train), "k": k, "kid_subsets": kid_subsets,
        "generated": quality_metrics(real_f, gen_f, **args),
        "heldout_real": quality_metrics(real_f, test_f, **args),
        "per_class": {},
    }
    train_labels, test_labels, gen_labels = train.labels.numpy(), test.labels.numpy(), generated_labels.numpy()
    for c, name in enumerate(train.class_names):
        out["per_class"][name] = {
            "generated": quality_metrics(real_f[train_labels == c], gen_f[gen_labels == c], **args),
            "heldout_real": quality_metrics(real_f[train_labels == c], test_f[test_labels == c], **args),
        }
    return out


def _versions() -> dict[str, str]:
    import scipy  # already loaded by the metrics: only its version is read here

    out = {"synthaug": __version__, "python": platform.python_version(), "torch": torch.__version__,
           "numpy": np.__version__, "scipy": scipy.__version__, "platform": platform.platform()}
    try:
        import matplotlib
        out["matplotlib"] = matplotlib.__version__
    except ImportError:
        pass
    return out


def _describe(data: ImageData) -> dict[str, Any]:
    return {"name": data.name, "size": len(data), "fingerprint": data.fingerprint(),
            "image_shape": list(data.image_shape), "class_counts": data.class_counts()}


def _notes(card, train: ImageData, test: ImageData, split: dict | None, fractions: Sequence[float],
           quality: dict) -> list[str]:
    notes = []
    trained_on = (card.dataset or {}).get("fingerprint")
    if trained_on and trained_on == test.fingerprint():
        notes.append("the generator was fitted on the test data itself: every score here is optimistic")
    elif trained_on and split and trained_on == split["source_fingerprint"]:
        notes.append("the generator was fitted on all of the data, the held-out test split included: scores on "
                     "it are optimistic; pass test=... with images the generator has not seen")
    elif trained_on and trained_on != train.fingerprint():
        notes.append(f"the generator was fitted on other data ({card.dataset.get('name')}, {trained_on}) than the "
                     f"training data evaluated here ({train.fingerprint()})")
    if min(fractions) < 1:
        notes.append("at fractions below 1 the generator has seen more real data than the classifier: gains "
                     "there are optimistic unless the generator was fitted on that fraction alone")
    if any(v["generated"]["fid"] is None for v in quality["per_class"].values()):
        notes.append("per-class FID is left out where a class has no more samples than feature dimensions "
                     "(its covariance would be singular); KID is unbiased at any size")
    return notes


def _recommendation(gain: dict[str, Any], compared: dict[str, Any]) -> dict[str, Any]:
    """The dose advice; where baselines were compared, their verdict leads (it names the best of
    every arm, also when that is not synthaug's)."""
    advice = recommend(gain)
    if "recommendation" not in compared:
        return {**advice, "method": None}
    verdict = compared["recommendation"]
    return {**advice, "dose_text": advice["text"], "text": verdict["text"], "method": verdict["best"],
            "dose": verdict["dose"], "gain": verdict["gain"], "helps": verdict["synthetic_helps"]}


# --------------------------------------------------------------------------- the entry point


def evaluate(sampler: Any, train: Any, test: Any = None, *, unlabeled: Any = None,
             seeds: int | Sequence[int] = 5, doses: Sequence[float] = DEFAULT_DOSES,
             fractions: Sequence[float] = (1.0,), classifier: str | Callable = "small_cnn",
             classical_augment: bool = True, feature_extractor: Any = None, out: str | os.PathLike | None = None,
             force: bool = False, resize: bool = False, steps: int = DEFAULT_STEPS,
             reference_steps: int = DEFAULT_REFERENCE_STEPS, batch_size: int = 64,
             test_fraction: float = DEFAULT_TEST_FRACTION, seed: int = 0, k: int = 3, kid_subsets: int = 100,
             progress: bool = True, baselines: bool = True, fixmatch_mu: int = FIXMATCH_MU) -> EvalReport:
    """Measure whether ``sampler``'s samples help a classifier on ``train``, tested on ``test``.

    Args:
        sampler: a :class:`~synthaug.Sampler`, or a run directory / ``.safetensors`` / ``.onnx`` path.
        train, test: anything :func:`~synthaug.load_data` reads (``digits:train``, a folder, an
            ``.npz``, a Dataset, an ImageData). Without ``test``, a stratified ``test_fraction``
            of ``train`` (seed 0) is held out, and the split is recorded in the report.
        unlabeled: more real images the generator may have seen (a load_data source, labels
            ignored, or a float tensor in [0, 1]): memorisation checks against them too.
        seeds: how many paired seeds (``0..seeds-1``), or the seeds themselves; at least 2.
        doses: shares of each training batch replaced by synthetic samples; 0 (the baseline) is
            always included.
        fractions: shares of each class of ``train`` to run the gain experiment at.
        classifier: ``"small_cnn"``, ``"resnet"``, ``"module:function"`` or a callable
            ``(channels, num_classes) -> nn.Module`` (taking images in [0, 1]); used for CAS and gain.
        classical_augment: random affine (rotation, scale, shift) on every batch, in every arm.
        feature_extractor: ``None`` (a SmallCNN trained on ``train``, cached in ``out``), a torch
            module or callable, an ``.onnx`` path, or ``"module:attribute"``.
        out: report directory (``report.json``, ``report.md``, ``report.html``); ``None`` writes
            nothing. A non-empty directory needs ``force``.
        resize: convert the data to the generator's image shape instead of refusing it.
        steps: optimiser steps of each gain arm; reference_steps: of the feature network and
            of both CAS arms.
        progress: a progress bar on stderr (nothing goes to stdout).
        baselines: also run the practitioner's baselines that apply (see
            :mod:`synthaug.evaluation.methods`: resampling, logit adjustment and ``balance=True``
            when the largest class has at least twice the smallest's images; pseudo-labels and
            FixMatch with ``unlabeled``), alone and with synthetic samples at each dose, at
            fraction 1; the recommendation then names the best of every arm.
        fixmatch_mu: FixMatch's unlabelled batch, in multiples of the labelled batch.

    Returns:
        An :class:`EvalReport`.
    """
    started = time.perf_counter()
    seed_list, dose_list, fraction_list = check_settings(seeds, doses, fractions, steps, reference_steps)
    out_dir = check_report_dir(out, force, [train, test, unlabeled]) if out is not None else None
    factory, classifier_name = classifier_factory(classifier)
    sampler, source = _resolve_sampler(sampler)
    card = sampler.card
    train_data, test_data, extra, split = load_eval_data(train, test, unlabeled, card, resize, test_fraction, seed)
    check_counts(train_data, test_data, fraction_list, split)
    check_classifier(factory, classifier_name, train_data.image_shape[0], train_data.num_classes)
    space = None
    if feature_extractor is not None:
        space = user_space(feature_extractor, train_data.image_shape, train_data.as_float()[:2])

    default_space = space is None
    reuse_reference = default_space and classifier_name == "small_cnn"
    cached = out_dir is not None and cache_path(out_dir, train_data, reference_steps, seed).is_file()
    methods, skipped = applicable_baselines(train_data, extra) if baselines else ([], {})
    if methods and 1.0 not in fraction_list:
        skipped = {m.name: "the baselines are measured on all the training data (fraction 1), which fractions "
                           "left out" for m in methods}
        methods = []
    imbalanced = bool(methods) and any(m.sampling != "uniform" or m.loss != "ce" for m in methods)
    synthetic_doses = len(dose_list) - 1
    method_arms = (sum((1 + synthetic_doses) * (2 if m.unlabeled == "pseudo_label" else 1) for m in methods)
                   + imbalanced) * len(seed_list)
    # Progress counts optimiser steps: feature network (unless cached), CAS arm(s), gain arms.
    total = (reference_steps * ((default_space and not cached) + 1 + (not reuse_reference))
             + len(fraction_list) * len(seed_list) * len(dose_list) * steps + method_arms * steps)
    timings: dict[str, float] = {}
    with progress_bar(total, "eval", enabled=progress) as bar:
        def tick(images, labels):
            bar.update(1)
            return images, labels

        def stage(name: str) -> None:
            bar.set_postfix_str(name, refresh=True)
            timings[name] = time.perf_counter()

        stage("features")
        reference = None
        if default_space:
            model, info = reference_classifier(train_data, reference_steps, seed, out_dir, batch_hook=tick)
            reference = model if reuse_reference else None
            space = small_cnn_space(model, info)

        stage("quality")
        generated_labels = test_data.labels.clone()
        generated = generate_images(sampler, generated_labels, seed)
        quality = measure_quality(space, train_data, test_data, generated, generated_labels, k, kid_subsets, seed)

        stage("memorisation")
        train_images = train_data.as_float() if extra is None else torch.cat([train_data.as_float(), extra])
        memo = memorisation(generated, generated_labels, train_images, test_data.as_float(), train_data.class_names)

        stage("cas")
        cas = classification_accuracy_score(sampler, train_data, test_data, steps=reference_steps, seed=seed,
                                            reference=reference, model_factory=factory, tick=tick)

        stage("gain")
        real_runs: dict[float, list[dict[str, Any]]] = {}
        gain = downstream_gain(sampler, train_data, test_data, seeds=seed_list, doses=dose_list,
                               fractions=fraction_list, steps=steps, batch_size=batch_size,
                               classical_augment=classical_augment, model_factory=factory, tick=tick,
                               collect=real_runs)
        compared = {"skipped": skipped, "imbalance_threshold": IMBALANCE_RATIO}
        if methods:
            stage("baselines")
            compared = compare_methods(sampler, train_data, test_data, extra, seeds=seed_list, doses=dose_list,
                                       steps=steps, batch_size=batch_size, classical_augment=classical_augment,
                                       model_factory=factory, real_runs=real_runs, tick=tick,
                                       fixmatch_mu=fixmatch_mu)
        stage("done")
    names = list(timings)
    stage_seconds = {a: round(timings[b] - timings[a], 2) for a, b in zip(names, names[1:])}

    results = {
        "synthaug_eval_format": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": _versions(),
        "generator": {"source": source, "family": card.family, "image_shape": list(card.image_shape),
                      "class_names": list(card.class_names), "dataset": card.dataset, "training": card.training},
        "data": {"train": _describe(train_data), "test": _describe(test_data), "split": split,
                 "unlabeled": None if extra is None else {"size": len(extra)}, "resized": bool(resize)},
        "settings": {"seeds": seed_list, "doses": dose_list, "fractions": fraction_list, "classifier": classifier_name,
                     "classical_augment": classical_augment, "steps": steps, "reference_steps": reference_steps,
                     "batch_size": batch_size, "seed": seed, "k": k, "kid_subsets": kid_subsets,
                     "threads": torch.get_num_threads()},
        "feature_space": space.to_dict(),
        "quality": quality,
        "memorisation": memo,
        "cas": cas,
        "gain": gain,
        "methods": compared,
        "recommendation": _recommendation(gain, compared),
        "notes": _notes(card, train_data, test_data, split, fraction_list, quality),
        "stage_seconds": stage_seconds,
        "seconds": round(time.perf_counter() - started, 2),
    }
    report = EvalReport(json_safe(results), out_dir)
    if out_dir is not None:
        report.files = write_report(out_dir, report.results, {
            "train": train_data, "generated": generated, "generated_labels": generated_labels,
            "train_images": train_images})
    return report


__all__ = ["evaluate", "EvalReport", "measure_quality", "check_settings", "check_report_dir", "check_against_card",
           "check_counts", "load_eval_data", "QUALITY_MAX_REAL", "MIN_PER_CLASS"]
