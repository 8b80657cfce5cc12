"""SyntheticDataset and SyntheticMix: formats, counts, determinism, workers, ranks, batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler

from exporters.onnx import export
from synthaug import OnnxSampler, SynthaugError, SyntheticDataset, SyntheticMix
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
