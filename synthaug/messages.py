"""How a library message names a parameter: in Python form, ``name=value``.

synthaug's library speaks Python: ``fit(keep="best")`` without ``eval_every`` says
``keep='best' needs eval_every=N``, not the command line's ``--keep best needs --eval-every N``.
The ``synthaug`` command turns these ``name=value`` mentions back into its flags when it prints
them (:func:`synthaug.cli.to_flags`), so each message is written once, in Python form.

Three forms, all made by :func:`arg`:

- ``arg("batch_size", 64)`` -> ``batch_size=64``, ``arg("keep", "best")`` -> ``keep='best'``
  (a value as Python would write it; a path as its string);
- ``arg("eval_every", shown="N")`` -> ``eval_every=N``: a placeholder for a value the user picks;
- ``arg("out")`` -> ``out=...``: the parameter itself, whatever its value ("choose another out=...").

This module imports nothing of synthaug but :mod:`synthaug.errors`.

Example:
    >>> arg("keep", "best"), arg("force", True), arg("eval_every", shown="N"), arg("out")
    ("keep='best'", 'force=True', 'eval_every=N', 'out=...')
    >>> f"{arg('keep', 'best')} needs {arg('eval_every', shown='N')}"
    "keep='best' needs eval_every=N"
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["ANY", "arg", "python_value"]

#: What :func:`arg` shows for "this parameter, whatever its value".
ANY = "..."

_MISSING = object()


def python_value(value: Any) -> str:
    """``value`` as Python source would write it; a path as its string (``'runs/a'``, not
    ``PosixPath('runs/a')``).

    Example:
        >>> python_value("best"), python_value(0.5), python_value(None)
        ("'best'", '0.5', 'None')
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    return repr(value)


def arg(name: str, value: Any = _MISSING, *, shown: str | None = None) -> str:
    """``name=value`` (see the module's docstring): ``value`` in Python form, else ``shown``
    as it is (a placeholder such as ``N``), else ``...`` (the parameter itself)."""
    if shown is not None:
        return f"{name}={shown}"
    return f"{name}={ANY if value is _MISSING else python_value(value)}"
