"""Packages whose public names are imported on first use (as scikit-learn's ``__getattr__``),
so importing a package never pulls in torch or a web framework it may not need."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, names: dict[str, str]
                 ) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """Module-level ``__getattr__`` and ``__dir__`` for ``package``: ``names`` maps each public
    name to the submodule (relative to ``package``) that defines it."""

    def __getattr__(name: str) -> object:
        if name in names:
            return getattr(importlib.import_module(f".{names[name]}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(importlib.import_module(package).__dict__) | set(names))

    return __getattr__, __dir__
