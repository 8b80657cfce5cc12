"""Griffe extensions for the API reference (docs/api.md); mkdocs.yml loads both.

Neither changes the library: they change what griffe (mkdocstrings' reader of the source) makes
of it.

- :class:`PublicNames`: ``synthaug.NAME`` documents the object ``synthaug.NAME`` is.
  ``synthaug/__init__.py`` imports its public names lazily (PEP 562) and, for readers like
  griffe, again under ``if TYPE_CHECKING:``. Read statically, two kinds of those imports miss,
  and this follows them as Python does: a name re-exported from a submodule of the same name
  (``synthaug.train`` does ``from .fit import fit``; griffe's model keeps the submodule, as it
  does not tell a submodule from a member of the same name) is the submodule's member of that
  name, and a name that the intermediate package itself imports lazily
  (``synthaug.evaluation.evaluate``) is the one object of that name defined in the package's
  modules.
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


class PublicNames(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != "synthaug":
            return
        for member in list(pkg.members.values()):
            # The public names: synthaug's and exporters' own objects, not `importlib` and the like.
            if member.is_alias and member.target_path.startswith(("synthaug.", "exporters.")):
                target = _defining_object(member, loader.modules_collection)
                if target is not None:
                    member.target = target


def _defining_object(alias: griffe.Alias, collection: griffe.ModulesCollection) -> griffe.Object | None:
    """The object ``alias`` names where griffe's own reading misses it, else None."""
    try:
        target = alias.target
    except griffe.AliasResolutionError:
        parent_path, _, name = alias.target_path.rpartition(".")
        try:
            parent = collection.get_member(parent_path)
        except KeyError:
            return None
        found = [mod.members[name] for mod in _modules(parent)
                 if name in mod.members and not mod.members[name].is_alias and not mod.members[name].is_module]
        return found[0] if len(found) == 1 else None
    if target.is_module and target.name == alias.name and alias.name in target.members:
        return target.members[alias.name]
    return None


def _modules(module: griffe.Module):
    yield module
    for sub in module.modules.values():
        yield from _modules(sub)


class DocstringText(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
            obj.docstring.value = _ROLE.sub(r"`\1`", text)
