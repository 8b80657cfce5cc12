"""Reading data (``load_data``): one-hot labels, 16-bit and float files, EXIF orientation and
transparency, non-finite pixels, hidden folders, class names a card cannot hold, and memory
bounded by the output size when reading large image folders.

(The holdout split's tests live in test_fit.py; what the CLI says about bad data, in
test_bad_input.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import synthaug
from synthaug.errors import SynthaugError


def first_line_error(call, *args, **kwargs) -> str:
    """The message of the SynthaugError ``call`` raises, checked to be one line."""
    with pytest.raises(synthaug.SynthaugError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def folder_with(root: Path, image: Image.Image, name: str, **save_args) -> Path:
    """An image folder: class ``a`` holds ``image`` saved as ``name``, class ``b`` a grey square."""
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    image.save(root / "a" / name, **save_args)
    Image.new("L", image.size, 77).save(root / "b" / "grey.png")
    return root


def class_a_pixels(root: Path, **kwargs) -> np.ndarray:
    """``load_data(root)``'s single class-``a`` image as an HWC uint8 array."""
    data = synthaug.load_data(root, **kwargs)
    (index,) = torch.nonzero(data.labels == 0).flatten().tolist()
    return data.images[index].permute(1, 2, 0).numpy()


# --------------------------------------------------------------------------- one-hot labels


class LabelledAs(torch.utils.data.Dataset):
    """Six grey 8x8 images whose labels are ``make_label(class_index)``; no ``classes``."""

    def __init__(self, make_label, classes=(0, 1, 3, 0, 1, 3)):
        self.make_label, self.class_of = make_label, list(classes)

    def __len__(self):
        return len(self.class_of)

    def __getitem__(self, i):
        return torch.full((1, 8, 8), 0.5), self.make_label(self.class_of[i])


@pytest.mark.parametrize("make_label", [
    pytest.param(lambda c: torch.nn.functional.one_hot(torch.tensor(c), 4), id="int64-tensor"),
    pytest.param(lambda c: torch.nn.functional.one_hot(torch.tensor(c), 4).float(), id="float-tensor"),
    pytest.param(lambda c: np.eye(4, dtype=np.uint8)[c], id="numpy"),
    pytest.param(lambda c: torch.nn.functional.one_hot(torch.tensor(c), 4).bool(), id="bool-tensor"),
])
def test_exact_one_hot_labels_are_read_as_class_indices(make_label):
    data = synthaug.load_data(LabelledAs(make_label))
    assert data.labels.tolist() == [0, 1, 3, 0, 1, 3]
    assert data.class_names == ["0", "1", "2", "3"]  # the vector's length is the class count


@pytest.mark.parametrize("make_label", [
    pytest.param(lambda c: torch.tensor(c), id="0-d"),
    pytest.param(lambda c: torch.tensor([c]), id="one-element"),
    pytest.param(lambda c: np.int32(c), id="numpy-int"),
])
def test_integer_labels_still_read_as_before(make_label):
    """Guard (passes before and after): the one-hot rule leaves single-element labels alone."""
    data = synthaug.load_data(LabelledAs(make_label, classes=(0, 1, 1, 0)))
    assert data.labels.tolist() == [0, 1, 1, 0] and data.class_names == ["0", "1"]


SOFT = " that is not one-hot (soft labels are not supported)"


@pytest.mark.parametrize("label, expected", [
    pytest.param(torch.tensor([0.2, 0.8]), "a 0-d tensor or a one-hot vector), got a tensor of shape (2,)" + SOFT,
                 id="soft"),
    pytest.param(torch.tensor([1, 1, 0]), "a 0-d tensor or a one-hot vector), got a tensor of shape (3,)" + SOFT,
                 id="two-hot"),
    pytest.param(torch.zeros(2, 2), "a 0-d tensor or a one-hot vector), got a tensor of shape (2, 2)", id="matrix"),
    pytest.param(np.array([0.5, 0.5]), "a 0-d array or a one-hot vector), got an array of shape (2,)" + SOFT,
                 id="numpy-soft"),
])
def test_labels_that_are_not_one_hot_are_refused_in_one_line(label, expected):
    message = first_line_error(synthaug.load_data, LabelledAs(lambda c: label))
    assert message == f"dataset item 0: expected an integer label (an int, {expected}"


def test_one_hot_labels_of_different_lengths_are_refused():
    dataset = LabelledAs(lambda c: torch.nn.functional.one_hot(torch.tensor(c), 4 + c % 2))
    assert first_line_error(synthaug.load_data, dataset) == \
        "dataset item 1: expected one-hot labels of one length, got lengths 4, 5"


# --------------------------------------------------------------------------- 16-bit and float pixels


