"""Packages whose public names are imported on first use (as scikit-learn's ``__getattr__``),
so importing a package never pulls in torch or a web framework it may not need. The one
lazy-export helper: ``imgfeat``, ``imgfeat.evaluate``, ``imgfeat.autoencoder`` and
``imgfeat.flim`` use it."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_exports(package: str, names: dict[str, str]
                 ) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """Module-level ``__getattr__`` and ``__dir__`` for ``package``: ``names`` maps each public
    name to the submodule (relative to ``package``) that defines it."""

    def __getattr__(name: str) -> object:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{names[name]}", package), name)
        setattr(sys.modules[package], name, value)  # later accesses skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(importlib.import_module(package).__dict__) | set(names))

    return __getattr__, __dir__
