"""What the training loop does besides stepping: each a :class:`Callback`.

The loop (:class:`synthaug.train.loop.TrainingLoop`) keeps the step order and the run's state;
after every step it asks each callback whether it is ``due`` (a due callback makes the loop read
the steps' logs back from the device first, so none acts on an unchecked step), then calls
``on_step_end`` of every callback in order. ``fit`` builds the list: the progress bar, the time
estimate, the quality metrics with keep-best (``eval_every``), the sample grids, the
checkpoints and the divergence guard, plus a logger such as
:class:`synthaug.train.tensorboard.TensorBoardLogger` (``log="tensorboard"``).

Example (a callback that counts the checkpoints of a fit):
    >>> class CountCheckpoints(Callback):
    ...     def __init__(self):
    ...         self.written = 0
    ...     def on_checkpoint(self, loop):
    ...         self.written += 1
    >>> import synthaug, tempfile
    >>> counter = CountCheckpoints()
    >>> _ = synthaug.fit("digits", out=tempfile.mkdtemp() + "/run", steps=4, checkpoint_every=2,
    ...                  config={"g_width": 8, "d_width": 8}, progress=False, callbacks=[counter])
    >>> counter.written
    2
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import SynthaugError
from ..grid import save_grid
from ..layout import SAMPLES_PATTERN
from ..metrics.monitor import QualityMonitor, feature_network
from ..progress import progress_bar
from ..runtime import draw_noise

if TYPE_CHECKING:  # the loop calls these hooks with itself; they never import it at run time
    from .loop import TrainingLoop

__all__ = ["ESTIMATE_AFTER", "MAX_RESTARTS", "Callback", "DivergenceGuard", "EvaluationSchedule",
           "KeptGenerator", "ProgressBar", "QualityEvaluation", "SampleGrids", "TimeEstimate", "duration", "every"]

log = logging.getLogger("synthaug")

#: Steps timed before fit says how long the rest will take (the first steps include warm-up, so
#: the estimate errs long).
ESTIMATE_AFTER = 20
MAX_RESTARTS = 3


class Callback:
    """The hooks of the training loop; each does nothing unless overridden.

    ``loop.step`` is the number of steps done; ``total`` the step the fit trains to.
    """

    def on_fit_start(self, loop: TrainingLoop, total: int) -> None:
        """Before the first step of this call (also of a resumed run)."""

    def due(self, loop: TrainingLoop, total: int) -> bool:
        """Whether ``on_step_end`` acts at this step: the loop then reads the logs first."""
        return False

    def on_step_end(self, loop: TrainingLoop, total: int) -> None:
        """After every step, once the logs are read where any callback is due."""

    def on_logs(self, loop: TrainingLoop, rows: list[dict[str, Any]]) -> None:
        """New rows of ``log.csv`` (losses per step), read back from the device."""

    def on_quality(self, loop: TrainingLoop, metrics: dict[str, float | None]) -> None:
        """The quality metrics measured at this step (``eval_every``)."""

    def on_grid(self, loop: TrainingLoop, images: torch.Tensor, per_row: int) -> None:
        """The sample grid's images of this step (one row per class)."""

    def on_checkpoint(self, loop: TrainingLoop) -> None:
        """A checkpoint of this step was written (on every rank, after rank 0 wrote it)."""

    def on_divergence(self, loop: TrainingLoop, step: int, message: str) -> None:
        """A loss was not finite at ``step``: raise to stop, or restore a good state."""

    def on_fit_end(self, loop: TrainingLoop) -> None:
        """After the last step, or when the fit stops on an error (always called)."""


def every(n: int, loop: TrainingLoop, total: int) -> bool:
    """Every ``n`` steps and at the last."""
    return loop.step % n == 0 or loop.step == total


