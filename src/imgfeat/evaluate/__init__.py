"""Evaluate feature tables with classic classifiers under benchmark protocols.

Lazy, as the package is: the names of classifiers and protocols cost nothing to import (the
command line's help needs them); scikit-learn is imported when a classifier is built.
"""

from __future__ import annotations

import importlib
from typing import Any

from .classifiers import CLASSIFIERS
from .classify import ClassifierResult, ClassifyReport, classify  # the function, not its module
from .protocols import PROTOCOLS

_LAZY = {
    "make_classifier": ".classifiers",
    "METRICS": ".metrics",
    "fold_scores": ".metrics",
    "Fold": ".protocols",
    "build_folds": ".protocols",
    "fewshot": ".protocols",
    "groups": ".protocols",
    "kfold": ".protocols",
    "official": ".protocols",
}

__all__ = ["CLASSIFIERS", "METRICS", "PROTOCOLS", "ClassifierResult", "ClassifyReport", "Fold",
           "build_folds", "classify", "fewshot", "fold_scores", "groups", "kfold",
           "make_classifier", "official"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
