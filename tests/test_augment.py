"""SyntheticDataset and SyntheticMix: formats, counts, determinism, workers, ranks, batches; label types
and dtypes, class counts, pool memory, zero-row and integer batches; TorchSampler leaving a live generator
alone."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from conftest import TINY, make_card
from exporters.onnx import export
from synthaug import OnnxSampler, SynthaugError, SyntheticDataset, SyntheticMix, TorchSampler
from synthaug.models import create_generator
from synthaug.seeding import derive

K = 3


@pytest.fixture(scope="module")
def sampler():
    from conftest import tiny_dcgan_sampler

    return tiny_dcgan_sampler(K)


class DigitsLike(torch.utils.data.Dataset):
    """HW uint8 arrays in 0..255, like an albumentations-style dataset; labels 0, 0, 1, 2, ..."""

    def __init__(self, n=12, kind="numpy", size=8):
        self.n, self.kind, self.size = n, kind, size
        self.labels_ = [0] * (n // 2) + [i % (K - 1) + 1 for i in range(n - n // 2)]

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        arr = np.full((self.size, self.size), i, dtype=np.uint8)
        if self.kind == "numpy_hwc":
            arr = arr[..., None]
        elif self.kind == "tensor_float":
            arr = torch.from_numpy(arr)[None].float() / 255
        elif self.kind == "tensor_uint8":
            arr = torch.from_numpy(arr)[None]
        elif self.kind == "pil":
            arr = Image.fromarray(arr)
        return arr, self.labels_[i]


@pytest.mark.parametrize("kind,check", [
    ("numpy", lambda x: isinstance(x, np.ndarray) and x.shape == (8, 8) and x.dtype == np.uint8),
    ("numpy_hwc", lambda x: isinstance(x, np.ndarray) and x.shape == (8, 8, 1) and x.dtype == np.uint8),
    ("tensor_float", lambda x: torch.is_tensor(x) and x.shape == (1, 8, 8) and x.dtype == torch.float32
     and 0 <= x.min() and x.max() <= 1),
    ("tensor_uint8", lambda x: torch.is_tensor(x) and x.shape == (1, 8, 8) and x.dtype == torch.uint8),
    ("pil", lambda x: isinstance(x, Image.Image) and x.mode == "L" and x.size == (8, 8)),
])
def test_synthetic_items_come_in_the_real_items_format(sampler, kind, check):
    ds = SyntheticDataset(DigitsLike(kind=kind), sampler, ratio=1.0, return_is_synthetic=True)
    real, synthetic = ds[0], ds[len(ds) - 1]
    assert check(real[0]) and check(synthetic[0])
    assert real[2] is False and synthetic[2] is True


def test_counts_ratio_per_class_classes_and_balance(sampler):
    real = DigitsLike(n=12)  # class counts 6, 3, 3
    assert SyntheticDataset(real, sampler, ratio=0.5).synthetic_counts.tolist() == [3, 2, 1]
    assert SyntheticDataset(real, sampler, per_class=4).synthetic_counts.tolist() == [4, 4, 4]
    assert SyntheticDataset(real, sampler, per_class={"c2": 5}).synthetic_counts.tolist() == [0, 0, 5]
    assert SyntheticDataset(real, sampler, ratio=1.0, classes=[1, 2]).synthetic_counts.tolist() == [0, 6, 6]
    balanced = SyntheticDataset(real, sampler, balance=True)
    assert balanced.synthetic_counts.tolist() == [0, 3, 3]
    labels = [balanced[i][1] for i in range(len(balanced))]
    assert np.bincount(labels).tolist() == [6, 6, 6]


def test_pool_is_the_sampler_output_for_each_items_class(sampler):
    ds = SyntheticDataset(DigitsLike(), sampler, per_class=2, format="tensor")
    expected = sampler.sample(ds.synthetic_labels, generator=torch.Generator().manual_seed(derive(0, 0)))
    pixels = (expected * 255).round().to(torch.uint8)
    for j in range(ds.num_synthetic):
        image, label = ds[ds.num_real + j]
        assert label == int(ds.synthetic_labels[j])
        assert torch.equal(image, pixels[j])


def test_items_are_a_pure_function_of_seed_epoch_index(sampler):
    a = SyntheticDataset(DigitsLike(), sampler, ratio=1.0, seed=5)
    b = SyntheticDataset(DigitsLike(), sampler, ratio=1.0, seed=5)
    c = SyntheticDataset(DigitsLike(), sampler, ratio=1.0, seed=6)
    last = len(a) - 1
    assert np.array_equal(a[last][0], b[last][0]) and not np.array_equal(a[last][0], c[last][0])
    epoch0 = a[last][0]
    a.set_epoch(1)
    assert not np.array_equal(a[last][0], epoch0)
    a.set_epoch(0)
    assert np.array_equal(a[last][0], epoch0)
    assert np.array_equal(a[0][0], DigitsLike()[0][0])  # real items untouched


def _collect(loader):
    return torch.cat([x.reshape(len(x), -1) for x, _ in loader])


@pytest.mark.parametrize("workers,persistent,context", [
    (0, False, None), (2, False, "fork"), (2, True, "fork"),
])
def test_dataloader_workers_see_each_epochs_pool(sampler, workers, persistent, context):
    ds = SyntheticDataset(DigitsLike(kind="tensor_uint8"), sampler, ratio=1.0)
    loader = DataLoader(ds, batch_size=5, num_workers=workers, persistent_workers=persistent,
                        multiprocessing_context=context)
    seen = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        seen.append(_collect(loader))
        direct = torch.stack([ds[i][0].reshape(-1) for i in range(len(ds))])
        assert torch.equal(seen[-1], direct), f"epoch {epoch}: workers did not see the epoch's pool"
    assert not torch.equal(seen[0], seen[1])


@pytest.mark.parametrize("workers", [0, 2])
def test_refresh_every_k_epochs_share_one_pool(sampler, workers):
    # refresh_every=2: epochs 0 and 1 serve pool 0, epochs 2 and 3 pool 1 (the same images as a
    # refresh_every=1 dataset's epoch 1), to workers as well as in the main process.
    ds = SyntheticDataset(DigitsLike(kind="tensor_uint8"), sampler, ratio=1.0, refresh_every=2)
    every_epoch = SyntheticDataset(DigitsLike(kind="tensor_uint8"), sampler, ratio=1.0)
    loader = DataLoader(ds, batch_size=5, num_workers=workers, persistent_workers=workers > 0)
    seen = []
    for epoch in range(4):
        ds.set_epoch(epoch)
        seen.append(_collect(loader))
    assert torch.equal(seen[0], seen[1]) and torch.equal(seen[2], seen[3])
    assert not torch.equal(seen[1], seen[2])
    every_epoch.set_epoch(1)
    assert torch.equal(seen[2], _collect(DataLoader(every_epoch, batch_size=5)))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_refresh_every_must_be_a_whole_number_of_epochs(sampler, bad):
    with pytest.raises(SynthaugError, match=rf"^refresh_every: expected a whole number of epochs >= 1, got {bad!r}$"):
        SyntheticDataset(DigitsLike(), sampler, ratio=1.0, refresh_every=bad)


def test_distributed_sampler_gives_each_synthetic_item_to_one_rank(sampler):
    world = 2
    ranks = []
    for rank in range(world):  # each rank builds its own dataset, as separate processes would
        ds = SyntheticDataset(DigitsLike(n=12), sampler, ratio=1.0, seed=3)
        dist = DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=True, seed=0)
        dist.set_epoch(1)
        ds.set_epoch(1)
        ranks.append({i: ds[i][0].tobytes() for i in dist})
    synthetic = [i for r in ranks for i in r if i >= 12]
    assert len(synthetic) == len(set(synthetic)) == 12
    assert set(ranks[0]) | set(ranks[1]) == set(range(24))


def test_transform_applies_to_real_and_synthetic_alike(sampler):
    ds = SyntheticDataset(DigitsLike(), sampler, ratio=0.5, transform=lambda x: torch.from_numpy(x)[None].float())
    for i in (0, len(ds) - 1):
        assert ds[i][0].shape == (1, 8, 8) and ds[i][0].dtype == torch.float32


def test_albumentations_pipeline_as_transform(sampler):
    A = pytest.importorskip("albumentations")  # a declared test dependency: installed by .ci/run
    pipeline = A.Compose([A.HorizontalFlip(p=1.0), A.Normalize(mean=0.5, std=0.5, max_pixel_value=255)])
    ds = SyntheticDataset(DigitsLike(), sampler, ratio=0.5, transform=pipeline)
    for i in (0, len(ds) - 1):
        assert ds[i][0].dtype == np.float32 and -1.0 <= ds[i][0].min() and ds[i][0].max() <= 1.0


def test_onnx_sampler_pool_in_persistent_spawned_workers(tiny_generator, tmp_path):
    # Spawn pickles the dataset: the pool and epoch travel as shared memory, the sampler not at all.
    module, card = tiny_generator("dcgan", num_classes=K)
    path = export((module, card), tmp_path / "m.onnx").path
    ds = SyntheticDataset(DigitsLike(kind="tensor_uint8"), OnnxSampler(str(path)), ratio=1.0)
    loader = DataLoader(ds, batch_size=6, num_workers=2, persistent_workers=True, multiprocessing_context="spawn")
    seen = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        seen.append(_collect(loader))
        assert torch.equal(seen[-1], torch.stack([ds[i][0].reshape(-1) for i in range(len(ds))]))
    assert not torch.equal(seen[0], seen[1])


@pytest.mark.parametrize("kwargs,message", [
    ({"ratio": 0}, "ratio: expected a number in (0, 100]"),
    ({"ratio": 0.5, "per_class": 2}, "at most one of ratio, per_class or balance"),
    ({"per_class": -1}, "per_class: expected a non-negative integer"),
    ({"ratio": 1.0, "classes": [7]}, "class name or index 0..2"),
    ({"ratio": 1.0, "format": "jpeg"}, "format: expected auto or one of"),
])
def test_bad_options(sampler, kwargs, message):
    with pytest.raises(SynthaugError) as err:
        SyntheticDataset(DigitsLike(), sampler, **kwargs)
    assert message in str(err.value)


def test_mismatched_datasets_are_refused(sampler):
    class Named(DigitsLike):
        classes = ["x", "y", "z"]

    with pytest.raises(SynthaugError, match=r"classes \[x, y, z\] differ from the generator's \[c0, c1, c2\]"):
        SyntheticDataset(Named(), sampler, ratio=1.0)
    with pytest.raises(SynthaugError, match="label 5, outside the generator's classes 0..2"):
        SyntheticDataset(DigitsLike(), sampler, ratio=1.0, labels=[5] * 12)
    with pytest.raises(SynthaugError, match="generator makes 8x8 images but the real ones are 16x16"):
        SyntheticDataset(DigitsLike(size=16), sampler, ratio=1.0)
    resized = SyntheticDataset(DigitsLike(size=16), sampler, ratio=1.0, resize=True)
    assert resized[len(resized) - 1][0].shape == (16, 16)
    with pytest.raises(SynthaugError, match="expected an \\(image, label\\) pair, got tuple of length 3"):
        SyntheticDataset([(np.zeros((8, 8), np.uint8), 0, "x")], sampler, ratio=1.0)


def _items(n=12):
    """HW uint8 images with labels 0, 1, 2, 0, ... (every class present)."""
    return [np.full((8, 8), i, np.uint8) for i in range(n)], [i % K for i in range(n)]


def _tensor_items(n=12):
    """CHW uint8 tensors with int labels."""
    images, labels = _items(n)
    return [(torch.from_numpy(x)[None], y) for x, y in zip(images, labels)]


# --------------------------------------------------------------------------- SyntheticDataset: label types

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


# --------------------------------------------------------------------------- SyntheticDataset: class counts

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


# --------------------------------------------------------------------------- SyntheticDataset: pool memory

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


# --------------------------------------------------------------------------- SyntheticMix

def test_mix_replaces_a_fraction_and_keeps_the_rest(sampler):
    mix = SyntheticMix(sampler, p=0.5, normalize=([0.5], [0.5]), return_mask=True)
    images = torch.full((10, 1, 8, 8), 7.0)
    labels = torch.arange(10) % K
    out, out_labels, mask = mix(images, labels)
    assert out.shape == images.shape and out.dtype == images.dtype and int(mask.sum()) == 5
    assert torch.equal(out[~mask], images[~mask])
    assert out[mask].min() >= -1 and out[mask].max() <= 1  # normalised like the real batch
    assert torch.equal(out_labels, labels)  # labels="same"


def test_mix_is_seeded_and_labels_honoured(sampler):
    images, labels = torch.zeros(16, 1, 8, 8), torch.zeros(16, dtype=torch.int64)
    a = SyntheticMix(sampler, p=0.5, seed=1)(images, labels)[0]
    b = SyntheticMix(sampler, p=0.5, seed=1)(images, labels)[0]
    c = SyntheticMix(sampler, p=0.5, seed=2)(images, labels)[0]
    assert torch.equal(a, b) and not torch.equal(a, c)
    only_two = SyntheticMix(sampler, p=1.0, labels=[0, 0, 1], return_mask=True)
    _, out_labels, mask = only_two(images, labels)
    assert mask.all() and (out_labels == 2).all()
    balanced = SyntheticMix(sampler, p=1.0, labels="balanced")(torch.zeros(300, 1, 8, 8), torch.zeros(300, dtype=torch.int64))[1]
    assert set(balanced.tolist()) == {0, 1, 2}


def test_mix_synthetic_rows_match_their_labels(sampler):
    # With the same noise, a synthetic row must equal the generator's image for its new label.
    mix = SyntheticMix(sampler, p=1.0, labels=[0, 1, 0], seed=4)
    images, labels = torch.zeros(6, 1, 8, 8), torch.zeros(6, dtype=torch.int64)
    out, out_labels = mix(images, labels)
    g = torch.Generator().manual_seed(4)
    rows = torch.randperm(6, generator=g)
    classes = torch.multinomial(torch.tensor([0.0, 1.0, 0.0]), 6, replacement=True, generator=g)
    expected = sampler.sample_on_device(classes, g)
    torch.testing.assert_close(out[rows], expected)
    assert (out_labels == 1).all()


def test_mix_soft_labels_and_append_mode(sampler):
    soft = torch.softmax(torch.randn(8, K), dim=1)
    out, out_labels, mask = SyntheticMix(sampler, p=0.25, return_mask=True)(torch.zeros(8, 1, 8, 8), soft)
    assert out_labels.shape == (8, K) and torch.equal(out_labels[~mask], soft[~mask])
    assert torch.equal(out_labels[mask].sum(1), torch.ones(2)) and set(out_labels[mask].unique().tolist()) == {0, 1}
    assert torch.equal(out_labels[mask].argmax(1), soft[mask].argmax(1))
    out, out_labels = SyntheticMix(sampler, p=0.5, mode="append")(torch.zeros(8, 1, 8, 8), torch.zeros(8, dtype=torch.int64))
    assert out.shape[0] == 12 and out_labels.shape[0] == 12


def test_mix_keeps_half_precision_and_works_under_compile(sampler):
    half = SyntheticMix(sampler, p=0.5)(torch.zeros(4, 1, 8, 8, dtype=torch.bfloat16), torch.arange(4) % K)[0]
    assert half.dtype == torch.bfloat16
    images, labels = torch.zeros(8, 1, 8, 8), torch.arange(8) % K
    eager = SyntheticMix(sampler, p=0.5, seed=3)(images, labels)[0]
    compiled = torch.compile(SyntheticMix(sampler, p=0.5, seed=3))(images, labels)[0]
    torch.testing.assert_close(compiled, eager)


@pytest.mark.parametrize("kwargs,call,message", [
    ({"p": 1.5}, None, "p: expected a fraction in [0, 1]"),
    ({"labels": "rare"}, None, "labels: expected 'same', 'balanced'"),
    ({"labels": [1, 2]}, None, "expected 3 non-negative class weights"),
    ({"normalize": ([0.5, 0.5], [0.5, 0.5])}, None, "normalize: expected (mean, std) with 1 or 1 values"),
    ({}, (torch.zeros(4, 3, 8, 8), torch.zeros(4, dtype=torch.int64)), "makes 1-channel images, the batch has 3"),
    ({}, (torch.zeros(4, 1, 16, 16), torch.zeros(4, dtype=torch.int64)), "pass resize=True"),
    ({}, (torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, 2, 9])), "expected labels in 0..2"),
    ({}, (torch.zeros(4, 1, 8, 8), torch.zeros(4, 5)), "soft [B, 3]"),
])
def test_mix_bad_input(sampler, kwargs, call, message):
    with pytest.raises(SynthaugError) as err:
        mix = SyntheticMix(sampler, **kwargs)
        mix(*call)
    assert message in str(err.value)


def test_background_prefetch_gives_the_same_pools(sampler):
    eager = SyntheticDataset(DigitsLike(), sampler, ratio=1.0, seed=2, prefetch=False)
    prefetched = SyntheticDataset(DigitsLike(), sampler, ratio=1.0, seed=2)
    for epoch in (1, 2, 4):
        eager.set_epoch(epoch)
        prefetched.set_epoch(epoch)
        assert all(np.array_equal(eager[i][0], prefetched[i][0]) for i in range(12, 24)), epoch


def test_process_exits_cleanly_while_a_prefetch_runs(tmp_path):
    import subprocess
    import sys

    script = (
        "import numpy as np, torch\n"
        "from synthaug import SyntheticDataset, TorchSampler\n"
        "from synthaug.card import GeneratorCard\n"
        "from synthaug.models import create_generator\n"
        "g = create_generator('dcgan', None, (1, 8, 8), 2)\n"
        "card = GeneratorCard('dcgan', {}, [1, 8, 8], 2, ['a', 'b'], g.noise_spec(), {'range': [0, 1]})\n"
        "real = [(np.zeros((8, 8), np.uint8), i % 2) for i in range(400)]\n"
        "ds = SyntheticDataset(real, TorchSampler(g, card), ratio=3.0)\n"  # exits while epoch 1 generates
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------- SyntheticMix: label dtypes, zero rows

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


# --------------------------------------------------------------------------- SyntheticMix: integer batches

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


# --------------------------------------------------------------------------- SyntheticMix: ranks

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


# --------------------------------------------------------------------------- TorchSampler: a live generator

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