@pytest.mark.parametrize("array, name, expected", [
    pytest.param(np.uint16(32768), "x.png", 128, id="png-16bit-half"),
    pytest.param(np.uint16(65535), "x.png", 255, id="png-16bit-white"),
    pytest.param(np.uint16(257 * 100), "x.png", 100, id="png-16bit-100"),
    pytest.param(np.uint16(40000), "x.tif", 156, id="tiff-16bit"),
    pytest.param(np.int32(40000), "x.tif", 156, id="tiff-int32-in-16bit-range"),
    pytest.param(np.float32(0.5), "x.tif", 128, id="tiff-float-unit"),
    pytest.param(np.float32(200.0), "x.tiff", 200, id="tiff-float-0-255"),
])
def test_16bit_and_float_files_are_scaled_not_clipped(tmp_path, array, name, expected):
    image = Image.fromarray(np.full((8, 8), array))
    root = folder_with(tmp_path / "data", image, name)
    pixels = class_a_pixels(root)
    assert pixels.shape == (8, 8, 1)
    assert np.unique(pixels).tolist() == [expected]


@pytest.mark.parametrize("array, expected", [
    pytest.param(np.float32(-0.5), "expected float pixels in [0, 1] or [0, 255], got [-0.5, -0.5]", id="negative"),
    pytest.param(np.float32(300.0), "expected float pixels in [0, 1] or [0, 255], got [300, 300]", id="above-255"),
    pytest.param(np.float32(np.nan), "expected finite float pixels, got nan", id="nan"),
    pytest.param(np.int32(70000), "expected 16-bit pixel values in 0..65535, got [70000, 70000]", id="int32"),
])
def test_float_and_int_files_out_of_range_are_refused(tmp_path, array, expected):
    root = folder_with(tmp_path / "data", Image.fromarray(np.full((8, 8), array)), "x.tif")
    assert first_line_error(synthaug.load_data, root) == f"{root / 'a' / 'x.tif'}: {expected}"


class PilItems(torch.utils.data.Dataset):
    def __init__(self, *images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], i % 2


def test_16bit_and_float_pil_images_in_a_dataset_are_scaled():
    half_float = Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32))
    half_16bit = Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16))
    data = synthaug.load_data(PilItems(half_float, half_16bit))
    assert data.images.unique().tolist() == [128]


# --------------------------------------------------------------------------- EXIF orientation, transparency


@pytest.mark.parametrize("side", [16, 256])
def test_jpeg_exif_orientation_is_applied(tmp_path, side):
    """Stored top half white; orientation 6 (rotate 90° clockwise to view) puts white on the right.
    256 px read at 16 goes through the codec's reduced decoding, 16 px does not."""
    stored = np.zeros((side, side), dtype=np.uint8)
    stored[: side // 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    root = folder_with(tmp_path / "data", Image.fromarray(stored), "x.jpg", exif=exif, quality=95)
    pixels = class_a_pixels(root, image_size=16)[..., 0].astype(int)
    assert pixels[:, 10:].mean() > 230 and pixels[:, :6].mean() < 25, pixels
    assert abs(pixels[:8].mean() - pixels[8:].mean()) < 10  # not the unrotated top/bottom split


def _rgba(colour_alpha: list[tuple[int, int, int, int]]) -> Image.Image:
    return Image.fromarray(np.array([colour_alpha] * 8, dtype=np.uint8).repeat(2, axis=1))


def _palette_with_transparency() -> Image.Image:
    img = Image.fromarray(np.array([[0, 1, 2, 1]] * 8, dtype=np.uint8).repeat(2, axis=1), mode="P")
    img.putpalette([255, 255, 255, 255, 0, 0, 0, 0, 255] + [0] * 759)
    img.info["transparency"] = 0  # index 0 (white) is see-through
    return img


def _colour_key() -> Image.Image:
    img = Image.fromarray(np.array([[[255, 255, 255], [255, 0, 0], [0, 0, 255], [255, 0, 0]]] * 8,
                                   dtype=np.uint8).repeat(2, axis=1))
    img.info["transparency"] = (255, 255, 255)
    return img


# Each image is 8x8 of four 2-pixel-wide columns; expected: the RGB of each column.
@pytest.mark.parametrize("image, expected", [
    pytest.param(_rgba([(255, 255, 255, 0), (255, 0, 0, 255), (255, 255, 255, 128), (0, 0, 255, 255)]),
                 [(0, 0, 0), (255, 0, 0), (128, 128, 128), (0, 0, 255)], id="RGBA"),
    pytest.param(Image.fromarray(np.array([[[200, 0], [200, 255], [200, 64], [10, 255]]] * 8, dtype=np.uint8)
                                 .repeat(2, axis=1), mode="LA"),
                 [(0, 0, 0), (200, 200, 200), (50, 50, 50), (10, 10, 10)], id="LA"),
    pytest.param(_palette_with_transparency(), [(0, 0, 0), (255, 0, 0), (0, 0, 255), (255, 0, 0)], id="P-tRNS"),
    pytest.param(_colour_key(), [(0, 0, 0), (255, 0, 0), (0, 0, 255), (255, 0, 0)], id="RGB-colour-key"),
])
def test_transparency_is_composited_onto_black(tmp_path, image, expected):
    root = folder_with(tmp_path / "data", image, "x.png", transparency=image.info.get("transparency"))
    pixels = class_a_pixels(root, channels=3).astype(int)
    columns = [tuple(pixels[:, 2 * k:2 * k + 2].reshape(-1, 3).mean(0).round().astype(int)) for k in range(4)]
    assert [tuple(int(v) for v in col) for col in columns] == expected
    assert synthaug.data.ALPHA_BACKGROUND == 0


# --------------------------------------------------------------------------- non-finite pixels


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_pixels_in_a_dataset_are_refused_with_the_item(bad):
    images = torch.full((3, 1, 8, 8), 0.5)
    images[1, 0, 2, 3] = bad
    dataset = torch.utils.data.TensorDataset(images, torch.tensor([0, 1, 0]))
    assert first_line_error(synthaug.load_data, dataset) == \
        f"dataset item 1: expected finite float pixels, got {bad}"


# --------------------------------------------------------------------------- hidden folders


def test_files_in_hidden_folders_at_any_depth_are_skipped(tmp_path):
    root = tmp_path / "data"
    visible = ["cat/a.png", "cat/sub/b.png", "dog/c.png"]
    hidden = ["cat/.thumbnails/x.png", "cat/sub/.ipynb_checkpoints/y.png", "dog/.cache/deeper/z.png",
              "dog/.ipynb_checkpoints/notes-checkpoint.ipynb", "dog/.hidden.png"]
    for rel in visible + hidden:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".png"):
            Image.new("L", (8, 8), 9).save(root / rel)
        else:
            (root / rel).write_text("{}")
    data = synthaug.load_data(root)
    assert data.class_names == ["cat", "dog"] and data.class_counts() == [2, 1]


