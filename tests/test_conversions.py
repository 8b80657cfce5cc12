"""Images that had to be converted while read are counted and said (issue 11, "Bad input").

``load_data`` counts every conversion in ``ImageData.conversions`` (kind -> number of images) and
says them in one warning on the ``synthaug`` logger: a colour folder read as 1 channel (PIL's
ITU-R 601-2 luma), a grey folder read as 3 (grey repeated), and palette, greyscale+alpha and RGBA
files mixed with RGB ones (alpha composited onto black). Nothing converted: no warning.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from conftest import run_cli

import synthaug

LUMA_NOTE = "colour -> greyscale (luma: 0.299 R + 0.587 G + 0.114 B)"
ALPHA_NOTE = "(alpha composited onto black)"
_rng = np.random.default_rng(11)


def save(path: Path, img: Image.Image, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **options)
    return path


def random_folder(root: Path, mode: str, per_class: int = 2) -> Path:
    """Two classes of 8x8 random ``mode`` ("RGB" or "L") PNGs: ``a/0.png, a/1.png, b/0.png, ...``."""
    shape = (8, 8, 3) if mode == "RGB" else (8, 8)
    for name in ("a", "b"):
        for i in range(per_class):
            save(root / name / f"{i}.png", Image.fromarray(_rng.integers(0, 256, shape, dtype=np.uint8)))
    return root


def conversion_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "synthaug" and r.levelno == logging.WARNING and r.getMessage().startswith("converted")]


def load_logged(root, caplog, **options):
    """``synthaug.load_data(root, **options)`` and the conversion warnings it logged."""
    with caplog.at_level(logging.WARNING, logger="synthaug"):
        data = synthaug.load_data(root, **options)
    return data, conversion_warnings(caplog)


def hwc(data, index: int) -> np.ndarray:
    return data.images[index].permute(1, 2, 0).numpy().astype(int)


def test_colour_folder_read_as_one_channel_is_luma(tmp_path, caplog):
    root = random_folder(tmp_path / "colour", "RGB")
    data, warned = load_logged(root, caplog, channels=1)
    assert data.image_shape == (1, 8, 8)
    rgb = np.asarray(Image.open(root / "a" / "0.png")).astype(int)
    luma = (rgb[..., 0] * 299 + rgb[..., 1] * 587 + rgb[..., 2] * 114 + 500) // 1000  # rounded half up
    assert (hwc(data, 0)[..., 0] == luma).all()
    assert data.conversions == {"colour -> greyscale": 4}
    assert warned == [f"converted 4 of 4 image(s) to 1x8x8 greyscale: 4 {LUMA_NOTE}"]


def test_grey_folder_read_as_three_channels_repeats_the_grey(tmp_path, caplog):
    root = random_folder(tmp_path / "grey", "L")
    data, warned = load_logged(root, caplog, channels=3)
    assert data.image_shape == (3, 8, 8)
    grey = np.asarray(Image.open(root / "b" / "1.png")).astype(int)
    assert all((hwc(data, 3)[..., c] == grey).all() for c in range(3))
    assert data.conversions == {"greyscale -> colour": 4}
    assert warned == ["converted 4 of 4 image(s) to 3x8x8 RGB: 4 greyscale -> colour (grey repeated in 3 channels)"]


def test_cli_fit_colour_folder_with_channels_1_warns_once(tmp_path, capsys, caplog):
    root = random_folder(tmp_path / "colour", "RGB", per_class=3)
    with caplog.at_level(logging.WARNING, logger="synthaug"):
        code, out, err = run_cli(capsys, "fit", root, "--out", tmp_path / "run", "--steps", "1", "--no-progress",
                                 "--set", "g_width=8", "--set", "d_width=8", "--channels", "1")
    assert code == 0, err
    assert conversion_warnings(caplog) == [f"converted 6 of 6 image(s) to 1x8x8 greyscale: 6 {LUMA_NOTE}"]
    # The fit summary (stdout JSON) and the card count them too.
    assert json.loads(out)["converted"] == {"colour -> greyscale": 6}
    assert json.loads((tmp_path / "run" / "card.json").read_text())["dataset"]["converted"] == \
        {"colour -> greyscale": 6}


def _palette_image(transparent: bool) -> tuple[Image.Image, dict]:
    """Left half index 0 (white; transparent when asked), right half index 1 (10, 200, 30)."""
    img = Image.new("P", (8, 8), 0)
    img.putpalette([255, 255, 255, 10, 200, 30] + [0, 0, 0] * 254)
    img.paste(1, (4, 0, 8, 8))
    return img, ({"transparency": 0} if transparent else {})


def _halves(left, right, channels: int = 3) -> np.ndarray:
    out = np.empty((8, 8, channels), dtype=int)
    out[:, :4], out[:, 4:] = left, right
    return out


def test_mixed_folder_counts_each_kind_and_composites_onto_black(tmp_path, caplog):
    root = tmp_path / "mixed"
    rgb = _rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    save(root / "a" / "1_rgb.png", Image.fromarray(rgb))
    save(root / "a" / "2_palette.png", *_palette_image(transparent=False)[:1])
    img, options = _palette_image(transparent=True)
    save(root / "a" / "3_palette_alpha.png", img, **options)
    # alpha 0 on the left (the colour under it must not show), 51 = 255/5 on the right: colour x 0.2
    alpha = _halves(0, 51, channels=1)[..., 0].astype(np.uint8)
    la = np.dstack([np.full((8, 8), 200, np.uint8), alpha])
    save(root / "b" / "4_grey_alpha.png", Image.fromarray(la, "LA"))
    rgba = np.dstack([np.broadcast_to(np.array([250, 100, 50], np.uint8), (8, 8, 3)), alpha])
    save(root / "b" / "5_rgba.png", Image.fromarray(rgba, "RGBA"))
    with caplog.at_level(logging.WARNING, logger="synthaug"):
        data = synthaug.load_data(root)

    assert data.image_shape == (3, 8, 8)
    assert (hwc(data, 0) == rgb).all()  # RGB: as it was
    assert (hwc(data, 1) == _halves((255, 255, 255), (10, 200, 30))).all()
    assert (hwc(data, 2) == _halves((0, 0, 0), (10, 200, 30))).all()
    assert (hwc(data, 3) == _halves((0, 0, 0), (40, 40, 40))).all()
    assert (hwc(data, 4) == _halves((0, 0, 0), (50, 20, 10))).all()
    assert data.conversions == {"palette": 1, "palette+alpha": 1, "greyscale+alpha": 1, "RGBA": 1,
                                "greyscale -> colour": 1}
    assert conversion_warnings(caplog) == [
        f"converted 4 of 5 image(s) to 3x8x8 RGB: 1 palette, 1 palette+alpha {ALPHA_NOTE}, "
        f"1 greyscale+alpha {ALPHA_NOTE}, 1 RGBA {ALPHA_NOTE}, 1 greyscale -> colour (grey repeated in 3 channels)"]


def _mode_image(mode: str) -> Image.Image:
    if mode == "I;16":
        return Image.fromarray(np.full((8, 8), 65535, np.uint16))
    if mode == "F":
        return Image.fromarray(np.full((8, 8), 0.5, np.float32))
    return Image.new(mode, (8, 8), (0, 255, 0, 0) if mode == "CMYK" else 0)  # CMYK: magenta, a colour


@pytest.mark.parametrize("mode, suffix, kind", [
    ("I;16", ".png", "16-bit"), ("F", ".tiff", "float"), ("1", ".png", "1-bit"), ("CMYK", ".tiff", "CMYK"),
])
def test_other_pixel_formats_are_counted_by_kind(tmp_path, caplog, mode, suffix, kind):
    for name in ("a", "b"):
        save(tmp_path / "d" / name / f"0{suffix}", _mode_image(mode))
    with caplog.at_level(logging.WARNING, logger="synthaug"):
        data = synthaug.load_data(tmp_path / "d")
    assert data.conversions == {kind: 2}
    shape = "3x8x8 RGB" if mode == "CMYK" else "1x8x8 greyscale"
    note = {"I;16": " (v * 255 / 65535)", "F": " (to 0..255)"}.get(mode, "")
    assert conversion_warnings(caplog) == [f"converted 2 of 2 image(s) to {shape}: 2 {kind}{note}"]


class _PilItems:
    """A map-style dataset of (PIL image, label)."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], i % 2


