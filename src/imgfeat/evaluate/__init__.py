"""Evaluate feature tables with classic classifiers under benchmark protocols.

Partly lazy: ``classify`` is imported with the package (the function, not its module of the
same name; it imports NumPy), the rest on first use; scikit-learn is imported when a classifier
is built. The command line reads the names of classifiers and protocols from their modules
only when it checks or shows them, so its help imports none of this.
"""

from __future__ import annotations

from .._lazy import lazy_exports
from .classifiers import CLASSIFIERS
from .classify import ClassifierResult, ClassifyReport, classify  # the function, not its module
from .protocols import PROTOCOLS

_LAZY = {
    "make_classifier": "classifiers",
    "METRICS": "metrics",
    "fold_scores": "metrics",
    "Fold": "protocols",
    "build_folds": "protocols",
    "fewshot": "protocols",
    "groups": "protocols",
    "kfold": "protocols",
    "official": "protocols",
}

__all__ = ["CLASSIFIERS", "METRICS", "PROTOCOLS", "ClassifierResult", "ClassifyReport", "Fold",
           "build_folds", "classify", "fewshot", "fold_scores", "groups", "kfold",
           "make_classifier", "official"]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
