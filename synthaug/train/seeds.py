"""The seeds of a fit's random streams, under the seed scheme its checkpoint records.

Scheme 2 (runs started now) derives each stream with :func:`synthaug.seeding.derive`. Scheme 1
(runs started by earlier releases, whose checkpoints carry no scheme) offset the seed by a
constant per stream, where the pseudo-labeller and the quality metrics' noise shared
``seed + 5``; such a run resumes with scheme 1, bitwise.

Example:
    >>> RunSeeds(7, scheme=1)("grid"), RunSeeds(7, scheme=1)("noise", rank=1)
    (9, 1000011)
    >>> RunSeeds(7, scheme=2)("grid") == RunSeeds(7, scheme=2)("grid") != RunSeeds(7, scheme=2)("holdout")
    True
"""

from __future__ import annotations

from ..errors import SynthaugError
from ..seeding import SEED_SCHEME, derive
from .distributed import RANK_STREAM

__all__ = ["SCHEMES", "RunSeeds"]

#: Scheme 1's offsets from the fit seed, per stream.
_OFFSETS = {"noise": 1, "grid": 2, "holdout": 3, "features": 4, "eval_noise": 5, "pseudo_labels": 5,
            "unlabeled_batches": 7919, "batches": 0}
SCHEMES = (1, SEED_SCHEME)


class RunSeeds:
    """``seeds(purpose)``: the seed of one stream of the run (``rank``: each process's own noise);
    ``seeds.epoch(stream, epoch)``: the seed of a batch stream's permutation in ``epoch``."""

    def __init__(self, seed: int, scheme: int = SEED_SCHEME) -> None:
        if scheme not in SCHEMES:
            raise SynthaugError(f"seed scheme: expected one of {', '.join(map(str, SCHEMES))}, got {scheme!r}")
        self.seed, self.scheme = seed, scheme

    def __call__(self, purpose: str, rank: int = 0) -> int:
        if self.scheme == 1:
            return self.seed + _OFFSETS[purpose] + (rank * RANK_STREAM if purpose == "noise" else 0)
        return derive(self.seed, purpose, rank) if rank else derive(self.seed, purpose)

    def epoch(self, stream: str, epoch: int) -> int:
        if self.scheme == 1:
            return (self.seed + _OFFSETS[stream]) * 1_000_003 + epoch
        return derive(self.seed, stream, "epoch", epoch)