def test_npz_and_dataset_conversions_are_counted(tmp_path, caplog):
    npz = tmp_path / "grey.npz"
    np.savez(npz, images=_rng.integers(0, 256, (6, 8, 8), dtype=np.uint8), labels=np.arange(6) % 2)
    items = _PilItems([Image.new("LA", (8, 8)), Image.new("RGB", (8, 8), (1, 2, 3))])
    with caplog.at_level(logging.WARNING, logger="synthaug"):
        from_npz = synthaug.load_data(npz, channels=3)
        from_dataset = synthaug.load_data(items)
    assert from_npz.conversions == {"greyscale -> colour": 6}
    assert from_dataset.conversions == {"greyscale+alpha": 1, "greyscale -> colour": 1}
    assert conversion_warnings(caplog) == [
        "converted 6 of 6 image(s) to 3x8x8 RGB: 6 greyscale -> colour (grey repeated in 3 channels)",
        f"converted 1 of 2 image(s) to 3x8x8 RGB: 1 greyscale+alpha {ALPHA_NOTE}, "
        "1 greyscale -> colour (grey repeated in 3 channels)"]


@pytest.mark.parametrize("mode, channels", [("RGB", None), ("RGB", 3), ("L", None), ("L", 1)])
def test_nothing_converted_no_warning(tmp_path, caplog, mode, channels):
    root = random_folder(tmp_path / "plain", mode)
    with caplog.at_level(logging.WARNING, logger="synthaug"):
        data = synthaug.load_data(root, channels=channels)
    assert data.conversions == {}
    assert [r.getMessage() for r in caplog.records if r.name == "synthaug"] == []
