"""Checkpoints: what fit writes into the run directory as it trains (log, generator, card,
checkpoint, in the order that keeps a run loadable when killed at any moment), and the callback
that writes them every ``checkpoint_every`` steps and at the last.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .._version import __version__
from ..atomic import atomic_write, atomic_write_text
from ..card import GeneratorCard
from ..layout import CARD_FILE, CHECKPOINT_FILE, FEATURES_FILE, LOG_FILE, WEIGHTS_FILE
from ..metrics.monitor import write_feature_network
from ..models.config import split_config
from ..weights import save_generator
from .callbacks import Callback, every

if TYPE_CHECKING:
    from .loop import TrainingLoop

__all__ = ["Checkpoints", "dataset_label", "rank_record", "run_card", "write_checkpoint", "write_log"]


class Checkpoints(Callback):
    """Every ``every_n`` steps and at the last: rank 0 measures the held-out metrics and writes
    log, generator, card and checkpoint (with every rank's noise state); every rank learns whether
    that worked. ``after_checkpoint()`` says where the run lives then (the first checkpoint of a
    replacing fit swaps it in)."""

    def __init__(self, every_n: int, after_checkpoint: Callable[[], Path]) -> None:
        self.every_n, self.after_checkpoint = every_n, after_checkpoint

    def due(self, loop: TrainingLoop, total: int) -> bool:
        return every(self.every_n, loop, total)

    def on_step_end(self, loop: TrainingLoop, total: int) -> None:
        if not self.due(loop, total):
            return
        rng_states = loop.procs.gather(loop.rng.get_state())
        ranks = loop.procs.gather(rank_record(loop)) if loop.procs.distributed else None

        def write() -> Path:
            loop.evaluate()
            write_checkpoint(loop, total, rng_states, ranks)
            return self.after_checkpoint()

        loop.out = loop.procs.outcome(write)
        loop.notify("on_checkpoint")


def run_card(loop: TrainingLoop) -> GeneratorCard:
    """The card of the run as it stands: what the generator is, what it learnt from, how."""
    d, s = loop.data, loop.settings
    # The architecture rebuilds the generator; training settings go where older readers never look.
    architecture, hyperparameters = split_config(loop.trainer.config, loop.trainer.config_dict())
    return GeneratorCard(
        family=s.model, config=architecture, image_shape=list(d.image_shape),
        num_classes=d.num_classes, class_names=list(d.class_names),
        noise=loop.trainer.generator.noise_spec(),
        output={"dtype": "float32", "layout": "NCHW", "range": [0.0, 1.0], "pixel_max": d.pixel_max},
        dataset={"name": dataset_label(d.name), "fingerprint": d.fingerprint(), "size": len(d),
                 "class_counts": d.class_counts(), "unlabeled_size": loop.num_unlabeled,
                 **({"converted": dict(d.conversions)} if d.conversions else {}),
                 **({"unlabeled_fingerprint": s.unlabeled_fingerprint} if s.unlabeled_fingerprint else {})},
        training={"steps": loop.step, "seed": s.seed, "batch_size": loop.batch_size,
                  "hyperparameters": hyperparameters,
                  "seconds": round(loop.elapsed, 1), "train_size": loop.num_train,
                  "holdout_size": len(loop.test_labels), "holdout_per_class": loop.holdout_per_class,
                  "world_size": s.world_size, **({"precision": s.precision} if s.precision != "fp32" else {}),
                  **({"class_balance": s.class_balance} if s.class_balance else {}),
                  **({"restarts": list(loop.restarts)} if loop.restarts else {}),
                  **({"pseudo_labels": loop.pseudo} if loop.pseudo is not None else {}),
                  **_quality_provenance(loop)},
        metrics=dict(loop.kept.metrics) if loop.kept is not None else {**loop.metrics, **loop.quality},
        synthaug_version=__version__,
    )


def _quality_provenance(loop: TrainingLoop) -> dict[str, Any]:
    """The card's record of --eval-every / --keep; ``kept_step``: the step whose generator
    the run holds (the latest until a first evaluation has measured an FID)."""
    if not loop.settings.eval_every:
        return {}
    out: dict[str, Any] = {"eval_every": loop.settings.eval_every, "keep": loop.settings.keep}
    if loop.settings.keep == "best":
        out["kept_step"] = loop.kept.step if loop.kept is not None else loop.step
    return out


def rank_record(loop: TrainingLoop) -> dict[str, Any]:
    """What this rank holds and has drawn, kept in a multi-process checkpoint: a digest of its
    parameters (equal on every rank) and the images of this epoch's batches it took."""
    digest = hashlib.sha256()
    for tensor in loop.trainer.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    epoch_start = (loop.step - 1) // loop.steps_per_epoch * loop.steps_per_epoch
    seen = [loop._my_share(loop.batches(s)) for s in range(epoch_start, loop.step)]
    return {"rank": loop.procs.rank, "state_sha256": digest.hexdigest(),
            "epoch_indices": torch.cat(seen).tolist() if seen else []}


def write_checkpoint(loop: TrainingLoop, total: int, rng_states: list[torch.Tensor] | None = None,
                     ranks: list[dict[str, Any]] | None = None) -> None:
    # Order matters for a kill at any moment: the log and the generator first, then the
    # checkpoint that --resume reads (it truncates the log back to its own step). The
    # feature network comes after the card: --force knows it as fit's own only beside one.
    write_log(loop)
    card = run_card(loop)
    generator = loop.kept.generator if loop.kept is not None else loop.trainer.sampling_generator()
    save_generator(generator, card, loop.out / WEIGHTS_FILE)
    atomic_write_text(loop.out / CARD_FILE, card.to_json(indent=2) + "\n")
    if loop.features_to_write is not None:
        write_feature_network(loop.out / FEATURES_FILE, *loop.features_to_write)
        loop.features_to_write = None
    state = loop.state(total)
    if rng_states is not None and len(rng_states) > 1:
        state["rng_ranks"] = rng_states
    if ranks is not None:
        state["ranks"] = ranks
    atomic_write(loop.out / CHECKPOINT_FILE, lambda tmp: torch.save(state, tmp))


def write_log(loop: TrainingLoop) -> None:
    if not loop.log_rows:
        return
    buf = io.StringIO()
    fields = list(dict.fromkeys(k for row in loop.log_rows for k in row))  # held-out metrics join later
    writer = csv.DictWriter(buf, fieldnames=fields, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(loop.log_rows)
    atomic_write_text(loop.out / LOG_FILE, buf.getvalue())


def dataset_label(name: str) -> str:
    """The data's name as the card records it: a path's last part only (``/home/ann/cats/`` ->
    ``cats``), so an exported model does not carry the user's directory layout; built-in names
    such as ``digits:train`` stay as they are."""
    return Path(name).name or name
