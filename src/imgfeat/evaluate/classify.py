"""``classify()``: classifiers × folds of a protocol, scores and confusion matrices."""

from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import default_threads
from ..errors import ConfigError
from ..usage import arg
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

    def describe(self) -> str:
        """One line: what was classified and under which protocol."""
        s = self.settings
        how = {"kfold": f"{s['repeats']}x stratified {s['folds']}-fold CV",
               "fewshot": f"{s['shots']} training images per class, {s['repeats']} repetitions",
               "official": "official splits",
               "groups": "leave one group out"}.get(self.protocol, self.protocol)
        return (f"{s['n_samples']} samples, {s['n_features']} features, {s['n_classes']} "
                f"classes; {how}; mean ± std over repetitions (%)")

    def __str__(self) -> str:
        return f"{self.describe()}\n{self.table()}"

    def __repr__(self) -> str:
        scores = ", ".join(f"{r.name}={100 * r.summary()['accuracy']:.2f}%" for r in self.results)
        return f"<ClassifyReport {self.protocol}: {scores}>"

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
        from ..storage import atomic_path, write_json

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


#: a classifier whose folds would take less than this in this process never starts workers
#: (starting them costs about a second on a small machine, more than small tables need)
IN_PROCESS_SECONDS = 2.0


def _run_fold(X, y, classifier, fold: Fold, standardize, pca, seed, labels):
    from sklearn.metrics import confusion_matrix
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # one BLAS thread, here as in a worker: the same numbers
        est = make_classifier(classifier, standardize=standardize, pca=pca, seed=seed)
        est.fit(X[fold.train], y[fold.train])
        pred = est.predict(X[fold.test])
    row = {"repeat": fold.repeat, "fold": fold.fold, "n_train": len(fold.train),
           "n_test": len(fold.test), **fold_scores(y[fold.test], pred)}
    return row, confusion_matrix(y[fold.test], pred, labels=labels)


def _warm_up(classifiers: list[str]) -> None:
    """Import in a worker what its folds need, so that no classifier is charged for it."""
    import sklearn.metrics  # noqa: F401
    import threadpoolctl  # noqa: F401

    for name in classifiers:
        make_classifier(name)


class _Workers:
    """Worker processes, started on first need and shared by every classifier of a run; the
    time they take to start is measured apart, never charged to a classifier."""

    def __init__(self, n_jobs: int):
        self.n_jobs = n_jobs
        self.parallel = None
        self.startup_seconds = 0.0

    def map(self, tasks: list[tuple], names: list[str]) -> list:
        from joblib import Parallel, delayed

        if self.parallel is None:
            t0 = time.perf_counter()
            self.parallel = Parallel(n_jobs=self.n_jobs)
            self.parallel.__enter__()
            self.parallel(delayed(_warm_up)(names) for _ in range(self.n_jobs))
            self.startup_seconds = time.perf_counter() - t0
        return self.parallel(delayed(_run_fold)(*t) for t in tasks)

    def close(self) -> None:
        if self.parallel is not None:
            self.parallel.__exit__(None, None, None)


def label_order(labels) -> list[str]:
    """Labels sorted as a reader expects: numerically when every label is a number
    (``2`` before ``10``), else alphabetically."""
    unique = set(labels)
    try:
        return sorted(unique, key=lambda v: (float(v), v))
    except ValueError:
        return sorted(unique)


def _load(features, y) -> tuple[np.ndarray, np.ndarray | None, list[str], dict, dict]:
    """(X, y, ids, metadata, provenance) of a path or of arrays."""
    if isinstance(features, str | os.PathLike):
        from ..store import load_features, no_features_error

        X, y, ids, meta = load_features(features)
        if len(X) == 0:
            raise no_features_error(features, meta)
        provenance = {"path": str(Path(features).resolve()),
                      "config_hash": meta.get("config_hash"), "model": meta.get("model"),
                      "layers": meta.get("layers"), "pool": meta.get("pool"),
                      "precision": meta.get("precision")}
        return X, y, ids, meta, {k: v for k, v in provenance.items() if v is not None}
    X = np.asarray(features)
    if X.ndim != 2:
        raise ConfigError(f"features must be a 2-D array (images x values), got shape {X.shape}")
    if y is not None:
        y = np.asarray(y)
        if y.ndim != 1:
            raise ConfigError(f"labels must be 1-D (one label per row), got shape {y.shape}")
        if len(y) != len(X):
            raise ConfigError(f"{len(y)} labels for {len(X)} rows of features")
    return X, y, [str(i) for i in range(len(X))], {}, {"path": None, "shape": list(X.shape)}


