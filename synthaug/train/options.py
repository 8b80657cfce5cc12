"""``FitOptions``: everything ``fit`` is asked besides the data and the run directory, checked in
one place before anything touches the disk or the data.

Example:
    >>> FitOptions(steps=10, keep="best", eval_every=5).keep
    'best'
    >>> FitOptions(steps=0)
    Traceback (most recent call last):
    ...
    synthaug.errors.SynthaugError: steps must be a positive integer, got 0
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import SynthaugError
from ..messages import arg
from ..models.step import check_precision
from ..validation import check_positive_ints, is_real
from .callbacks import Callback
from .pseudo_labels import UNSET, check_threshold
from .tensorboard import check_tensorboard

__all__ = ["KEEP_CHOICES", "LOGGERS", "ON_DIVERGENCE", "FitOptions"]

#: What ``keep`` may say: the generator of the last step, or of the evaluation step with the lowest FID.
KEEP_CHOICES = ("last", "best")
#: What ``on_divergence`` may say.
ON_DIVERGENCE = ("restart", "stop")
#: What ``log`` may name besides ``log.csv``, which every run writes.
LOGGERS = ("tensorboard",)


@dataclass(frozen=True)
class FitOptions:
    """The options of :func:`synthaug.fit` (its keyword arguments; see there for each), validated
    on construction. ``None`` means "the default" (or, on resume, "the checkpoint's")."""

    model: str | None = None
    config: dict[str, Any] | None = None
    steps: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    seed: int | None = None
    image_size: int | None = None
    channels: int | None = None
    skip_bad_files: bool = False
    resume: bool = False
    force: bool = False
    sample_every: int = 500
    checkpoint_every: int = 500
    holdout: float | None = None
    progress: bool = True
    device: str | None = None
    eval_every: int | None = None
    keep: str | None = None
    unlabeled: Any = None
    pseudo_labels: float | str | None = UNSET
    precision: str | None = None
    on_divergence: str = "restart"
    class_balance: float | None = None
    log: str | None = None
    callbacks: Sequence[Callback] = ()

    def __post_init__(self) -> None:
        check_positive_ints(batch_size=self.batch_size, sample_every=self.sample_every,
                        checkpoint_every=self.checkpoint_every, steps=self.steps, epochs=self.epochs,
                        eval_every=self.eval_every)
        if self.keep is not None and self.keep not in KEEP_CHOICES:
            raise SynthaugError(f"keep: expected one of {', '.join(KEEP_CHOICES)}, got {self.keep!r}")
        if self.keep == "best" and self.eval_every is None and not self.resume:  # a resumed run has its own
            raise SynthaugError(f"{arg('keep', 'best')} needs {arg('eval_every', shown='N')} (it keeps the evaluation "
                                f"step with the lowest FID), got {arg('eval_every', None)}")
        threshold = check_threshold(self.pseudo_labels)
        if self.pseudo_labels_given and self.unlabeled is None:
            raise SynthaugError(f"{arg('pseudo_labels', threshold)} needs {arg('unlabeled')}: the pseudo-labels are "
                                f"given to unlabelled images, and none were given")
        if self.precision is not None:
            check_precision(self.precision)
        balance = self.class_balance
        if balance is not None and (not is_real(balance) or not 0 <= balance <= 1):
            raise SynthaugError(f"class_balance: expected a number in [0, 1], got {balance!r}")
        if self.on_divergence not in ON_DIVERGENCE:
            raise SynthaugError(f"on_divergence: expected one of {', '.join(ON_DIVERGENCE)}, "
                                f"got {self.on_divergence!r}")
        if self.holdout is not None and not 0.0 <= self.holdout < 1.0:
            raise SynthaugError(f"holdout must be a fraction in [0, 1), got {self.holdout!r}")
        if self.steps is not None and self.epochs is not None:
            raise SynthaugError(f"expected steps=... or epochs=..., got both ({self.steps} steps, "
                                f"{self.epochs} epochs)")
        if self.log is not None and self.log not in LOGGERS:
            raise SynthaugError(f"log: expected one of {', '.join(LOGGERS)} or None, got {self.log!r}")
        if self.log == "tensorboard":
            check_tensorboard()
        bad = [c for c in self.callbacks if not isinstance(c, Callback)]
        if isinstance(self.callbacks, (str, bytes)) or bad:
            raise SynthaugError(f"callbacks: expected a list of synthaug.train.callbacks.Callback, "
                                f"got {type(bad[0] if bad else self.callbacks).__name__}")

    @property
    def pseudo_labels_given(self) -> bool:
        return not (isinstance(self.pseudo_labels, str) and self.pseudo_labels == UNSET)

    @property
    def pseudo_label_threshold(self) -> float | None:
        """The threshold asked for (``UNSET`` resolved to the default)."""
        return check_threshold(self.pseudo_labels)

    def given_for_resume(self) -> dict[str, Any]:
        """The options a resumed run takes from its checkpoint, by parameter name: those given only
        (``pseudo_labels`` given as None, off, is given)."""
        given = {"model": self.model, "batch_size": self.batch_size, "seed": self.seed,
                 "image_size": self.image_size, "channels": self.channels, "holdout": self.holdout,
                 "eval_every": self.eval_every, "keep": self.keep, "precision": self.precision,
                 "class_balance": float(self.class_balance) if self.class_balance is not None else None}
        given = {name: value for name, value in given.items() if value is not None}
        if self.pseudo_labels_given:
            given["pseudo_labels"] = self.pseudo_label_threshold
        return given

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]
