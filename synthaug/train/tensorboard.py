"""``fit(log="tensorboard")``: the losses, the quality metrics (when measured) and the sample
grids as TensorBoard events in ``<run>/tensorboard/`` (``pip install "synthaug[tensorboard]"``).

Example:
    >>> import synthaug, tempfile
    >>> out = tempfile.mkdtemp() + "/run"
    >>> _ = synthaug.fit("digits", out=out, steps=4, config={"g_width": 8, "d_width": 8},
    ...                  progress=False, log="tensorboard")  # doctest: +SKIP
    >>> # then: tensorboard --logdir <out>/tensorboard
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import SynthaugError
from ..grid import grid_image
from ..layout import TENSORBOARD_DIR
from .callbacks import Callback

if TYPE_CHECKING:
    from .loop import TrainingLoop

__all__ = ["TENSORBOARD_DIR", "TensorBoardLogger", "check_tensorboard"]

#: Log columns that are not measurements.
_NOT_SCALARS = ("step", "epoch", "time_s")


def check_tensorboard() -> None:
    """Raise a one-line error when the ``tensorboard`` package is missing."""
    if importlib.util.find_spec("tensorboard") is None:
        raise SynthaugError('log="tensorboard" needs the tensorboard package: expected it installed '
                            '(pip install "synthaug[tensorboard]"), got none')


class TensorBoardLogger(Callback):
    """Write ``train/<loss>`` every step, ``quality/<metric>`` at each evaluation and
    ``samples`` (the grid, one row per class) at each grid, with the step as TensorBoard's step.

    The event files go into ``<run>/tensorboard/`` from the first checkpoint on (what comes
    before waits in memory): only then does the run directory hold the card that marks the
    folder as fit's own, so ``force=True`` may delete it later, and a replacing fit has swapped
    its directory in.
    """

    def __init__(self) -> None:
        check_tensorboard()
        self.writer = None
        self.waiting: list[Callable[[Any], None]] = []

    def _emit(self, event: Callable[[Any], None]) -> None:
        if self.writer is None:
            self.waiting.append(event)
        else:
            event(self.writer)

    def on_logs(self, loop: TrainingLoop, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            for key, value in row.items():
                if key not in _NOT_SCALARS:
                    self._emit(lambda w, k=key, v=value, s=row["step"]: w.add_scalar(f"train/{k}", v, s))

    def on_quality(self, loop: TrainingLoop, metrics: dict[str, float | None]) -> None:
        for key, value in metrics.items():
            if value is not None:
                self._emit(lambda w, k=key, v=value, s=loop.step: w.add_scalar(f"quality/{k}", v, s))

    def on_grid(self, loop: TrainingLoop, images: torch.Tensor, per_row: int) -> None:
        grid = np.asarray(grid_image(images, per_row))
        grid = grid[..., None] if grid.ndim == 2 else grid
        self._emit(lambda w, g=grid, s=loop.step: w.add_image("samples", g, s, dataformats="HWC"))

    def on_checkpoint(self, loop: TrainingLoop) -> None:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter  # optional: checked in __init__

            self.writer = SummaryWriter(log_dir=str(loop.out / TENSORBOARD_DIR))
            for event in self.waiting:
                event(self.writer)
            self.waiting = []
        self.writer.flush()

    def on_fit_end(self, loop: TrainingLoop) -> None:
        if self.writer is not None:
            self.writer.close()
