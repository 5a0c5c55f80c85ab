"""Named scikit-learn classifiers, as the texture literature configures them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from sklearn.base import BaseEstimator

#: the named classifiers (their estimators are built by :func:`make_classifier`)
CLASSIFIERS = ("knn", "lda", "svm", "linear-svc", "svm-rbf", "logreg", "ridge", "rf")


def _factories(seed: int) -> dict:
    """Name -> a function building the estimator (scikit-learn is imported here, not above)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, RidgeClassifier
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC, LinearSVC

    from .lda import ShrinkageLDA

    return {
        "knn": lambda: KNeighborsClassifier(n_neighbors=1),
        # exactly LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"), 20x faster
        "lda": lambda: ShrinkageLDA(),
        # libsvm's linear SVC (one-vs-one), as the RADAM paper's code; LinearSVC (one-vs-rest)
        # is ~40x slower on 191 classes (benchmarks/usptex_eval.py)
        "svm": lambda: SVC(C=1.0, kernel="linear"),
        "linear-svc": lambda: LinearSVC(C=1.0, dual="auto", max_iter=10000, random_state=seed),
        "svm-rbf": lambda: SVC(C=10.0, kernel="rbf", gamma="scale"),
        "logreg": lambda: LogisticRegression(C=1.0, max_iter=2000),
        "ridge": lambda: RidgeClassifier(alpha=1.0),
        "rf": lambda: RandomForestClassifier(n_estimators=300, random_state=seed, n_jobs=1),
    }


def make_classifier(name_or_estimator, *, standardize: bool = False, pca: int | float | None = None,
                    seed: int = 0) -> BaseEstimator:
    """A fresh estimator: a name from :data:`CLASSIFIERS` or any scikit-learn estimator,
    optionally preceded by standardisation and PCA."""
    from sklearn.base import clone
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if isinstance(name_or_estimator, str):
        factories = _factories(seed)
        if name_or_estimator not in factories:
            raise ConfigError(f"unknown classifier {name_or_estimator!r}; known: "
                              f"{', '.join(CLASSIFIERS)}")
        est = factories[name_or_estimator]()
    else:
        est = clone(name_or_estimator)
    steps = []
    if standardize:
        steps.append(StandardScaler())
    if pca:
        steps.append(PCA(n_components=pca, random_state=seed))
    return make_pipeline(*steps, est) if steps else est
