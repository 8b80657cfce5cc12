"""``fit``: check what was asked, open the run directory, load the data, then hand over to the
training loop (:mod:`synthaug.train.loop`); with checkpoints, resume, torchrun and the
data-dependent defaults (:func:`default_steps`, ``GeneratorTrainer.size_defaults``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import resource
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..data import ImageData, load_data
from ..data.unlabeled import UnlabeledImages, check_unlabeled_apart, load_unlabeled
from ..errors import SynthaugError
from ..messages import arg, python_value
from ..layout import CHECKPOINT_FILE, FEATURES_FILE
from ..models import get_family, list_models
from ..run import Run
from ..seeding import SEED_SCHEME
from .callbacks import (Callback, DivergenceGuard, EvaluationSchedule, ProgressBar, QualityEvaluation, SampleGrids,
                        TimeEstimate)
from .checkpoint import Checkpoints
from .distributed import Processes, join
from .loop import CHECKPOINT_FORMAT, FitSettings, TrainingLoop
from .options import KEEP_CHOICES, FitOptions
from .pseudo_labels import UNSET
from .rundir import RunDirectory, check_data_outside_run, resolve_run_path
from .seeds import SCHEMES
from .tensorboard import TensorBoardLogger

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_MODEL", "DEFAULT_SEED", "DEFAULT_STEPS", "SHORT_FIT_BELOW",
           "SHORT_FIT_STEPS", "default_steps", "fit", "peak_memory_mb", "resolve_device"]

DEFAULT_STEPS = 3000
#: From 32x32 up, fewer default steps for datasets smaller than this (see default_steps).
SHORT_FIT_BELOW = 2000
SHORT_FIT_STEPS = 1500
DEFAULT_MODEL = "dcgan"
DEFAULT_BATCH_SIZE = 64
DEFAULT_SEED = 0

log = logging.getLogger("synthaug")


def fit(data: Any, out: str | os.PathLike, model: str | None = None, *, config: dict[str, Any] | None = None,
        steps: int | None = None, epochs: int | None = None, batch_size: int | None = None,
        seed: int | None = None, image_size: int | None = None, channels: int | None = None,
        skip_bad_files: bool = False, resume: bool = False, force: bool = False, sample_every: int = 500,
        checkpoint_every: int = 500, holdout: float | None = None, progress: bool = True,
        device: str | None = None, eval_every: int | None = None, keep: str | None = None,
        unlabeled: Any = None, pseudo_labels: float | str | None = UNSET, precision: str | None = None,
        on_divergence: str = "restart", class_balance: float | None = None, log: str | None = None,
        callbacks: Sequence[Callback] | None = None) -> Run:
    """Fit a class-conditional generator on ``data`` and write a run directory to ``out``.

    Args:
        data: ``"digits"`` (or ``"digits:train"``/``"digits:test"``), an image folder, an
            ``.npz`` path, or a map-style torch Dataset of ``(image, label)``.
        out: the run directory. It must not exist (or be empty) unless ``resume`` or ``force``;
            ``force`` replaces a directory that holds only what ``fit`` writes, and refuses any
            other (see :mod:`synthaug.train.rundir`). One process at a time may write it.
        model: a registered family (see :func:`synthaug.list_models`); default ``"dcgan"``.
        config: overrides of the family's hyper-parameters.
        steps / epochs: training length (one of them; default: :func:`default_steps`, 3000 steps up
            to 16x16).
        batch_size / seed: default 64 and 0.
        resume: continue the run in ``out`` from its last checkpoint; ``steps``/``epochs`` may
            extend it. ``model``, ``config``, ``batch_size``, ``seed``, ``image_size``,
            ``channels`` and ``holdout`` come from the checkpoint: giving a different one is an
            error.
        holdout: fraction of each class kept out of training for the family's held-out metrics
            (default: the family's own, e.g. 0 for GANs).
        eval_every: every ``eval_every`` steps (and at the last), measure FID, KID, precision and
            recall of a fixed set of generated images against the training images, in the
            feature space of a SmallCNN trained once on them (cached in ``out``); logged in
            ``log.csv`` and the card's ``metrics``. Changes nothing about the trained weights.
        keep: ``"last"`` (default): the run's generator is the last step's; ``"best"`` (needs
            ``eval_every``): the one of the evaluation step with the lowest FID, its step in the
            card's ``training["kept_step"]``. The checkpoint always holds the last step, so
            ``resume`` continues training. (Selection by CAS is not offered: it needs a
            classifier trained at every evaluation.)
        unlabeled: more real images without labels (an image folder, flat or nested; an ``.npz``
            with ``images``; a Dataset of images or of ``(image, label)`` pairs whose labels are
            ignored), converted to the labelled set's channels and size. Every family learns from
            them (see its ``training_step``); the card records how many. It may not overlap the
            labelled folder, and ``resume`` needs the same images.
        pseudo_labels: with ``unlabeled``, first train a small classifier on the labelled images
            and give every unlabelled image it predicts with probability ``>= pseudo_labels`` that
            class (default ``"default"``: 0.9; ``None`` or 0: off; a value given without
            ``unlabeled``, or one that differs from a resumed run's, is refused). The generator's
            class term then learns from them too; the card's ``training["pseudo_labels"]`` says how many got which class and
            how confidently (see :mod:`synthaug.train.pseudo_labels`).
        precision: ``"fp32"`` (default) or ``"bf16"``: bfloat16 autocast of the forward passes
            (faster on GPUs with bf16 units; weights and optimizer state stay float32).
        class_balance: how evenly the batches cover the classes: 0 (default) draws images in the
            data's own class mix, 1 gives every class the same share of the batches (images of a
            rare class repeat more often), values between go part of the way (image of class c
            drawn with probability ~ ``n_c ** -class_balance``). The generator's labels follow
            the batch's, so this sets how many class-term updates a rare class gets.
        on_divergence: on a non-finite loss, ``"restart"`` (default) goes back to the last
            checkpoint (or the start) with every learning rate halved, says so on stderr and in
            the card's ``training["restarts"]``, and gives up after 3 restarts; ``"stop"`` stops
            at once. Either way the error names the step and the loss.
        log: ``"tensorboard"`` also writes the losses, the quality metrics (``eval_every``) and the
            sample grids as TensorBoard events in ``out/tensorboard`` (the ``tensorboard`` extra).
        callbacks: more :class:`synthaug.train.callbacks.Callback` objects, called after fit's own
            (progress, time estimate, quality metrics, grids, checkpoints, divergence guard) at
            every step.

    Under ``torchrun --nproc_per_node=N`` (see :mod:`synthaug.train.distributed`) every process
    calls ``fit`` with the same arguments; ``batch_size`` is the global batch, split evenly over the
    processes; rank 0 writes the run, which records the world size, and ``resume`` needs the same.

    Example:
        >>> import tempfile
        >>> run = fit("digits", out=tempfile.mkdtemp() + "/run", steps=2, progress=False)
        >>> run.card.training["steps"], run.sampler().sample([0, 1], seed=0).shape
        (2, torch.Size([2, 1, 8, 8]))
    """
    given = dict(locals())
    data, out = given.pop("data"), given.pop("out")
    options = FitOptions(**{**given, "callbacks": tuple(callbacks or ())})
    family = get_family(options.model or DEFAULT_MODEL)
    if not resume:  # a resumed run's config is checked against its checkpoint's family instead
        family.config(config)  # reject bad hyper-parameters before touching the disk or the data
    procs, device = join(resolve_device(device))
    try:
        run = _fit(procs, family, device, data, out, options)
    except BaseException:
        # The error that stopped this rank is the one to report, not a collective failing after it
        # (another rank may already be gone).
        with contextlib.suppress(Exception):
            procs.leave()
        raise
    procs.leave()
    return run


def _fit(procs: Processes, family, device: torch.device, data: Any, out: str | os.PathLike,
         options: FitOptions) -> Run:
    """fit's work once the options are checked and this process knows its rank and device."""
    o = options
    if procs.distributed and o.batch_size is not None and o.batch_size % procs.world_size:
        raise SynthaugError(f"{arg('batch_size', o.batch_size)} does not split evenly over {procs.world_size} "
                            f"processes: "
                            f"expected a multiple of {procs.world_size}")
    path = resolve_run_path(out)
    check_data_outside_run(path, [data, o.unlabeled])
    if o.unlabeled is not None:
        check_unlabeled_apart(data, o.unlabeled)
    quiet = _FollowerLogs() if not procs.is_main else contextlib.nullcontext()
    with quiet, _run_directory(procs, path, o.resume, o.force) as run_dir:
        checkpoint = _read_checkpoint(path / CHECKPOINT_FILE) if run_dir.resuming else None
        settings: FitSettings | None = None
        if checkpoint is not None:
            settings = _settings_from_checkpoint(checkpoint, path / CHECKPOINT_FILE)
            _check_resume_options(settings, o.given_for_resume(), o.config, path)
            if settings.world_size != procs.world_size:
                raise SynthaugError(_world_size_clash(out, settings.world_size, procs.world_size))
            family = get_family(settings.model)
        dataset = load_data(data, image_size=settings.image_size if settings else o.image_size,
                            channels=settings.channels if settings else o.channels,
                            skip_bad_files=o.skip_bad_files, supported_sizes=family.generator_cls.image_sizes)
        if settings is None:
            settings = _new_settings(family, dataset, o, procs)
        elif settings.data_fingerprint != dataset.fingerprint():
            raise SynthaugError(f"cannot resume {out}: expected the data it was fitted on "
                                f"({settings.data_fingerprint}), got different data ({dataset.fingerprint()})")
        extra = _load_unlabeled(o.unlabeled, family, dataset, o.skip_bad_files)
        unlabeled_fingerprint = extra.fingerprint() if extra is not None else None
        if checkpoint is None:
            settings.unlabeled_fingerprint = unlabeled_fingerprint
            settings.pseudo_label_threshold = o.pseudo_label_threshold if extra is not None else None
        elif settings.unlabeled_fingerprint != unlabeled_fingerprint:
            raise SynthaugError(f"cannot resume {out}: expected the unlabelled data it was fitted with "
                                f"({settings.unlabeled_fingerprint or 'none'}), got {unlabeled_fingerprint or 'none'}")

        loop = TrainingLoop(dataset, settings, device, o.progress and procs.is_main, extra, procs)
        quality: Callback | None = None
        if settings.eval_every:  # rank 0 measures; the others read their logs at the same steps
            quality = QualityEvaluation(loop, settings.eval_every, path / FEATURES_FILE if run_dir.resuming else None) \
                if procs.is_main else EvaluationSchedule(settings.eval_every)
        total = _total_steps(o.steps, o.epochs, loop.steps_per_epoch,
                             default=default_steps(settings.image_size, len(dataset)))
        if checkpoint is not None:
            loop.restore(checkpoint, path / CHECKPOINT_FILE)
            if o.steps is None and o.epochs is None:
                total = checkpoint["total_steps"]  # finish what was asked for originally
        # Only now, with data, model and device known to be good, may an old run be replaced.
        loop.out = procs.outcome(run_dir.open)
        callbacks = [ProgressBar(o.progress and procs.is_main), TimeEstimate(), *([quality] if quality else []),
                     SampleGrids(loop, o.sample_every), Checkpoints(o.checkpoint_every, run_dir.checkpoint_written),
                     DivergenceGuard(o.on_divergence)]
        if o.log == "tensorboard" and procs.is_main:
            callbacks.append(TensorBoardLogger())
        loop.run(total, [*callbacks, *o.callbacks])
    return Run(out)


def _new_settings(family, dataset: ImageData, o: FitOptions, procs: Processes) -> FitSettings:
    """A new run's settings: the options given, the defaults for the rest."""
    holdout = family.trainer_cls.default_holdout if o.holdout is None else o.holdout
    auto = _size_defaults(family, dataset, dict(o.config or {}))
    if auto:
        log.info("fit: %s images: %s by default (config=... to choose)",
                 "x".join(map(str, dataset.image_shape[1:])), ", ".join(f"{k} {v}" for k, v in auto.items()))
    settings = FitSettings(o.model or DEFAULT_MODEL, {**auto, **(o.config or {})},
                           DEFAULT_BATCH_SIZE if o.batch_size is None else o.batch_size,
                           DEFAULT_SEED if o.seed is None else o.seed, dataset.image_shape[1],
                           dataset.image_shape[0], dataset.fingerprint(), holdout, o.eval_every or 0,
                           o.keep or "last", world_size=procs.world_size, precision=o.precision or "fp32",
                           class_balance=float(o.class_balance or 0.0), seed_scheme=SEED_SCHEME)
    if settings.batch_size % procs.world_size:
        raise SynthaugError(f"{arg('batch_size', settings.batch_size)} does not split evenly over "
                            f"{procs.world_size} processes: expected a multiple of {procs.world_size}")
    return settings


def _world_size_clash(out, fitted: int, now: int) -> str:
    how = (f"torchrun --nproc_per_node={fitted} -m synthaug fit ... --resume" if fitted > 1
           else "synthaug fit ... --resume without torchrun")
    return (f"cannot resume {out}: it was fitted on {fitted} process(es), got {now}: resume it with {how}, "
            f"or start again with force=True")


class _FollowerLogs:
    """On ranks other than 0: fit's own messages (estimate, pseudo-labels, warnings) are rank 0's
    to say; only errors get through."""

    def __enter__(self) -> None:
        self._level = log.level
        log.setLevel(logging.ERROR)

    def __exit__(self, *exc) -> None:
        log.setLevel(self._level)


class _FollowerRunDirectory:
    """What ranks other than 0 see of the run directory: they read it, rank 0 writes it."""

    def __init__(self, out: Path, resuming: bool) -> None:
        self.out, self.resuming = out, resuming

    def open(self) -> Path:
        return self.out

    def checkpoint_written(self) -> Path:
        return self.out


@contextlib.contextmanager
def _run_directory(procs: Processes, path: Path, resume: bool, force: bool):
    """Rank 0 holds the :class:`RunDirectory` (its lock, its checks); the other ranks learn its
    outcome, so a refusal stops every rank with the same message."""
    if not procs.distributed:
        with RunDirectory(path, resume, force) as run_dir:
            yield run_dir
        return
    with contextlib.ExitStack() as stack:
        entered: list[RunDirectory] = []

        def enter() -> bool:
            entered.append(stack.enter_context(RunDirectory(path, resume, force)))
            return entered[0].resuming

        resuming = procs.outcome(enter)
        yield entered[0] if procs.is_main else _FollowerRunDirectory(path, resuming)


def default_steps(image_size: int, dataset_size: int) -> int:
    """Training steps ``fit`` takes unless told: 3000 up to 16x16; from 32x32, 1500 for fewer than
    2000 images (a ~1000-image 32x32 folder fits in under 10 minutes on 2 CPU cores, at a CAS
    measured in benchmarks/results/default_fit.md) and 3000 for more.

    Example:
        >>> default_steps(8, 1347), default_steps(32, 1000), default_steps(32, 50000)
        (3000, 1500, 3000)
    """
    if image_size <= 16 or dataset_size >= SHORT_FIT_BELOW:
        return DEFAULT_STEPS
    return SHORT_FIT_STEPS


def _size_defaults(family, dataset: ImageData, config: dict[str, Any]) -> dict[str, Any]:
    """The family's data-dependent defaults the user did not set, where they differ from the
    config's own defaults (so 8x8 runs record what they always did)."""
    fixed = dataclasses.asdict(family.config({}))
    chosen = family.trainer_cls.size_defaults(dataset.image_shape, len(dataset))
    return {k: v for k, v in chosen.items() if k not in config and fixed.get(k) != v}


def _load_unlabeled(source: Any, family, dataset: ImageData, skip_bad_files: bool) -> UnlabeledImages | None:
    if source is None:
        return None
    if not family.trainer_cls.uses_unlabeled:
        able = [name for name in list_models() if get_family(name).trainer_cls.uses_unlabeled]
        raise SynthaugError(f"{family.name} does not learn from unlabelled images: expected unlabeled=None, or a "
                            f"family that does ({', '.join(able)})")
    try:
        extra = load_unlabeled(source, dataset.image_shape, skip_bad_files)
    except SynthaugError as err:  # say which data was wrong: the labelled set's errors read alike
        text = str(err)
        raise SynthaugError(text if text.startswith("unlabel") else f"unlabelled images: {text}") from None
    if extra.converted:
        log.warning("converted %d of %d unlabelled image(s) to the labelled set's %s", extra.converted, len(extra),
                    "x".join(map(str, dataset.image_shape)))
    return extra


def resolve_device(device: str | None) -> torch.device:
    """The torch device to fit on: the one named, else CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise SynthaugError(f"device: expected cpu or cuda[:N], got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SynthaugError(f"{arg('device', device)}: CUDA is not available on this machine (expected cpu)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise SynthaugError(f"{arg('device', device)}: expected a CUDA index below {torch.cuda.device_count()}")
    return dev


def _total_steps(steps: int | None, epochs: int | None, steps_per_epoch: int, default: int) -> int:
    if steps is not None:
        return steps
    if epochs is not None:
        return epochs * steps_per_epoch
    return default


_CHECKPOINT_KEYS = ("step", "total_steps", "elapsed", "settings", "trainer", "optimizers", "rng", "log")


def _read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise SynthaugError(f"{path}: checkpoint is unreadable ({type(err).__name__}); "
                            f"start again with force=True") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise SynthaugError(f"{path}: expected a synthaug checkpoint of format {CHECKPOINT_FORMAT}")
    missing = [k for k in _CHECKPOINT_KEYS if k not in state]
    if missing:
        raise SynthaugError(f"{path}: checkpoint lacks {', '.join(missing)}: expected a complete synthaug "
                            f"checkpoint; start again with force=True")
    return state


_SETTING_TYPES = {"model": str, "config": dict, "batch_size": int, "seed": int, "image_size": int,
                  "channels": int, "data_fingerprint": str, "holdout": (int, float), "eval_every": int, "keep": str,
                  "pseudo_label_threshold": (float, type(None)), "world_size": int, "precision": str,
                  "class_balance": (int, float), "seed_scheme": int}


def _settings_from_checkpoint(state: dict[str, Any], path: Path) -> FitSettings:
    """The checkpoint's :class:`FitSettings`, every problem named in one line."""
    raw = state["settings"]
    if not isinstance(raw, dict):
        raise SynthaugError(f"{path}: expected the checkpoint's settings as a dict, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(FitSettings)}
    problems = [f"unexpected key {k!r}" for k in sorted(map(str, raw.keys() - fields.keys()))]
    problems += [f"missing key {k!r}" for k, f in fields.items()
                 if k not in raw and f.default is dataclasses.MISSING]
    problems += [f"{k} is {raw[k]!r}" for k, kind in _SETTING_TYPES.items()
                 if k in raw and (isinstance(raw[k], bool) or not isinstance(raw[k], kind))]
    if not problems and raw.get("eval_every", 0) < 0:
        problems.append(f"eval_every is {raw['eval_every']!r}")
    if not problems and raw.get("keep", "last") not in KEEP_CHOICES:
        problems.append(f"keep is {raw['keep']!r}")
    if not problems and raw.get("seed_scheme", 1) not in SCHEMES:
        problems.append(f"seed_scheme is {raw['seed_scheme']!r}")
    if problems:
        raise SynthaugError(f"{path}: checkpoint settings do not match this synthaug ({'; '.join(problems)}): "
                            f"expected a checkpoint written by synthaug {__version__}; start again with force=True")
    return FitSettings(**raw)


def _check_resume_options(settings: FitSettings, given: dict[str, Any], config: dict[str, Any] | None,
                          out: Path) -> None:
    """Refuse options that contradict the checkpoint: a resumed run keeps what it started with."""
    stored = {"model": settings.model, "batch_size": settings.batch_size, "seed": settings.seed,
              "image_size": settings.image_size, "channels": settings.channels,
              "holdout": settings.holdout, "eval_every": settings.eval_every or None, "keep": settings.keep,
              "precision": settings.precision, "pseudo_labels": settings.pseudo_label_threshold,
              "class_balance": float(settings.class_balance)}
    clashes = [f"{arg(name, value)} (checkpoint: {'off' if stored[name] is None else stored[name]})"
               for name, value in given.items() if value != stored[name]]
    if config:
        family = get_family(settings.model)
        asked = dataclasses.asdict(family.config(config))
        kept = dataclasses.asdict(family.config(settings.config))
        clashes += [f"config[{k!r}]={python_value(config[k])} (checkpoint: {kept[k]})"
                    for k in config if asked[k] != kept[k]]
    if clashes:
        raise SynthaugError(f"cannot resume {out} with options that differ from its checkpoint: "
                            f"{', '.join(clashes)}; leave them out to resume, or start again with force=True")


def peak_memory_mb() -> float:
    """Peak resident memory of this process, in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024