# --------------------------------------------------------------------------- memory follows the output size


def _gradient(side: int) -> Image.Image:
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    arr = np.empty((side, side, 3), dtype=np.uint8)
    arr[..., 0], arr[..., 1], arr[..., 2] = ramp[None, :], ramp[:, None], 128
    return Image.fromarray(arr)


# VmHWM (this process's own peak, reset through clear_refs where allowed) rather than ru_maxrss:
# on Linux ru_maxrss survives exec, so a child would start from pytest's own peak.
PEAK_SCRIPT = textwrap.dedent("""
    import json, re, sys
    from synthaug.data import load_data

    def mib(key):
        return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024

    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # peak := current, so import-time peaks do not hide the reading's
    except OSError:
        pass
    before = mib("VmRSS")
    data = load_data(sys.argv[1], image_size=8)
    print(json.dumps({"growth_mb": mib("VmHWM") - before, "shape": list(data.images.shape)}))
""")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_large_image_folder_peak_memory_follows_the_output_size(tmp_path):
    """Six 3000x3000 RGB files (27 MB each decoded, 162 MB together) read to 8x8: only one full
    image may be held at a time (PNG), JPEGs are decoded reduced."""
    big = _gradient(3000)
    for cls, suffix, args in [("png", "png", {"compress_level": 1}), ("jpg", "jpg", {"quality": 90})]:
        (tmp_path / "data" / cls).mkdir(parents=True)
        big.save(tmp_path / "data" / cls / f"0.{suffix}", **args)
        for i in (1, 2):
            (tmp_path / "data" / cls / f"{i}.{suffix}").write_bytes((tmp_path / "data" / cls / f"0.{suffix}").read_bytes())
    proc = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["shape"] == [6, 3, 8, 8]
    assert result["growth_mb"] < 100, result  # reading everything at full size first: > 162


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_large_files_read_shrunk_match_resizing_the_full_image(tmp_path, suffix):
    """Guard for reading shrunk (passes with or without it): shrinking while reading gives
    nearly the pixels that decoding at full size, centre-cropping and resizing gave."""
    from synthaug.data.images import to_tensor

    image = _gradient(640).crop((0, 0, 640, 400))  # non-square: the centre crop matters
    root = folder_with(tmp_path / "data", image, f"x.{suffix}", quality=95)
    shrunk = class_a_pixels(root, image_size=16).astype(int)
    with Image.open(root / "a" / f"x.{suffix}") as full:
        reference = to_tensor([np.asarray(full.convert("RGB"))], 16, 3)[0].permute(1, 2, 0).numpy().astype(int)
    assert np.abs(shrunk - reference).max() <= 3


# --------------------------------------------------------------------------- class names


def test_class_names_a_card_cannot_hold_are_refused_before_training(tmp_path):
    """An empty class name used to train for the whole fit and then fail at the first checkpoint's
    card; the reader now refuses it up front and nothing is written."""
    path = tmp_path / "d.npz"
    np.savez(path, images=np.zeros((4, 8, 8), np.uint8), labels=np.array([0, 1, 0, 1]),
             class_names=np.array(["cat", ""]))
    with pytest.raises(SynthaugError, match=r"d\.npz: class_names must be non-empty strings .* at index 1"):
        synthaug.fit(path, out=tmp_path / "run", steps=1, progress=False)
    assert not (tmp_path / "run").exists()
