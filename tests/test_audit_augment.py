"""Audit (issue 7) for augmenting: label types and counts in SyntheticDataset, its pool memory,
SyntheticMix's dtypes, zero-row batches and per-rank seeds, and TorchSampler leaving a live
generator alone."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from conftest import TINY, make_card
from synthaug import SynthaugError, SyntheticDataset, SyntheticMix, TorchSampler
from synthaug.models import create_generator

K = 3


@pytest.fixture(scope="module")
def sampler():
    from conftest import tiny_dcgan_sampler

    return tiny_dcgan_sampler(K)


def _items(n=12):
    """HW uint8 images with labels 0, 1, 2, 0, ... (every class present)."""
    return [np.full((8, 8), i, np.uint8) for i in range(n)], [i % K for i in range(n)]


def _tensor_items(n=12):
    """CHW uint8 tensors with int labels."""
    images, labels = _items(n)
    return [(torch.from_numpy(x)[None], y) for x, y in zip(images, labels)]


# ------------------------------------------------------------------ item 15: label types

@pytest.mark.parametrize("make_label,dtype", [
    (lambda y: torch.tensor(y), torch.int64),                    # TensorDataset's 0-d tensors
    (lambda y: torch.tensor(y, dtype=torch.int32), torch.int32),
    (lambda y: torch.tensor([y], dtype=torch.int16), torch.int16),  # one-element [1] labels
    (lambda y: np.int32(y), torch.int32),                        # numpy integers
    (lambda y: np.array(y, dtype=np.uint8), torch.uint8),
])
def test_synthetic_labels_come_in_the_real_labels_type_and_collate(sampler, make_label, dtype):
    images, labels = _items()
    real = [(torch.from_numpy(x)[None], make_label(y)) for x, y in zip(images, labels)]
    ds = SyntheticDataset(real, sampler, ratio=1.0)
    first_real, last_synthetic = ds[0][1], ds[len(ds) - 1][1]
    assert type(last_synthetic) is type(first_real)
    assert getattr(last_synthetic, "dtype", None) == getattr(first_real, "dtype", None)
    assert np.shape(last_synthetic) == np.shape(first_real)
    batch_images, batch_labels = next(iter(DataLoader(ds, batch_size=len(ds), shuffle=False)))
    assert batch_images.shape == (24, 1, 8, 8) and batch_labels.dtype == dtype
    expected = labels + ds.synthetic_labels.tolist()
    assert batch_labels.reshape(-1).tolist() == expected


def test_tensor_dataset_collates(sampler):
    images, labels = _items()
    real = TensorDataset(torch.from_numpy(np.stack(images))[:, None], torch.tensor(labels))
    ds = SyntheticDataset(real, sampler, per_class=2)
    _, batch_labels = next(iter(DataLoader(ds, batch_size=len(ds))))
    assert batch_labels.dtype == torch.int64 and batch_labels.tolist() == labels + [0, 0, 1, 1, 2, 2]


# ------------------------------------------------------------------ item 25: class counts

class NoNames(torch.utils.data.Dataset):
    """Labels 0..1 only, no classes attribute: the generator has 3 classes."""

    def __len__(self):
        return 6

    def __getitem__(self, i):
        return np.full((8, 8), i, np.uint8), [0, 0, 0, 0, 1, 1][i]


MISMATCH = ("the real labels span 2 classes (0..1) but the generator has 3 classes [c0, c1, c2]: pass classes=[...] "
            "naming the generator classes that get synthetic items, or give the dataset a classes attribute "
            "with the generator's class names")


@pytest.mark.parametrize("kwargs,explicit,counts", [
    ({"ratio": 1.0}, {"classes": [0, 1]}, [4, 2, 0]),
    ({"balance": True}, {"classes": ["c0", "c1"]}, [0, 2, 0]),
    ({"per_class": 3}, {"classes": [0, 1]}, [3, 3, 0]),
    ({"per_class": 3}, {"per_class": {0: 1, 1: 3}}, [1, 3, 0]),
])
def test_class_count_must_match_or_be_chosen(sampler, kwargs, explicit, counts):
    with pytest.raises(SynthaugError) as err:
        SyntheticDataset(NoNames(), sampler, **kwargs)
    assert str(err.value) == MISMATCH
    ds = SyntheticDataset(NoNames(), sampler, **{**kwargs, **explicit})
    assert ds.synthetic_counts.tolist() == counts
    assert {int(y) for y in ds.synthetic_labels} <= {0, 1}  # never a class the data lacks


# ------------------------------------------------------------------ items 16, 29: pool memory

def test_pools_need_no_torch_shared_memory(sampler, monkeypatch):
    # Docker's 64 MB /dev/shm: torch's shared memory fails. The pools must not need it.
    def no_shm(self, *args, **kwargs):
        raise RuntimeError("unable to write to file </torch_1_2>: No space left on device (28)")

    monkeypatch.setattr(torch.Tensor, "share_memory_", no_shm)
    monkeypatch.setattr(torch.UntypedStorage, "share_memory_", no_shm)
    ds = SyntheticDataset(_tensor_items(), sampler, ratio=1.0)
    assert not ds._pools.is_shared()
    loaded = torch.cat([x for x, _ in DataLoader(ds, batch_size=5, num_workers=0)])
    assert loaded.shape == (24, 1, 8, 8) and loaded[12:].float().std() > 0


@pytest.mark.parametrize("keep_in_memory,code,where,advice", [
    (True, errno.ENOMEM, "memory", "pass keep_in_memory=False to keep them in a temporary file on disk"),
    (False, errno.ENOSPC, "a temporary file in {tmp}", "free disk space or point TMPDIR at a larger disk"),
])
def test_pool_shortfall_is_one_line_with_the_size(sampler, monkeypatch, keep_in_memory, code, where, advice):
    def refuse(fd, offset, length):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "posix_fallocate", refuse)
    images, labels = _items()
    with pytest.raises(SynthaugError) as err:
        SyntheticDataset(list(zip(images, labels)), sampler, ratio=1.0, keep_in_memory=keep_in_memory)
    import tempfile

    mb = (64 + 2 * 12 * 64) / 2**20
    assert str(err.value) == (f"cannot reserve {mb:.1f} MB for the synthetic pools (2 epochs x 12 items of 1x8x8 "
                              f"uint8) in {where.format(tmp=tempfile.gettempdir())}: {os.strerror(code)}; ask "
                              f"for fewer synthetic items (ratio, per_class) or {advice}")


@pytest.mark.parametrize("keep_in_memory", [True, False])
def test_pools_reach_persistent_forked_workers_in_memory_or_on_disk(sampler, keep_in_memory):
    real = _tensor_items()
    ds = SyntheticDataset(real, sampler, ratio=1.0, keep_in_memory=keep_in_memory)
    reference = SyntheticDataset(real, sampler, ratio=1.0, prefetch=False)
    loader = DataLoader(ds, batch_size=6, num_workers=1, persistent_workers=True, multiprocessing_context="fork")
    for epoch in (1, 2):
        ds.set_epoch(epoch)
        reference.set_epoch(epoch)
        seen = torch.cat([x for x, _ in loader])
        assert torch.equal(seen, torch.stack([reference[i][0] for i in range(len(reference))])), epoch


PEAK_SCRIPT = """
import resource, sys, numpy as np, torch
from synthaug import SyntheticDataset
from synthaug.card import GeneratorCard
from synthaug.runtime.sampler import Sampler

