"""Run under torchrun by test_distributed.py: every rank wraps the same real data in a
SyntheticDataset with the same seed, shards it with DistributedSampler, and rank 0 checks that
the ranks together saw every synthetic item exactly once, with the same pool on every rank."""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from synthaug import SyntheticDataset, TorchSampler
from synthaug.card import GeneratorCard
from synthaug.models import create_generator


def main(out: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)  # the same generator weights on every rank, as a loaded run would give
    g = create_generator("dcgan", {"g_width": 8, "latent_dim": 8, "embed_dim": 4}, (1, 8, 8), 3).eval()
    card = GeneratorCard("dcgan", {}, [1, 8, 8], 3, ["a", "b", "c"], g.noise_spec(), {"range": [0, 1]})
    real = [(np.full((8, 8), i, np.uint8), i % 3) for i in range(30)]
    ds = SyntheticDataset(real, TorchSampler(g, card), ratio=1.0, seed=7, return_is_synthetic=True)
    sampler = DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(ds, batch_size=4, sampler=sampler, num_workers=1)
    report = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        ds.set_epoch(epoch)
        seen = {}
        for index_batch, (images, _, synthetic) in zip(_batched(list(sampler), 4), loader):
            for i, image, syn in zip(index_batch, images, synthetic):
                if syn:
                    seen[i] = hashlib.sha256(image.numpy().tobytes()).hexdigest()
        gathered = [None] * world
        dist.all_gather_object(gathered, seen)
        report.append(gathered)
    dist.barrier()  # before destroy: avoids gloo's abort at exit (see shared notes)
    if rank == 0:
        with open(out, "w") as fh:
            json.dump({"world": world, "num_real": ds.num_real, "num_synthetic": ds.num_synthetic,
                       "epochs": [[{str(k): v for k, v in r.items()} for r in g] for g in report]}, fh)
    dist.destroy_process_group()


def _batched(items, n):
    return [items[i:i + n] for i in range(0, len(items), n)]


if __name__ == "__main__":
    main(sys.argv[1])
