"""A griffe extension for the API reference (docs/api.md), loaded by mkdocs.yml.

It does not change the library: it changes what griffe (mkdocstrings' reader of the source) makes
of it.

- :class:`DocstringText`: synthaug's docstrings head their doctests ``Example:`` and cross-refer
  in Sphinx's roles (``:func:`fit` ``). Google style's section is ``Examples:``, and griffe reads
  any other title as an admonition, whose ``>>>`` lines Markdown renders as nested quotes; a role
  would be printed as it stands. This renames the heading and turns each role into inline code,
  in the text griffe parses, so the doctests render as code and the names as names.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.M)
_ROLE = re.compile(r":(?:py:)?(?:mod|func|class|meth|attr|data|obj|exc|const):`~?([^`]+)`")


class DocstringText(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
            obj.docstring.value = _ROLE.sub(r"`\1`", text)