class Grey(Sampler):
    def __init__(self, card):
        self.card, self.device = card, torch.device("cpu")
    def _generate(self, noise, labels):
        return torch.full((len(labels), *self.card.image_shape), 0.5)

card = GeneratorCard("dcgan", {}, [1, 128, 128], 2, ["a", "b"],
                     {"name": "z", "shape": [4], "distribution": "normal"}, {"range": [0, 1], "pixel_max": 255})
real = [(np.zeros((128, 128), np.uint8), i % 2) for i in range(100)]
SyntheticDataset(real, Grey(card), ratio=1.0, generate_batch=64).set_epoch(1)  # pages in torch's code
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ds = SyntheticDataset(real, Grey(card), ratio=32.0, generate_batch=16)
ds.set_epoch(1)  # both pools written
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) / 1024, 2 * ds.num_synthetic * 128 * 128 / 2**20)
"""


def test_pool_peak_memory_is_its_size_once(tmp_path):
    proc = subprocess.run([sys.executable, "-c", PEAK_SCRIPT], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak_mb, pools_mb = map(float, proc.stdout.split())
    assert pools_mb > 95  # two pools of 3200 items of 128x128
    # A copy (zeros, then share_memory_) would peak at twice the pools.
    assert peak_mb < 1.4 * pools_mb, f"peak {peak_mb:.0f} MB for {pools_mb:.0f} MB of pools"


# ------------------------------------------------------------------ item 17: dtypes, zero rows

@pytest.mark.parametrize("dtype", [torch.int32, torch.uint8, torch.int16])
@pytest.mark.parametrize("mode", ["replace", "append"])
@pytest.mark.parametrize("label_mode", ["same", "balanced"])
def test_mix_keeps_the_label_dtype(sampler, dtype, mode, label_mode):
    labels = (torch.arange(8) % K).to(dtype)
    out, out_labels, mask = SyntheticMix(sampler, p=0.5, mode=mode, labels=label_mode, return_mask=True)(
        torch.zeros(8, 1, 8, 8), labels)
    assert out_labels.dtype == dtype and out_labels.shape == (8 if mode == "replace" else 12,)
    assert int(mask.sum()) == 4 and torch.equal(out_labels[~mask], labels[~mask] if mode == "replace" else labels)
    assert 0 <= int(out_labels.min()) and int(out_labels.max()) < K
    if label_mode == "same" and mode == "replace":
        assert torch.equal(out_labels, labels)


def test_mix_refuses_labels_too_narrow_for_the_classes():
    torch.manual_seed(0)
    g = create_generator("dcgan", TINY["dcgan"]["config"], (1, 8, 8), 300).eval()
    mix = SyntheticMix(TorchSampler(g, make_card("dcgan", g, (1, 8, 8), 300)), p=0.5, labels="balanced")
    with pytest.raises(SynthaugError) as err:
        mix(torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.uint8))
    assert str(err.value) == ("labels of dtype torch.uint8 cannot hold the generator's classes 0..299: expected a "
                              "wider integer dtype")


@pytest.mark.parametrize("family", sorted(TINY))
@pytest.mark.parametrize("batch,p,mode", [(4, 0.0, "replace"), (0, 0.5, "replace"), (1, 0.5, "replace"),
                                          (1, 0.4, "append"), (0, 1.0, "append")])
def test_zero_synthetic_rows_leave_the_batch_alone(tiny_generator, family, batch, p, mode):
    module, card = tiny_generator(family, num_classes=K)
    sampler = TorchSampler(module, card)
    empty = sampler.sample_on_device(torch.empty(0, dtype=torch.int64), torch.Generator().manual_seed(0))
    assert empty.shape == (0, 1, 8, 8) and empty.dtype == torch.float32
    images, labels = torch.rand(batch, 1, 8, 8), torch.arange(batch) % K
    out, out_labels, mask = SyntheticMix(sampler, p=p, mode=mode, return_mask=True)(images, labels)
    assert out is images and out_labels is labels  # unchanged, not even copied
    assert mask.shape == (batch,) and not mask.any()


def test_filtered_sampler_does_not_judge_an_empty_batch(sampler):
    """A user's classifier may not accept an empty batch: zero rows never reach it."""
    from synthaug import FilteredSampler

    def classifier(images):
        if len(images) == 0:
            raise RuntimeError("empty batch")
        return torch.zeros(len(images), K)

    filtered = FilteredSampler(sampler, classifier)
    out = filtered.sample_on_device(torch.empty(0, dtype=torch.int64), torch.Generator().manual_seed(0))
    assert out.shape == (0, 1, 8, 8) and filtered.last_accepted.shape == (0,)


