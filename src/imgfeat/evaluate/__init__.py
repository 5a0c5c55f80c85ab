"""Evaluate feature tables with classic classifiers under benchmark protocols."""

from .classifiers import CLASSIFIERS, make_classifier
from .classify import ClassifierResult, ClassifyReport, classify
from .metrics import METRICS, fold_scores
from .protocols import PROTOCOLS, Fold, build_folds, fewshot, groups, kfold, official

__all__ = ["CLASSIFIERS", "METRICS", "PROTOCOLS", "ClassifierResult", "ClassifyReport", "Fold",
           "build_folds", "classify", "fewshot", "fold_scores", "groups", "kfold",
           "make_classifier", "official"]
