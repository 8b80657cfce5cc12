"""Run under torchrun by test_distributed.py: every rank wraps the same real data in a
SyntheticDataset with the same seed and shards it with DistributedSampler; rank 0 reports what
each rank saw and a hash of each rank's whole pool per epoch, so the test can check that the
ranks together saw every synthetic item exactly once and built byte-identical pools. Each rank
also runs one SyntheticMix batch with the same seed and reports its hash: ranks must differ."""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from synthaug import SyntheticDataset, SyntheticMix, TorchSampler
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
    report, pool_hashes = [], []
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
        pools = [None] * world
        dist.all_gather_object(pools, _pool_hash(ds))
        pool_hashes.append(pools)
    mixes = [None] * world
    dist.all_gather_object(mixes, _mix_hash(TorchSampler(g, card)))
    dist.barrier()  # before destroy: avoids gloo's abort at exit (see shared notes)
    if rank == 0:
        with open(out, "w") as fh:
            json.dump({"world": world, "num_real": ds.num_real, "num_synthetic": ds.num_synthetic,
                       "epochs": [[{str(k): v for k, v in r.items()} for r in g] for g in report],
                       "pool_hashes": pool_hashes, "mix_hashes": mixes}, fh)
    dist.destroy_process_group()


def _pool_hash(ds: SyntheticDataset) -> str:
    """Every synthetic item of the current epoch, read in this process (not only this rank's share)."""
    h = hashlib.sha256()
    for i in range(ds.num_real, len(ds)):
        h.update(np.ascontiguousarray(ds[i][0]).tobytes())
    return h.hexdigest()


def _mix_hash(sampler: TorchSampler) -> str:
    """One SyntheticMix batch with the same seed on every rank: its rows, classes and images."""
    images, labels = torch.zeros(8, 1, 8, 8), torch.arange(8) % 3
    out, out_labels, mask = SyntheticMix(sampler, p=0.5, labels="balanced", seed=3, return_mask=True)(images, labels)
    return hashlib.sha256(out.numpy().tobytes() + out_labels.numpy().tobytes() + mask.numpy().tobytes()).hexdigest()


def _batched(items, n):
    return [items[i:i + n] for i in range(0, len(items), n)]


if __name__ == "__main__":
    main(sys.argv[1])