# ------------------------------------------------------------------ item 20: integer batches

@pytest.mark.parametrize("pixel_max,expected_max", [(None, 255), (16, 16)])
def test_mix_scales_synthetic_rows_to_an_integer_batch(sampler, pixel_max, expected_max):
    images, labels = torch.zeros(8, 1, 8, 8, dtype=torch.uint8), torch.zeros(8, dtype=torch.int64)
    out, _, mask = SyntheticMix(sampler, p=0.5, seed=5, pixel_max=pixel_max, return_mask=True)(images, labels)
    assert out.dtype == torch.uint8 and torch.equal(out[~mask], images[~mask])
    g = torch.Generator().manual_seed(5)
    rows = torch.randperm(8, generator=g)[:4]
    expected = sampler.sample_on_device(torch.zeros(4, dtype=torch.int64), g)
    assert torch.equal(out[rows], (expected.clamp(0, 1) * expected_max).round().to(torch.uint8))
    assert 1 < int(out[mask].max()) <= expected_max


def test_mix_refuses_normalize_on_an_integer_batch(sampler):
    mix = SyntheticMix(sampler, p=0.5, normalize=([0.5], [0.5]))
    with pytest.raises(SynthaugError) as err:
        mix(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.int64))
    assert str(err.value) == ("normalize applies to float batches, got torch.uint8 images (synthetic rows of "
                              "integer batches are scaled to 0..pixel_max instead)")


