"""Evaluate feature tables with classic classifiers under benchmark protocols."""

from .classifiers import CLASSIFIERS, make_classifier
from .protocols import cross_validate

__all__ = ["CLASSIFIERS", "cross_validate", "make_classifier"]
