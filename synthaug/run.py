"""A run directory, as ``fit`` leaves it: card, weights, checkpoint, log and sample grids."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from .card import GeneratorCard
from .errors import SynthaugError
from .layout import CHECKPOINT_FILE, LOG_FILE, WEIGHTS_FILE
from .models import create_model, get_family
from .runtime import load
from .weights import read_card


class Run:
    """Handle on a fitted run directory.

    Example:
        >>> import synthaug, tempfile
        >>> out = tempfile.mkdtemp() + "/run"
        >>> _ = synthaug.fit("digits", out=out, steps=3, config={"g_width": 8, "d_width": 8}, progress=False)
        >>> run = Run(out)
        >>> run.card.family, run.card.training["steps"], len(run.log())
        ('dcgan', 3, 3)
        >>> run.sampler().sample([0, 1], seed=0).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not (self.path / WEIGHTS_FILE).is_file():
            raise SynthaugError(f"{self.path}: expected a run directory holding {WEIGHTS_FILE}, found none")

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS_FILE

    @property
    def card(self) -> GeneratorCard:
        # The safetensors metadata is the authority; card.json is a readable copy of it.
        return read_card(self.weights_path)

    def sampler(self, device: str | torch.device | None = None):
        """A :class:`~synthaug.TorchSampler` on the run's EMA generator."""
        return load(self.path, device=device)

    def trainer(self):
        """The family's trainer as of the last checkpoint (all networks, e.g. a VAE's encoder for
        ``reconstruct``), in eval mode on the CPU."""
        path = self.path / CHECKPOINT_FILE
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)["trainer"]
        except Exception as err:
            raise SynthaugError(f"{path}: expected a readable checkpoint with the trainer's state "
                                f"({type(err).__name__})") from None
        card = self.card
        trainer = create_model(card.family, full_config(card), tuple(card.image_shape), card.num_classes)
        trainer.load_state_dict(state)
        return trainer.eval()

    def log(self) -> list[dict[str, float]]:
        """The training log, one dict of floats per step."""
        path = self.path / LOG_FILE
        if not path.is_file():
            return []
        with open(path, newline="") as fh:
            return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(fh)]

    def sample_grids(self) -> list[Path]:
        return sorted(self.path.glob("samples_*.png"))


def full_config(card: GeneratorCard) -> dict:
    """The family's whole config from a card: the architecture (``config``) and the training
    settings (``training["hyperparameters"]``; cards before the split hold all of it in
    ``config``). Training knobs this release does not know (a newer release's) are left out: they
    cannot change the networks' shapes."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(get_family(card.family).config_cls)}
    hyper = card.training.get("hyperparameters")
    hyper = {k: v for k, v in hyper.items() if k in known} if isinstance(hyper, dict) else {}
    return {**hyper, **card.config}


__all__ = ["Run", "full_config"]