class ProgressBar(Callback):
    """The bar on stderr, with the latest losses every 50 steps."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.bar = enabled, None

    def on_fit_start(self, loop: TrainingLoop, total: int) -> None:
        self.bar = progress_bar(total, f"fit {loop.settings.model}", self.enabled, initial=loop.step)

    def on_step_end(self, loop: TrainingLoop, total: int) -> None:
        self.bar.update(1)
        if (loop.step % 50 == 0 or loop.step == total) and loop.log_rows:
            self.bar.set_postfix({k: f"{v:.3f}" for k, v in loop.log_rows[-1].items() if k.startswith("loss")},
                                 refresh=False)

    def on_divergence(self, loop: TrainingLoop, step: int, message: str) -> None:
        self.bar.n = loop.step
        self.bar.refresh()

    def on_fit_end(self, loop: TrainingLoop) -> None:
        if self.bar is not None:
            self.bar.close()


class TimeEstimate(Callback):
    """One line, once, after the first :data:`ESTIMATE_AFTER` steps of a call: how long the rest
    will take and how to shorten it. A resumed run suggests a step count past where it is."""

    def on_fit_start(self, loop: TrainingLoop, total: int) -> None:
        self.start, self.t0 = loop.step, time.perf_counter()

    def due(self, loop: TrainingLoop, total: int) -> bool:
        return loop.step - self.start == ESTIMATE_AFTER

    def on_step_end(self, loop: TrainingLoop, total: int) -> None:
        if loop.step - self.start != ESTIMATE_AFTER or total - loop.step <= ESTIMATE_AFTER:
            return
        per_step = (time.perf_counter() - self.t0) / ESTIMATE_AFTER
        left = (total - loop.step) * per_step
        shorter = max(loop.step, self.start + (total - self.start) // 3)
        since = "in all" if self.start == 0 else f"from step {self.start}"
        log.info("fit: about %s left for %d more steps (%.3f s/step over the first %d); to shorten it, "
                 "steps=%d would take about %s %s", duration(left), total - loop.step, per_step,
                 ESTIMATE_AFTER, shorter, duration((shorter - self.start) * per_step), since)


def duration(seconds: float) -> str:
    """``42 s``, ``7.5 min`` or ``2.1 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class KeptGenerator:
    """keep="best": the EMA generator (a CPU copy) of the evaluation step with the lowest FID."""

    def __init__(self, step: int, metrics: dict[str, float | None], generator: torch.nn.Module) -> None:
        self.step, self.metrics, self.generator = step, metrics, generator


class EvaluationSchedule(Callback):
    """Due every ``every_n`` steps and at the last, and nothing more: the evaluation steps. On the
    ranks that do not evaluate (all but rank 0 under torchrun) it stands in for
    :class:`QualityEvaluation`: reading the logs is a collective, so every rank must read them at
    the same steps."""

    def __init__(self, every_n: int) -> None:
        self.every_n = every_n

    def due(self, loop: TrainingLoop, total: int) -> bool:
        return every(self.every_n, loop, total)


class QualityEvaluation(EvaluationSchedule):
    """``eval_every``: FID, KID, precision and recall of the EMA generator on fixed noise, in the
    feature space of a SmallCNN trained once on the training images (or read from ``cached``),
    into the step's log row and ``loop.quality``; with keep="best", the generator of the lowest
    FID into ``loop.kept``. Seeded apart from training: nothing here moves the training generator
    or torch's global RNG."""

    def __init__(self, loop: TrainingLoop, every_n: int, cached: Path | None) -> None:
        super().__init__(every_n)
        train = loop.data.subset(loop.train_idx)
        seed = loop.seeds("features")
        model, was_cached = feature_network(train, seed, cached, loop.progress)
        self.monitor = QualityMonitor.create(train, model, seed)
        if loop.settings.keep == "best" and min(len(train), len(self.monitor.labels)) < self.monitor.fid_needs:
            raise SynthaugError(f"keep='best' compares FID, which needs at least {self.monitor.fid_needs} "
                                f"training images, got {len(train)}")
        # A feature network not yet on disk: written with the next checkpoint.
        loop.features_to_write = None if was_cached else (model, train, seed)
        spec = loop.trainer.generator.noise_spec()
        self.noise = draw_noise(spec, len(self.monitor.labels), torch.Generator().manual_seed(loop.seeds("eval_noise")))

    @torch.no_grad()
    def on_step_end(self, loop: TrainingLoop, total: int) -> None:
        if not self.due(loop, total):
            return
        g = loop.trainer.sampling_generator()
        labels = self.monitor.labels
        images = torch.cat([g(self.noise[i:i + 256].to(loop.device), labels[i:i + 256].to(loop.device)).cpu()
                            for i in range(0, len(labels), 256)])
        loop.quality = self.monitor.measure(images)
        loop.log_rows[-1].update(loop.quality)
        fid = loop.quality["fid"]
        if loop.settings.keep == "best" and fid is not None and (loop.kept is None or fid < loop.kept.metrics["fid"]):
            loop.kept = KeptGenerator(loop.step, dict(loop.quality), copy.deepcopy(g).cpu())
        loop.notify("on_quality", loop.quality)


