"""Protocols: which images train and which test, fold by fold."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score
from sklearn.model_selection import StratifiedKFold

from ..errors import ConfigError
from .classifiers import make_classifier


def repeated_stratified_folds(y: np.ndarray, folds: int = 10, repeats: int = 10, seed: int = 0):
    """Yield (repeat, fold, train_idx, test_idx) for ``repeats`` × stratified ``folds``-fold CV."""
    _, counts = np.unique(y, return_counts=True)
    if counts.min() < folds:
        raise ConfigError(f"the smallest class has {counts.min()} images, fewer than {folds} folds")
    for r in range(repeats):
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed + r)
        for f, (tr, te) in enumerate(skf.split(np.zeros(len(y)), y)):
            yield r, f, tr, te


def cross_validate(X: np.ndarray, y: np.ndarray, classifier="knn", *, folds: int = 10,
                   repeats: int = 10, seed: int = 0, standardize: bool = False) -> dict:
    """Accuracy of ``classifier`` under repeated stratified k-fold CV.

    Returns ``mean`` and ``std`` over the repetition means (as texture papers report), and the
    per-fold accuracies.
    """
    per_fold = []
    for r, f, tr, te in repeated_stratified_folds(y, folds, repeats, seed):
        est = make_classifier(classifier, standardize=standardize, seed=seed).fit(X[tr], y[tr])
        per_fold.append({"repeat": r, "fold": f, "accuracy": accuracy_score(y[te], est.predict(X[te]))})
    rep_means = [np.mean([p["accuracy"] for p in per_fold if p["repeat"] == r])
                 for r in range(repeats)]
    return {"classifier": str(classifier), "folds": folds, "repeats": repeats,
            "mean": float(np.mean(rep_means)), "std": float(np.std(rep_means)), "per_fold": per_fold}