def check_settings(folds: int, repeats: int, shots: int, pca, n_jobs: int | None) -> None:
    """One line naming the argument for every setting that cannot work."""
    for name, value, least in (("folds", folds, 2), ("repeats", repeats, 1), ("shots", shots, 1)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
            raise ConfigError(f"{arg(name, value)}: must be a whole number, at least {least}")
    if n_jobs is not None and (not isinstance(n_jobs, int | np.integer) or n_jobs == 0
                               or n_jobs < -1):
        raise ConfigError(f"{arg('n_jobs', n_jobs)}: must be at least 1 (or -1: every core)")
    if pca is None:
        return
    whole = isinstance(pca, int | np.integer) or (isinstance(pca, float) and pca.is_integer())
    if isinstance(pca, bool) or not (whole and pca >= 1 or 0 < pca < 1):
        raise ConfigError(f"{arg('pca', pca)}: give a whole number of components (at least 1) "
                          f"or the fraction of variance to keep (between 0 and 1)")


def classify(features, y=None, *, classifiers=("knn", "lda", "svm"), protocol: str = "kfold",
             folds: int = 10, repeats: int = 10, seed: int = 0, shots: int = 2,
             standardize: bool = False, pca: int | float | None = None,
             n_jobs: int | None = None) -> ClassifyReport:
    """Evaluate features with classifiers under a protocol.

    ``features`` is an imgfeat output (folder or file) or an array ``X`` with labels ``y``.
    ``classifiers`` holds names (``knn``, ``lda``, ``svm``, ``svm-rbf``, ``logreg``, ``ridge``,
    ``rf``) or any scikit-learn estimators. A classifier's first fold runs in this process;
    when the rest would take more than a couple of seconds, they run in parallel worker
    processes (``n_jobs``, default the cores), each with one BLAS thread, so the cores are
    never oversubscribed. ``n_jobs=1`` keeps everything in this process. The time reported
    for a classifier never includes starting the workers.
    """
    check_settings(folds, repeats, shots, pca, n_jobs)
    X, y, ids, meta, provenance = _load(features, y)
    if y is None:
        raise ConfigError("these features have no labels: nothing to classify against")
    y = np.asarray(y).astype(str)
    X = np.nan_to_num(np.asarray(X, dtype=np.float32))
    labels = label_order(y.tolist())
    if len(labels) < 2:
        raise ConfigError(f"classification needs at least 2 classes; every one of the {len(y)} "
                          f"images has the label {labels[0]!r}")
    fold_list = build_folds(protocol, y, ids, meta, folds=folds, repeats=repeats, seed=seed,
                            shots=shots)
    if isinstance(pca, int | float) and pca >= 1:
        fewest = min(len(f.train) for f in fold_list)
        if pca > min(fewest, X.shape[1]):
            raise ConfigError(f"{arg('pca', int(pca))}: more components than a fold has training "
                              f"images ({fewest}) or features ({X.shape[1]}); use at most "
                              f"{min(fewest, X.shape[1])}")
    names = [c if isinstance(c, str) else type(c).__name__ for c in classifiers]
    if len(set(names)) != len(names):
        raise ConfigError("classifier names must be unique")
    for clf in classifiers:
        make_classifier(clf)  # fail fast on an unknown name (and import what it needs)
    jobs = default_threads() if n_jobs in (None, -1) else n_jobs
    report = ClassifyReport(protocol, {"folds": folds, "repeats": repeats, "seed": seed,
                                       "shots": shots, "standardize": standardize, "pca": pca,
                                       "n_samples": int(len(y)), "n_features": int(X.shape[1]),
                                       "n_classes": len(labels), "source": meta.get("model"),
                                       "features": provenance})
    workers = _Workers(jobs)
    by_name = [c for c in classifiers if isinstance(c, str)]
    try:
        for name, clf in zip(names, classifiers, strict=True):
            tasks = [(X, y, clf, f, standardize, pca, seed, labels) for f in fold_list]
            t0 = time.perf_counter()
            rows, startup = [], 0.0
            while tasks:  # in this process while the rest would be quick (the last fold says)
                t_fold = time.perf_counter()
                rows.append(_run_fold(*tasks.pop(0)))
                last = time.perf_counter() - t_fold
                if tasks and jobs > 1 and last * len(tasks) > IN_PROCESS_SECONDS:
                    started = workers.parallel is not None
                    rows += workers.map(tasks, by_name)
                    startup = 0.0 if started else workers.startup_seconds
                    break
            conf = sum(c for _, c in rows)
            report.results.append(ClassifierResult(name, [r for r, _ in rows], conf, labels,
                                                   time.perf_counter() - t0 - startup))
    finally:
        workers.close()
    report.settings["workers_startup_seconds"] = round(workers.startup_seconds, 2)
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
    from ..storage import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