class SampleGrids(Callback):
    """A PNG grid every ``every_n`` steps and at the last (rank 0): fixed noise, one row per
    class, so progress is comparable across grids."""

    def __init__(self, loop: TrainingLoop, every_n: int) -> None:
        self.every_n = every_n
        num_classes = loop.data.num_classes
        self.per_row = min(10, max(4, 64 // num_classes))
        self.labels = torch.arange(num_classes).repeat_interleave(self.per_row)
        spec = loop.trainer.generator.noise_spec()
        self.noise = draw_noise(spec, len(self.labels), torch.Generator().manual_seed(loop.seeds("grid")))

    def due(self, loop: TrainingLoop, total: int) -> bool:
        return every(self.every_n, loop, total)

    def on_step_end(self, loop: TrainingLoop, total: int) -> None:
        if self.due(loop, total) and loop.procs.is_main:
            self.write(loop)

    @torch.no_grad()
    def write(self, loop: TrainingLoop) -> None:
        g = loop.trainer.sampling_generator()
        images = g(self.noise.to(loop.device), self.labels.to(loop.device))
        save_grid(images, self.per_row, loop.out / SAMPLES_PATTERN.format(step=loop.step))
        loop.notify("on_grid", images, self.per_row)


class DivergenceGuard(Callback):
    """On a non-finite loss: ``"stop"`` raises at once; ``"restart"`` goes back to the state of
    the last checkpoint (or of the start) with every learning rate halved, at most
    :data:`MAX_RESTARTS` times, recorded in ``loop.restarts`` and said on stderr."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.good: dict[str, Any] | None = None
        self.good_lr_scale = 1.0

    def on_fit_start(self, loop: TrainingLoop, total: int) -> None:
        self.total = total
        self._keep(loop)

    def on_checkpoint(self, loop: TrainingLoop) -> None:
        self._keep(loop)

    def _keep(self, loop: TrainingLoop) -> None:
        """Remember the current state, with the learning rate scale it was taken at (its
        optimizers already hold that many halvings)."""
        self.good = copy.deepcopy(loop.state(self.total))
        self.good_lr_scale = 0.5 ** len(loop.restarts)

    def on_divergence(self, loop: TrainingLoop, step: int, message: str) -> None:
        if self.mode == "stop":
            raise SynthaugError(f"{message}; try a lower learning rate, or on_divergence='restart'")
        if len(loop.restarts) >= MAX_RESTARTS:
            raise SynthaugError(f"{message}, after {MAX_RESTARTS} restarts with halved learning rates; "
                                f"try a lower learning rate")
        restarts = loop.restarts  # the good state may predate some of them
        loop.load_state(copy.deepcopy(self.good))
        loop.restarts = restarts
        scale = 0.5 ** (len(restarts) + 1)  # of the run's starting learning rates
        for optimizer in loop.trainer.optimizers().values():
            for group in optimizer.param_groups:
                group["lr"] *= scale / self.good_lr_scale
        loop.restarts.append({"diverged_at": step, "back_to": loop.step, "lr_scale": scale})
        log.warning("%s; going back to step %d with the learning rates halved (restart %d of %d: %g of the "
                    "starting ones)", message, loop.step, len(loop.restarts), MAX_RESTARTS, scale)
