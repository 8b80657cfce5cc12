"""Whether synthaug wrote a file: nothing is replaced or deleted unless synthaug wrote it.

``sample`` and ``export`` mark what they write: a grid PNG carries a ``synthaug`` text chunk,
a sample ``.npz`` a ``synthaug_card`` array (the card as JSON), an ``.onnx`` file the card in
its metadata. An existing output is replaced only with ``--force``, and only when it has its
mark: a user's training ``.npz`` named as ``--out`` by mistake is never overwritten.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from .card import METADATA_KEY
from .errors import SynthaugError
from .grid import is_synthaug_grid

__all__ = ["NPZ_CARD_KEY", "check_replaceable_output", "written_by_synthaug"]

#: The array of a sample ``.npz`` that holds the card JSON: synthaug's mark on the file.
NPZ_CARD_KEY = "synthaug_card"


def check_replaceable_output(path: Path, force: bool) -> None:
    """Raise unless ``path`` is free, or holds a file synthaug wrote and ``force`` is set."""
    if not path.is_file():
        return  # absent, or a directory that the writer refuses with its own message
    if not force:
        raise SynthaugError(f"{path} already exists: pass force=True to replace it, or choose another out=...")
    if not written_by_synthaug(path):
        raise SynthaugError(f"{path} was not written by synthaug (no synthaug mark in it): refusing to "
                            f"replace it, even with force=True; choose another out=... or move the file away")


def written_by_synthaug(path: Path) -> bool:
    """True for a grid ``.png``, sample ``.npz`` or ``.onnx`` model that carries synthaug's mark."""
    suffix = path.suffix.lower()
    if suffix == ".png":
        return is_synthaug_grid(path)
    if suffix == ".npz":
        return _npz_has_card(path)
    if suffix == ".onnx":
        return _onnx_has_card(path)
    return False


def _npz_has_card(path: Path) -> bool:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as npz:
            if NPZ_CARD_KEY not in npz.files:
                return False
            text = npz[NPZ_CARD_KEY]
        return isinstance(json.loads(str(text[()])), dict)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, IndexError):
        return False


def _onnx_has_card(path: Path) -> bool:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # protobuf's DecodeError and friends share no useful base class
        return False
    return any(p.key == METADATA_KEY for p in model.metadata_props)