# ------------------------------------------------------------------ item 28: ranks

def _mix_rows(sampler, **kwargs):
    images, labels = torch.zeros(8, 1, 8, 8), torch.arange(8) % K
    return SyntheticMix(sampler, p=0.5, labels="balanced", seed=9, return_mask=True, **kwargs)(images, labels)


def test_mix_folds_the_rank_into_the_seed(sampler, monkeypatch):
    single = _mix_rows(sampler)
    rank0, rank1, rank2 = (_mix_rows(sampler, rank=r) for r in (0, 1, 2))
    assert all(torch.equal(a, b) for a, b in zip(single, rank0))  # single process: seed as before
    g = torch.Generator().manual_seed(9)  # today's draws, from the seed itself
    rows = torch.randperm(8, generator=g)[:4]
    classes = torch.randint(0, K, (4,), generator=g)
    torch.testing.assert_close(single[0][rows], sampler.sample_on_device(classes, g))
    assert not torch.equal(rank1[0], rank0[0]) and not torch.equal(rank2[0], rank1[0])
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda group=None: 1)
    assert all(torch.equal(a, b) for a, b in zip(_mix_rows(sampler), rank1))


# ------------------------------------------------------------------ item 27: a live generator

def test_torch_sampler_leaves_a_training_generator_alone(tiny_generator):
    module, card = tiny_generator("dcgan", num_classes=K)
    module.train()
    batchnorm = next(m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d))
    stats = batchnorm.running_mean.clone()
    images = TorchSampler(module, card).sample([0, 1, 2, 0], seed=1)
    assert module.training and all(m.training for m in module.modules())
    assert all(p.requires_grad for p in module.parameters())
    assert torch.equal(batchnorm.running_mean, stats)  # sampled in eval mode
    noise = torch.randn(4, *card.noise["shape"], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = module.eval()(noise, torch.tensor([0, 1, 2, 0]))
    module.train()
    torch.testing.assert_close(images, expected)
    before = [p.detach().clone() for p in module.parameters()]
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    module(torch.randn(4, *card.noise["shape"]), torch.tensor([0, 1, 2, 0])).mean().backward()
    optimizer.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, module.parameters()))
