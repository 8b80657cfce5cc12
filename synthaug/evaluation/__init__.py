"""``synthaug eval``: whether a generator's samples help a classifier, measured on the user's data.

- :func:`evaluate` (in :mod:`.pipeline`) runs everything and returns an :class:`EvalReport`;
- :mod:`.features`: the feature space (a SmallCNN trained on the real data, or the user's);
- :mod:`.quality`: FID, KID, precision/recall, density/coverage;
- :mod:`.memorisation`: near-copies of training images;
- :mod:`.gain`: the downstream gain with paired seeds; :mod:`.recommendation`: the advice;
- :mod:`.report`: ``report.json``, ``report.md`` and a self-contained ``report.html``;
- :mod:`.cli`: the ``synthaug eval`` command.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public names and the module each lives in; imported on first use, so that ``synthaug eval``'s
#: parser (``.cli``) costs the other commands nothing (scipy and the metrics load only for eval).
_EXPORTS = {"evaluate": "pipeline", "EvalReport": "pipeline", "fid": "quality", "kid": "quality",
            "precision_recall_density_coverage": "quality", "quality_metrics": "quality"}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # found directly from now on
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
