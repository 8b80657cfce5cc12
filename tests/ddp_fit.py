"""Run by tests/test_distributed_fit.py under ``torchrun --standalone --nproc_per_node=2``: every
family fitted on two processes, straight and resumed; rank 0 writes what it found as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from synthaug import fit
from synthaug.models import list_models

TINY = {"gan": {"g_width": 16, "d_width": 16, "latent_dim": 8},
        "dcgan": {"g_width": 8, "d_width": 8, "latent_dim": 8},
        "vae": {"g_width": 8, "e_width": 8, "latent_dim": 4},
        "pixelrnn": {"hidden": 8, "layers": 1}}


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoint.pt", weights_only=True)["trainer"]


def main(root: Path, report: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    found = {}
    for family in list_models():
        common = dict(model=family, config=TINY[family], batch_size=32, progress=False, checkpoint_every=2,
                      sample_every=1000)
        straight = fit("digits", out=root / f"{family}-straight", steps=4, **common)
        fit("digits", out=root / f"{family}-resumed", steps=2, **common)
        fit("digits", out=root / f"{family}-resumed", steps=4, resume=True, progress=False)
        if rank == 0:
            state = torch.load(straight.path / "checkpoint.pt", weights_only=True)
            a, b = weights(straight.path), weights(root / f"{family}-resumed")
            found[family] = {
                "ranks": state["ranks"],
                "world_size": straight.card.training["world_size"],
                "steps": straight.card.training["steps"],
                "resume_equal": sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a),
                "rng_states_differ": not torch.equal(state["rng_ranks"][0], state["rng_ranks"][1]),
            }
    if rank == 0:
        report.write_text(json.dumps(found))
    dist.barrier()  # a barrier before destroy: gloo can abort at exit otherwise
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
