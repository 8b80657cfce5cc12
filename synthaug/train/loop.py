"""The training loop behind ``fit``: the same for every family.

A family's trainer yields its losses phase by phase; the loop steps them
(:mod:`synthaug.models.step`), on one process or several under torchrun
(:mod:`synthaug.train.distributed`), reads the logs back every ``LOG_SYNC_EVERY`` steps, writes
grids and checkpoints, and on a non-finite loss either stops or goes back to the last good state
with halved learning rates (``on_divergence``). Every random draw is derived from the seed: the
model initialisation, the batch order of each epoch (a pure function of seed and epoch) and the
training noise (one generator per rank whose state is checkpointed), so a resumed run is bitwise
equal to an uninterrupted one on CPU.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..atomic import atomic_write, atomic_write_text
from ..card import GeneratorCard
from ..data import ImageData
from ..data.images import held_out_counts, stratified_split
from ..data.unlabeled import UnlabeledImages
from ..errors import SynthaugError, first_line
from ..grid import save_grid
from ..layout import CARD_FILE, CHECKPOINT_FILE, FEATURES_FILE, LOG_FILE, SAMPLES_PATTERN, WEIGHTS_FILE
from ..metrics.monitor import QualityMonitor, feature_network, write_feature_network
from ..models import GeneratorTrainer, create_model
from ..models.config import split_config
from ..progress import progress_bar
from ..runtime import draw_noise
from ..weights import save_generator
from ..models.step import GradientSync, StepRunner, stack_logs
from .distributed import RANK_STREAM, Processes
from .pseudo_labels import pseudo_label

CHECKPOINT_FORMAT = 1
#: Offset of the unlabelled batches' seed from the fit seed: their own stream of permutations.
UNLABELED_STREAM = 7919
#: Steps timed before fit says how long the rest will take (the first steps include warm-up, so
#: the estimate errs long).
ESTIMATE_AFTER = 20
#: Seed offset of the pseudo-labelling classifier (apart from the networks, batches and grids).
PSEUDO_LABEL_STREAM = 5
#: Steps between reads of the logs from the device (one host sync for all of them); the logs are
#: also read before every grid, evaluation and checkpoint, so none of those sees an unchecked step.
LOG_SYNC_EVERY = 25
MAX_RESTARTS = 3
#: What ``keep`` may say: the generator of the last step, or of the evaluation step with the lowest FID.
KEEP_CHOICES = ("last", "best")

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


class EpochBatches:
    """The indices of step ``s``'s batch: a pure function of (seed, step), so a resumed run needs no
    state to draw the same batches. Each epoch is a fresh permutation; a set smaller than the batch
    is repeated to fill it."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.steps_per_epoch = max(1, n // batch_size)
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.int64)

    def __call__(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.steps_per_epoch)
        if self._epoch != epoch:
            self._perm = self._order(torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))
            self._epoch = epoch
        return self._perm[i * self.batch_size:(i + 1) * self.batch_size]

    def _order(self, g: torch.Generator) -> torch.Tensor:
        perm = torch.randperm(self.n, generator=g)
        return perm.repeat(-(-self.batch_size // self.n)) if self.n < self.batch_size else perm


class ClassBalancedBatches(EpochBatches):
    """Like :class:`EpochBatches`, but an epoch's ``steps_per_epoch * batch_size`` indices are
    drawn with replacement, image ``i`` of class ``c`` with probability proportional to
    ``n_c ** -balance``: ``balance=1`` gives every class the same share of the batches (a rare
    class of 5 images among classes of 300 gets 1/K of the class-term updates instead of 0.3%),
    ``balance=0.5`` goes half way on a log scale.

    Example:
        >>> batches = ClassBalancedBatches(torch.tensor([0] * 90 + [1] * 10), 50, seed=0, balance=1.0)
        >>> 0.3 < (batches(0) >= 90).float().mean().item() < 0.7
        True
    """

    def __init__(self, labels: torch.Tensor, batch_size: int, seed: int, balance: float) -> None:
        super().__init__(len(labels), batch_size, seed)
        counts = torch.bincount(labels).double()
        self.weights = counts[labels] ** -balance

    def _order(self, g: torch.Generator) -> torch.Tensor:
        return torch.multinomial(self.weights, self.steps_per_epoch * self.batch_size, replacement=True, generator=g)


def _duration(seconds: float) -> str:
    """``42 s``, ``7.5 min`` or ``2.1 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"




class TrainingLoop:
    """One fit's training state and the loop over it (see the module docstring)."""

    def __init__(self, data: ImageData, settings: FitSettings, device: torch.device, progress: bool,
                 unlabeled: UnlabeledImages | None = None, procs: Processes = Processes(),
                 on_divergence: str = "restart") -> None:
        self.data, self.settings, self.progress = data, settings, progress
        self.procs, self.on_divergence = procs, on_divergence
        self.runner = StepRunner(settings.precision, GradientSync(procs.world_size) if procs.distributed else None)
        self.out: Path | None = None  # set once the run directory is open
        self.device = device
        # Initialise the networks from the seed without disturbing the caller's global RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            self.trainer: GeneratorTrainer = create_model(settings.model, settings.config,
                                                          data.image_shape, data.num_classes)
        self.trainer.to(self.device)
        train_idx, test_idx = holdout_split(data.labels, settings.holdout, settings.seed)
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
        self.metrics: dict[str, float] = {}
        self.batch_size = min(settings.batch_size, n)
        self.batches = ClassBalancedBatches(self.labels.cpu(), self.batch_size, settings.seed, settings.class_balance) \
            if settings.class_balance else EpochBatches(n, self.batch_size, settings.seed)
        self.steps_per_epoch = self.batches.steps_per_epoch
        # Unlabelled images: one batch of the labelled batch's size per step, from their own stream.
        self.unlabeled_images = unlabeled.as_float().to(self.device) if unlabeled is not None else None
        self.unlabeled_batches = EpochBatches(len(unlabeled) if unlabeled is not None else 0, self.batch_size, settings.seed + UNLABELED_STREAM) \
            if unlabeled is not None else None
        # Each rank its own noise stream; rank 0's is a single process's.
        self.rng = torch.Generator().manual_seed(settings.seed + 1 + procs.rank * RANK_STREAM)
        self.step = 0
        self.pending: list[dict[str, Any]] = []  # steps whose logs are not yet read from the device
        self.restarts: list[dict[str, Any]] = []  # on_divergence="restart": where and why it went back
        self._good: dict[str, Any] | None = None  # the state to go back to: the last checkpoint's
        self._good_lr_scale = 1.0
        self.elapsed = 0.0
        self.log_rows: list[dict[str, Any]] = []
        # Fixed noise for the grids: one row per class, so progress is comparable across grids.
        per_class = min(10, max(4, 64 // data.num_classes))
        self.grid_labels = torch.arange(data.num_classes).repeat_interleave(per_class)
        self.grid_per_row = per_class
        spec = self.trainer.generator.noise_spec()
        self.grid_noise = draw_noise(spec, len(self.grid_labels), torch.Generator().manual_seed(settings.seed + 2))
        # fit --eval-every: set by prepare_quality(); the kept generator only with keep="best".
        self.monitor = None
        self.eval_noise: torch.Tensor | None = None
        self.quality: dict[str, float | None] = {}  # the latest evaluation's metrics
        self.kept: KeptGenerator | None = None
        self._features_to_write = None  # a feature network not yet on disk: written with the next checkpoint

    def _add_pseudo_labelled(self, pool: UnlabeledImages) -> UnlabeledImages | None:
        """Move the pool's confidently classified images into the labelled training set; return
        the rest (``None`` when none is left)."""
        found = pseudo_label(self.data.subset(self.train_idx), pool, self.settings.pseudo_label_threshold,
                             self.settings.seed + PSEUDO_LABEL_STREAM)
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

    def prepare_quality(self, cached: Path | None) -> None:
        """Train (or read from ``cached``) the feature network of the quality metrics and fix
        the noise of the images they judge. Seeded apart from training: nothing here moves the
        training generator or torch's global RNG."""
        train = self.data.subset(self.train_idx)
        seed = self.settings.seed + 4
        model, was_cached = feature_network(train, seed, cached, self.progress)
        self.monitor = QualityMonitor.create(train, model, seed)
        if self.settings.keep == "best" and min(len(train), len(self.monitor.labels)) < self.monitor.fid_needs:
            raise SynthaugError(f"--keep best compares FID, which needs at least {self.monitor.fid_needs} training "
                                f"images, got {len(train)}")
        if not was_cached:
            self._features_to_write = (model, train, seed)
        spec = self.trainer.generator.noise_spec()
        self.eval_noise = draw_noise(spec, len(self.monitor.labels), torch.Generator().manual_seed(seed + 1))

    def _my_share(self, indices: torch.Tensor) -> torch.Tensor:
        """This rank's slice of a global batch (all of it on one process)."""
        if not self.procs.distributed:
            return indices
        return indices.tensor_split(self.procs.world_size)[self.procs.rank]

    def _batch_indices(self, step: int) -> torch.Tensor:
        return self._my_share(self.batches(step)).to(self.device)

    def _unlabeled_batch(self, step: int) -> dict[str, torch.Tensor]:
        """``{"unlabeled": batch}`` for the family's step, or nothing (the labelled-only step)."""
        if self.unlabeled_batches is None:
            return {}
        return {"unlabeled": self.unlabeled_images[self._my_share(self.unlabeled_batches(step)).to(self.device)]}

    def run(self, total: int, sample_every: int, checkpoint_every: int,
            after_checkpoint: Callable[[], Path]) -> None:
        """Train to step ``total``; ``after_checkpoint()`` says where the run lives after each one."""
        start = self.step
        bar = progress_bar(total, f"fit {self.settings.model}", self.progress, initial=start)
        t0 = time.perf_counter() - self.elapsed
        t_run = time.perf_counter()  # this call's start: the estimate measures this run's own pace
        self._keep_as_good(total)
        try:
            while self.step < total:
                idx = self._batch_indices(self.step)
                logs = self.runner(self.trainer, self.images[idx], self.labels[idx], self.rng, self.step,
                                   **self._unlabeled_batch(self.step))
                self.step += 1
                self.elapsed = time.perf_counter() - t0
                self.pending.append({"step": self.step, "epoch": (self.step - 1) // self.steps_per_epoch,
                                     "time_s": round(self.elapsed, 3), "logs": logs})
                bar.update(1)
                due_quality = self.monitor is not None and (self.step % self.settings.eval_every == 0
                                                            or self.step == total)
                due_grid = self.step % sample_every == 0 or self.step == total
                due_checkpoint = self.step % checkpoint_every == 0 or self.step == total
                if (due_quality or due_grid or due_checkpoint or len(self.pending) >= LOG_SYNC_EVERY
                        or self.step - start == ESTIMATE_AFTER):
                    if not self._read_logs():
                        self._go_back(bar)
                        continue
                if self.step - start == ESTIMATE_AFTER and total - self.step > ESTIMATE_AFTER:
                    self._say_estimate(start, total, (time.perf_counter() - t_run) / ESTIMATE_AFTER)
                if (self.step % 50 == 0 or self.step == total) and self.log_rows:
                    bar.set_postfix({k: f"{v:.3f}" for k, v in self.log_rows[-1].items() if k.startswith("loss")},
                                    refresh=False)
                if due_quality:
                    self.measure_quality()
                if due_grid and self.procs.is_main:
                    self.write_grid()
                if due_checkpoint:
                    self._checkpoint(total, after_checkpoint)
        finally:
            bar.close()

    def _read_logs(self) -> bool:
        """Read the pending steps' logs back from the device into ``log_rows``; ``False`` (and
        nothing added) if any step of any rank had a non-finite value."""
        rows = stack_logs([entry["logs"] for entry in self.pending])
        bad = next(((entry, k, v) for entry, row in zip(self.pending, rows) for k, v in row.items()
                    if not math.isfinite(v)), None)
        first_bad = self.procs.min_int(bad[0]["step"] if bad is not None else 2**62)
        if first_bad < 2**62:
            step = first_bad - 1  # the step index the loss was computed at
            what = f"{bad[1]} is {bad[2]}" if bad is not None and bad[0]["step"] == first_bad else \
                "a loss is not finite on another process"
            self.pending = []
            self._divergence = (step, f"training diverged at step {step}: {what}")
            return False
        for entry, row in zip(self.pending, rows):
            self.log_rows.append({"step": entry["step"], "epoch": entry["epoch"], "time_s": entry["time_s"],
                                  **{k: round(v, 6) for k, v in row.items()}})
        self.pending = []
        return True

    def _go_back(self, bar) -> None:
        """A loss was not finite: stop with the message, or go back to the last good state with
        every learning rate halved (at most MAX_RESTARTS times)."""
        diverged_at, message = self._divergence
        if self.on_divergence == "stop":
            raise SynthaugError(f"{message}; try a lower learning rate, or --on-divergence restart")
        if len(self.restarts) >= MAX_RESTARTS:
            raise SynthaugError(f"{message}, after {MAX_RESTARTS} restarts with halved learning rates; "
                                f"try a lower learning rate")
        restarts = self.restarts  # the good state may predate some of them
        self._load_state(copy.deepcopy(self._good))
        self.restarts = restarts
        scale = 0.5 ** (len(restarts) + 1)  # of the run's starting learning rates
        for optimizer in self.trainer.optimizers().values():
            for group in optimizer.param_groups:
                group["lr"] *= scale / self._good_lr_scale
        self.restarts.append({"diverged_at": diverged_at, "back_to": self.step, "lr_scale": scale})
        log.warning("%s; going back to step %d with the learning rates halved (restart %d of %d: %g of the "
                    "starting ones)", message, self.step, len(self.restarts), MAX_RESTARTS, scale)
        bar.n = self.step
        bar.refresh()

    def _say_estimate(self, start: int, total: int, seconds_per_step: float) -> None:
        """One line, once, after the first steps: how long the rest will take and how to shorten it.
        A resumed run (``start`` > 0) suggests a step count past where it already is."""
        left = (total - self.step) * seconds_per_step
        shorter = max(self.step, start + (total - start) // 3)
        since = "in all" if start == 0 else f"from step {start}"
        log.info("fit: about %s left for %d more steps (%.3f s/step over the first %d); to shorten it, "
                 "--steps %d would take about %s %s", _duration(left), total - self.step, seconds_per_step,
                 ESTIMATE_AFTER, shorter, _duration((shorter - start) * seconds_per_step), since)

    def evaluate(self) -> None:
        if not len(self.test_labels):
            return
        self.metrics = {k: round(float(v), 6) for k, v in
                        self.trainer.evaluate(self.test_images, self.test_labels).items()}
        self.log_rows[-1].update(self.metrics)

    @torch.no_grad()
    def measure_quality(self) -> None:
        """The cheap quality metrics of the EMA generator on the fixed evaluation noise, into
        this step's log row; with keep="best", remember the generator if its FID is the lowest."""
        g = self.trainer.sampling_generator()
        labels = self.monitor.labels
        images = torch.cat([g(self.eval_noise[i:i + 256].to(self.device), labels[i:i + 256].to(self.device)).cpu()
                            for i in range(0, len(labels), 256)])
        self.quality = self.monitor.measure(images)
        self.log_rows[-1].update(self.quality)
        fid = self.quality["fid"]
        if self.settings.keep == "best" and fid is not None and (self.kept is None or fid < self.kept.metrics["fid"]):
            self.kept = KeptGenerator(self.step, dict(self.quality), copy.deepcopy(g).cpu())

    @torch.no_grad()
    def write_grid(self) -> None:
        g = self.trainer.sampling_generator()
        images = g(self.grid_noise.to(self.device), self.grid_labels.to(self.device))
        save_grid(images, self.grid_per_row, self.out / SAMPLES_PATTERN.format(step=self.step))

    def card(self) -> GeneratorCard:
        d, s = self.data, self.settings
        # The architecture rebuilds the generator; training settings go where older readers never look.
        architecture, hyperparameters = split_config(self.trainer.config, self.trainer.config_dict())
        return GeneratorCard(
            family=s.model, config=architecture, image_shape=list(d.image_shape),
            num_classes=d.num_classes, class_names=list(d.class_names),
            noise=self.trainer.generator.noise_spec(),
            output={"dtype": "float32", "layout": "NCHW", "range": [0.0, 1.0], "pixel_max": d.pixel_max},
            dataset={"name": dataset_label(d.name), "fingerprint": d.fingerprint(), "size": len(d),
                     "class_counts": d.class_counts(), "unlabeled_size": self.num_unlabeled,
                     **({"converted": dict(d.conversions)} if d.conversions else {}),
                     **({"unlabeled_fingerprint": s.unlabeled_fingerprint} if s.unlabeled_fingerprint else {})},
            training={"steps": self.step, "seed": s.seed, "batch_size": self.batch_size,
                      "hyperparameters": hyperparameters,
                      "seconds": round(self.elapsed, 1), "train_size": self.num_train,
                      "holdout_size": len(self.test_labels), "holdout_per_class": self.holdout_per_class,
                      "world_size": s.world_size, **({"precision": s.precision} if s.precision != "fp32" else {}),
                      **({"class_balance": s.class_balance} if s.class_balance else {}),
                      **({"restarts": list(self.restarts)} if self.restarts else {}),
                      **({"pseudo_labels": self.pseudo} if self.pseudo is not None else {}),
                      **self._quality_provenance()},
            metrics=dict(self.kept.metrics) if self.kept is not None else {**self.metrics, **self.quality},
            synthaug_version=__version__,
        )

    def _quality_provenance(self) -> dict[str, Any]:
        """The card's record of --eval-every / --keep; ``kept_step``: the step whose generator
        the run holds (the latest until a first evaluation has measured an FID)."""
        if not self.settings.eval_every:
            return {}
        out: dict[str, Any] = {"eval_every": self.settings.eval_every, "keep": self.settings.keep}
        if self.settings.keep == "best":
            out["kept_step"] = self.kept.step if self.kept is not None else self.step
        return out

    def _checkpoint(self, total: int, after_checkpoint: Callable[[], Path]) -> None:
        """Rank 0 evaluates and writes the checkpoint (with every rank's noise state); every rank
        learns whether that worked, and keeps the state as the one to go back to on divergence."""
        rng_states = self.procs.gather(self.rng.get_state())
        ranks = self.procs.gather(self._rank_record()) if self.procs.distributed else None

        def write() -> Path:
            self.evaluate()
            self.write_checkpoint(total, rng_states, ranks)
            return after_checkpoint()

        self.out = self.procs.outcome(write)
        self._keep_as_good(total)

    def _keep_as_good(self, total: int) -> None:
        """Remember the current state as the one to go back to on divergence, with the learning
        rate scale it was taken at (its optimizers already hold that many halvings)."""
        self._good = copy.deepcopy(self._state(total))
        self._good_lr_scale = 0.5 ** len(self.restarts)

    def _rank_record(self) -> dict[str, Any]:
        """What this rank holds and has drawn, kept in a multi-process checkpoint: a digest of its
        parameters (equal on every rank) and the images of this epoch's batches it took."""
        digest = hashlib.sha256()
        for tensor in self.trainer.state_dict().values():
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        epoch_start = (self.step - 1) // self.steps_per_epoch * self.steps_per_epoch
        seen = [self._my_share(self.batches(s)) for s in range(epoch_start, self.step)]
        return {"rank": self.procs.rank, "state_sha256": digest.hexdigest(),
                "epoch_indices": torch.cat(seen).tolist() if seen else []}

    def _state(self, total: int) -> dict[str, Any]:
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

    def write_checkpoint(self, total: int, rng_states: list[torch.Tensor] | None = None,
                         ranks: list[dict[str, Any]] | None = None) -> None:
        # Order matters for a kill at any moment: the log and the generator first, then the
        # checkpoint that --resume reads (it truncates the log back to its own step). The
        # feature network comes after the card: --force knows it as fit's own only beside one.
        self.write_log()
        card = self.card()
        generator = self.kept.generator if self.kept is not None else self.trainer.sampling_generator()
        save_generator(generator, card, self.out / WEIGHTS_FILE)
        atomic_write_text(self.out / CARD_FILE, card.to_json(indent=2) + "\n")
        if self._features_to_write is not None:
            write_feature_network(self.out / FEATURES_FILE, *self._features_to_write)
            self._features_to_write = None
        state = self._state(total)
        if rng_states is not None and len(rng_states) > 1:
            state["rng_ranks"] = rng_states
        if ranks is not None:
            state["ranks"] = ranks
        atomic_write(self.out / CHECKPOINT_FILE, lambda tmp: torch.save(state, tmp))

    def write_log(self) -> None:
        if not self.log_rows:
            return
        buf = io.StringIO()
        fields = list(dict.fromkeys(k for row in self.log_rows for k in row))  # held-out metrics join later
        writer = csv.DictWriter(buf, fieldnames=fields, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.log_rows)
        atomic_write_text(self.out / LOG_FILE, buf.getvalue())

    def _load_state(self, state: dict[str, Any]) -> None:
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
            self._load_state(state)
            self.elapsed = float(state["elapsed"])
        except (KeyError, RuntimeError, TypeError, ValueError) as err:  # a damaged or foreign checkpoint
            first = first_line(err)
            raise SynthaugError(f"{path}: checkpoint does not fit its own settings ({type(err).__name__}: "
                                f"{first}); start again with --force") from None


@dataclass
class KeptGenerator:
    """keep="best": the EMA generator (a CPU copy) of the evaluation step with the lowest FID."""

    step: int
    metrics: dict[str, float | None]
    generator: torch.nn.Module


def dataset_label(name: str) -> str:
    """The data's name as the card records it: a path's last part only (``/home/ann/cats/`` ->
    ``cats``), so an exported model does not carry the user's directory layout; built-in names
    such as ``digits:train`` stay as they are."""
    return Path(name).name or name


def holdout_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, held out): ``fraction`` of each class, at least one when > 0 but never a
    class's last image, by seed."""
    return stratified_split(labels, fraction, seed + 3)
