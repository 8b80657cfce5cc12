"""``synthaug eval``: whether a generator's samples help a classifier, measured on the user's data.

- :func:`evaluate` (in :mod:`.pipeline`) runs everything and returns an :class:`EvalReport`;
- the feature space (a SmallCNN trained on the real data, or the user's) and the quality metrics
  (FID, KID, precision/recall, density/coverage) live in :mod:`synthaug.metrics` (``features``,
  ``quality``), shared with fit's quality monitor;
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
_EXPORTS = {"evaluate": ".pipeline", "EvalReport": ".pipeline", "fid": "..metrics.quality", "kid": "..metrics.quality",
            "precision_recall_density_coverage": "..metrics.quality", "quality_metrics": "..metrics.quality"}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value  # found directly from now on
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
