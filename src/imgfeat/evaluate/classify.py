"""``classify()``: classifiers × folds of a protocol, scores and confusion matrices."""

from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from sklearn.metrics import confusion_matrix
from threadpoolctl import threadpool_limits

from ..config import default_threads
from ..errors import ConfigError
from ..store.atomic import atomic_path, write_json
from .classifiers import make_classifier
from .metrics import METRICS, fold_scores
from .protocols import Fold, build_folds


@dataclass
class ClassifierResult:
    """Scores of one classifier over every fold of a protocol."""

    name: str
    folds: list[dict]
    confusion: np.ndarray
    labels: list[str]
    seconds: float

    def summary(self) -> dict:
        """Mean and std over repetition means (as papers report), for every metric."""
        out: dict = {"classifier": self.name, "n_folds": len(self.folds)}
        repeats = sorted({f["repeat"] for f in self.folds})
        for m in METRICS:
            means = [np.mean([f[m] for f in self.folds if f["repeat"] == r]) for r in repeats]
            out[m] = float(np.mean(means))
            out[f"{m}_std"] = float(np.std(means))
        out["seconds"] = round(self.seconds, 2)
        return out


@dataclass
class ClassifyReport:
    """Everything a classification run measured."""

    protocol: str
    settings: dict
    results: list[ClassifierResult] = field(default_factory=list)

    def table(self) -> str:
        """A terminal table, one row per classifier."""
        lines = [f"{'classifier':<12}{'accuracy':>18}{'balanced':>10}{'macro F1':>10}"
                 f"{'kappa':>8}{'folds':>7}{'time':>8}"]
        for r in self.results:
            s = r.summary()
            lines.append(f"{r.name:<12}{100 * s['accuracy']:>10.2f} ± {100 * s['accuracy_std']:<5.2f}"
                         f"{100 * s['balanced_accuracy']:>10.2f}{100 * s['macro_f1']:>10.2f}"
                         f"{s['kappa']:>8.3f}{s['n_folds']:>7}{s['seconds']:>7.1f}s")
        return "\n".join(lines)

    def write(self, folder: str | os.PathLike, plots: bool = True) -> Path:
        """summary.json, summary.csv, folds.csv and a confusion-matrix PNG per classifier."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        summaries = [r.summary() for r in self.results]
        write_json(out / "summary.json", {"protocol": self.protocol, "settings": self.settings,
                                          "results": summaries,
                                          "confusion": {r.name: {"labels": r.labels,
                                                                 "matrix": r.confusion.tolist()}
                                                        for r in self.results}})
        with atomic_path(out / "summary.csv") as tmp, open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(summaries[0]))
            w.writeheader()
            w.writerows(summaries)
        with atomic_path(out / "folds.csv") as tmp, open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["classifier", "repeat", "fold", "n_train",
                                               "n_test", *METRICS])
            w.writeheader()
            for r in self.results:
                w.writerows({"classifier": r.name, **f} for f in r.folds)
        if plots:
            for r in self.results:
                plot_confusion(r, out / f"confusion_{r.name}.png")
        return out


def _run_fold(X, y, classifier, fold: Fold, standardize, pca, seed, labels):
    with threadpool_limits(1):
        est = make_classifier(classifier, standardize=standardize, pca=pca, seed=seed)
        est.fit(X[fold.train], y[fold.train])
        pred = est.predict(X[fold.test])
    row = {"repeat": fold.repeat, "fold": fold.fold, "n_train": len(fold.train),
           "n_test": len(fold.test), **fold_scores(y[fold.test], pred)}
    return row, confusion_matrix(y[fold.test], pred, labels=labels)


def classify(features, y=None, *, classifiers=("knn", "lda", "svm"), protocol: str = "kfold",
             folds: int = 10, repeats: int = 10, seed: int = 0, shots: int = 2,
             standardize: bool = False, pca: int | float | None = None,
             n_jobs: int | None = None) -> ClassifyReport:
    """Evaluate features with classifiers under a protocol.

    ``features`` is an imgfeat output (folder or file) or an array ``X`` with labels ``y``.
    ``classifiers`` holds names (``knn``, ``lda``, ``svm``, ``svm-rbf``, ``logreg``, ``ridge``,
    ``rf``) or any scikit-learn estimators. Folds run in parallel (``n_jobs``, default the
    cores) in worker processes, each with one BLAS thread, so the cores are never
    oversubscribed; ``n_jobs=1`` runs in this process (best for small sets).
    """
    if isinstance(features, str | os.PathLike):
        from ..store import load_features

        X, y, ids, meta = load_features(features)
    else:
        X = np.asarray(features)
        ids, meta = [str(i) for i in range(len(X))], {}
    if y is None:
        raise ConfigError("these features have no labels: nothing to classify against")
    y = np.asarray(y).astype(str)
    X = np.nan_to_num(np.asarray(X, dtype=np.float32))
    fold_list = build_folds(protocol, y, ids, meta, folds=folds, repeats=repeats, seed=seed,
                            shots=shots)
    labels = sorted(set(y.tolist()))
    jobs = n_jobs or default_threads()
    names = [c if isinstance(c, str) else type(c).__name__ for c in classifiers]
    if len(set(names)) != len(names):
        raise ConfigError("classifier names must be unique")
    report = ClassifyReport(protocol, {"folds": folds, "repeats": repeats, "seed": seed,
                                       "shots": shots, "standardize": standardize, "pca": pca,
                                       "n_samples": int(len(y)), "n_features": int(X.shape[1]),
                                       "n_classes": len(labels), "source": meta.get("model")})
    for name, clf in zip(names, classifiers, strict=True):
        make_classifier(clf)  # fail fast on an unknown name
        t0 = time.perf_counter()
        rows = Parallel(n_jobs=jobs)(
            delayed(_run_fold)(X, y, clf, f, standardize, pca, seed, labels) for f in fold_list)
        conf = sum(c for _, c in rows)
        report.results.append(ClassifierResult(name, [r for r, _ in rows], conf, labels,
                                               time.perf_counter() - t0))
    return report


def plot_confusion(result: ClassifierResult, path: Path) -> Path | None:
    """A confusion-matrix PNG (row-normalised), if matplotlib is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    cm = result.confusion.astype(float)
    cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(result.labels)
    size = min(4 + n * 0.25, 30)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1)
    if n <= 40:
        ax.set_xticks(range(n), result.labels, rotation=90)
        ax.set_yticks(range(n), result.labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = result.summary()["accuracy"]
    ax.set_title(f"{result.name}: accuracy {100 * acc:.1f}% (rows normalised)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
