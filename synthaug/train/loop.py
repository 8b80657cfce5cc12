"""The training loop behind ``fit``: the same for every family.

A family's trainer yields its losses phase by phase; the loop steps them
(:mod:`synthaug.models.step`), on one process or several under torchrun
(:mod:`synthaug.train.distributed`), and reads the logs back every ``LOG_SYNC_EVERY`` steps or
when a callback is due. Everything else it does after a step (progress, time estimate, quality
metrics, grids, checkpoints, the divergence guard, loggers) is a callback
(:mod:`synthaug.train.callbacks`). Every random draw is derived from the seed
(:mod:`synthaug.train.seeds`): the model initialisation, the batch order of each epoch (a pure
function of seed and epoch) and the training noise (one generator per rank whose state is
checkpointed), so a resumed run is bitwise equal to an uninterrupted one on CPU.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import ImageData
from ..data.images import held_out_counts, stratified_split
from ..data.unlabeled import UnlabeledImages
from ..errors import SynthaugError, first_line
from ..models import GeneratorTrainer, create_model
from ..models.step import GradientSync, StepRunner, stack_logs
from .batches import ClassBalancedBatches, EpochBatches
from .callbacks import Callback, KeptGenerator
from .distributed import Processes
from .pseudo_labels import pseudo_label
from .seeds import RunSeeds
from ..seeding import SEED_SCHEME

__all__ = ["CHECKPOINT_FORMAT", "LOG_SYNC_EVERY", "FitSettings", "TrainingLoop", "holdout_split"]

CHECKPOINT_FORMAT = 1
#: Steps between reads of the logs from the device (one host sync for all of them); the logs are
#: also read before every grid, evaluation and checkpoint, so none of those sees an unchecked step.
LOG_SYNC_EVERY = 25

log = logging.getLogger("synthaug")


@dataclass
class FitSettings:
    """What a run was started with; stored in the checkpoint so ``--resume`` needs none of it."""

    model: str
    config: dict[str, Any]
    batch_size: int
    seed: int
    image_size: int
    channels: int
    data_fingerprint: str
    holdout: float = 0.0
    eval_every: int = 0  # 0: no quality metrics during training
    keep: str = "last"
    unlabeled_fingerprint: str | None = None  # fit --unlabeled
    # fit --pseudo-labels: the confidence an unlabelled image's predicted class needs to join the
    # labelled set; None (old checkpoints, or off): every unlabelled image stays unlabelled.
    pseudo_label_threshold: float | None = None
    # torchrun: the number of processes the run trains on (each takes batch_size / world_size).
    world_size: int = 1
    # fp32, or bf16 autocast of the forward passes (synthaug.models.step.PRECISIONS).
    precision: str = "fp32"
    # fit class_balance: 0 draws batches in the data's class mix, 1 every class alike
    # (ClassBalancedBatches); the generator's fake labels follow the real batch's.
    class_balance: float = 0.0
    # How the run's random streams derive from its seed (synthaug.train.seeds); checkpoints of
    # earlier releases carry none and resume with scheme 1.
    seed_scheme: int = 1


class TrainingLoop:
    """One fit's training state and the step order over it; the rest is callbacks.

    Example (what ``fit`` does, without a run directory's guarantees):
        >>> import tempfile
        >>> from pathlib import Path
        >>> from synthaug.data import load_data
        >>> data = load_data("digits")
        >>> settings = FitSettings("dcgan", {"g_width": 8, "d_width": 8}, 32, 0, 8, 1, data.fingerprint())
        >>> loop = TrainingLoop(data, settings, torch.device("cpu"))
        >>> loop.out = Path(tempfile.mkdtemp())
        >>> loop.run(3, [])  # no callbacks: no grids, no checkpoints
        >>> loop.step, loop.trainer.training
        (3, True)
    """

    def __init__(self, data: ImageData, settings: FitSettings, device: torch.device, progress: bool = False,
                 unlabeled: UnlabeledImages | None = None, procs: Processes = Processes()) -> None:
        self.data, self.settings, self.progress, self.procs, self.device = data, settings, progress, procs, device
        self.seeds = RunSeeds(settings.seed, settings.seed_scheme)
        self.runner = StepRunner(settings.precision, GradientSync(procs.world_size) if procs.distributed else None)
        self.out: Path | None = None  # set once the run directory is open
        # Initialise the networks from the seed without disturbing the caller's global RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            self.trainer: GeneratorTrainer = create_model(settings.model, settings.config,
                                                          data.image_shape, data.num_classes)
        self.trainer.to(self.device)
        train_idx, test_idx = holdout_split(data.labels, settings.holdout, settings.seed, settings.seed_scheme)
        self.holdout_per_class = held_out_counts(data.labels, test_idx, data.num_classes)
        if settings.holdout > 0:
            kept_whole = [repr(name) for name, held in zip(data.class_names, self.holdout_per_class) if held == 0]
            if kept_whole:  # a class's last image is never held out: say which classes go unmeasured
                log.warning("held out %d image(s) for held-out metrics, none of class(es) %s (too few images)",
                            len(test_idx), ", ".join(kept_whole))
        self.train_idx = train_idx
        self.images = data.as_float()[train_idx].to(self.device)
        self.labels = data.labels[train_idx].to(self.device)
        self.pseudo: dict[str, Any] | None = None
        # The card counts every unlabelled image given, pseudo-labelled ones included.
        self.num_unlabeled = len(unlabeled) if unlabeled is not None else 0
        if unlabeled is not None and settings.pseudo_label_threshold:
            unlabeled = self._add_pseudo_labelled(unlabeled)
        self.test_images = data.as_float()[test_idx].to(self.device)
        self.test_labels = data.labels[test_idx].to(self.device)
        n = len(self.labels)
        self.num_train = n
        self.trainer.prepare(n)
        self.batch_size = min(settings.batch_size, n)
        epoch_seed = lambda epoch: self.seeds.epoch("batches", epoch)  # noqa: E731
        self.batches = ClassBalancedBatches(self.labels.cpu(), self.batch_size, epoch_seed, settings.class_balance) \
            if settings.class_balance else EpochBatches(n, self.batch_size, epoch_seed)
        self.steps_per_epoch = self.batches.steps_per_epoch
        # Unlabelled images: one batch of the labelled batch's size per step, from their own stream.
        self.unlabeled_images = unlabeled.as_float().to(self.device) if unlabeled is not None else None
        self.unlabeled_batches = None if unlabeled is None else EpochBatches(
            len(unlabeled), self.batch_size, lambda epoch: self.seeds.epoch("unlabeled_batches", epoch))
        # Each rank its own noise stream; rank 0's is a single process's.
        self.rng = torch.Generator().manual_seed(self.seeds("noise", procs.rank))
        # The state a checkpoint holds (besides the networks): see state().
        self.step = 0
        self.elapsed = 0.0
        self.log_rows: list[dict[str, Any]] = []
        self.metrics: dict[str, float] = {}  # the held-out metrics of the last checkpoint
        self.quality: dict[str, float | None] = {}  # the latest evaluation's (QualityEvaluation)
        self.kept: KeptGenerator | None = None  # keep="best": the generator of the lowest FID
        self.restarts: list[dict[str, Any]] = []  # on_divergence="restart": where and why it went back
        self.pending: list[dict[str, Any]] = []  # steps whose logs are not yet read from the device
        self.features_to_write = None  # a feature network not yet on disk: written with the next checkpoint
        self.callbacks: list[Callback] = []

    def _add_pseudo_labelled(self, pool: UnlabeledImages) -> UnlabeledImages | None:
        """Move the pool's confidently classified images into the labelled training set; return
        the rest (``None`` when none is left)."""
        found = pseudo_label(self.data.subset(self.train_idx), pool, self.settings.pseudo_label_threshold,
                             self.seeds("pseudo_labels"))
        self.pseudo = found.summary(list(self.data.class_names), len(pool))
        log.info("pseudo-labelled %d of %d unlabelled image(s) at confidence >= %g: %s", len(found.indices),
                 len(pool), found.threshold, ", ".join(f"{k} {v}" for k, v in self.pseudo["per_class"].items()))
        images = pool.as_float()[found.indices].to(self.device)
        self.images = torch.cat([self.images, images])
        self.labels = torch.cat([self.labels, found.labels.to(self.device, self.labels.dtype)])
        rest = torch.ones(len(pool), dtype=torch.bool)
        rest[found.indices] = False
        if not rest.any():
            return None
        return UnlabeledImages(pool.images[rest], pool.name, pool.pixel_max, pool.converted)

    def _my_share(self, indices: torch.Tensor) -> torch.Tensor:
        """This rank's slice of a global batch (all of it on one process)."""
        if not self.procs.distributed:
            return indices
        return indices.tensor_split(self.procs.world_size)[self.procs.rank]

    def _unlabeled_batch(self, step: int) -> dict[str, torch.Tensor]:
        """``{"unlabeled": batch}`` for the family's step, or nothing (the labelled-only step)."""
        if self.unlabeled_batches is None:
            return {}
        return {"unlabeled": self.unlabeled_images[self._my_share(self.unlabeled_batches(step)).to(self.device)]}

    def notify(self, hook: str, *args: Any) -> None:
        """Call ``hook`` of every callback with this loop and ``args``."""
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def run(self, total: int, callbacks: Sequence[Callback]) -> None:
        """Train to step ``total``, calling ``callbacks`` (in order) after every step."""
        self.callbacks = list(callbacks)
        t0 = time.perf_counter() - self.elapsed
        try:
            self.notify("on_fit_start", total)
            while self.step < total:
                idx = self._my_share(self.batches(self.step)).to(self.device)
                logs = self.runner(self.trainer, self.images[idx], self.labels[idx], self.rng, self.step,
                                   **self._unlabeled_batch(self.step))
                self.step += 1
                self.elapsed = time.perf_counter() - t0
                self.pending.append({"step": self.step, "epoch": (self.step - 1) // self.steps_per_epoch,
                                     "time_s": round(self.elapsed, 3), "logs": logs})
                due = [c.due(self, total) for c in self.callbacks]
                if any(due) or len(self.pending) >= LOG_SYNC_EVERY:
                    diverged = self._read_logs()
                    if diverged is not None:
                        self.notify("on_divergence", *diverged)
                        continue
                self.notify("on_step_end", total)
        finally:
            self.notify("on_fit_end")

    def _read_logs(self) -> tuple[int, str] | None:
        """Read the pending steps' logs back from the device into ``log_rows`` (and tell the
        callbacks); ``(step, message)`` instead, with nothing added, if any step of any rank had
        a non-finite value."""
        rows = stack_logs([entry["logs"] for entry in self.pending])
        bad = next(((entry, k, v) for entry, row in zip(self.pending, rows) for k, v in row.items()
                    if not math.isfinite(v)), None)
        first_bad = self.procs.min_int(bad[0]["step"] if bad is not None else 2**62)
        if first_bad < 2**62:
            step = first_bad - 1  # the step index the loss was computed at
            what = f"{bad[1]} is {bad[2]}" if bad is not None and bad[0]["step"] == first_bad else \
                "a loss is not finite on another process"
            self.pending = []
            return step, f"training diverged at step {step}: {what}"
        new = [{"step": entry["step"], "epoch": entry["epoch"], "time_s": entry["time_s"],
                **{k: round(v, 6) for k, v in row.items()}} for entry, row in zip(self.pending, rows)]
        self.log_rows.extend(new)
        self.pending = []
        self.notify("on_logs", new)
        return None

    def evaluate(self) -> None:
        if not len(self.test_labels):
            return
        self.metrics = {k: round(float(v), 6) for k, v in
                        self.trainer.evaluate(self.test_images, self.test_labels).items()}
        self.log_rows[-1].update(self.metrics)

    def state(self, total: int) -> dict[str, Any]:
        """Everything a resumed (or restarted) run needs, as live references: copy before keeping."""
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "total_steps": total,
            "elapsed": self.elapsed,
            "settings": self.settings.__dict__,
            "trainer": self.trainer.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.trainer.optimizers().items()},
            "rng": self.rng.get_state(),
            "log": self.log_rows,
            "metrics": self.metrics,
            "quality": self.quality,
            "restarts": self.restarts,
            "kept": None if self.kept is None else {"step": self.kept.step, "metrics": self.kept.metrics,
                                                    "generator": self.kept.generator.state_dict()},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.trainer.load_state_dict(state["trainer"])
        for k, opt in self.trainer.optimizers().items():
            opt.load_state_dict(state["optimizers"][k])
        ranks = state.get("rng_ranks")
        self.rng.set_state(ranks[self.procs.rank] if ranks is not None else state["rng"])
        self.step = int(state["step"])
        self.log_rows = list(state["log"])
        self.metrics = dict(state.get("metrics", {}))
        self.quality = dict(state.get("quality") or {})
        self.restarts = list(state.get("restarts") or [])
        kept = state.get("kept")
        self.kept = None
        if kept is not None:
            generator = copy.deepcopy(self.trainer.sampling_generator()).cpu()
            generator.load_state_dict(kept["generator"])
            self.kept = KeptGenerator(int(kept["step"]), dict(kept["metrics"]), generator)

    def restore(self, state: dict[str, Any], path: Path) -> None:
        try:
            self.load_state(state)
            self.elapsed = float(state["elapsed"])
        except (KeyError, RuntimeError, TypeError, ValueError) as err:  # a damaged or foreign checkpoint
            first = first_line(err)
            raise SynthaugError(f"{path}: checkpoint does not fit its own settings ({type(err).__name__}: "
                                f"{first}); start again with force=True") from None


def holdout_split(labels: torch.Tensor, fraction: float, seed: int,
                  scheme: int = SEED_SCHEME) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, held out) of a fit with ``seed``: ``fraction`` of each class, at least one
    when > 0 but never a class's last image."""
    return stratified_split(labels, fraction, RunSeeds(seed, scheme)("holdout"))
