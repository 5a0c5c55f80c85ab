"""``imgfeat classify``."""

from __future__ import annotations

import argparse


def add_parsers(sub) -> None:
    from .options import LazyChoices

    p = sub.add_parser("classify", help="evaluate features with classifiers under a protocol",
                       description="Classify an imgfeat output (or a .parquet/.csv/_data.npy "
                                   "file) and report accuracy, balanced accuracy, macro F1 and "
                                   "Cohen's kappa. Small tables run in this process; larger "
                                   "ones run their folds in parallel worker processes.")
    p.add_argument("features", help="an imgfeat output folder or features file")
    p.add_argument("--classifier", nargs="+", default=["knn", "lda", "svm"],
                   choices=LazyChoices("imgfeat.evaluate.classifiers", "CLASSIFIERS"),
                   metavar="NAME", help="one or more of %(choices)s")
    p.add_argument("--protocol", choices=LazyChoices("imgfeat.evaluate.protocols", "PROTOCOLS"),
                   default="kfold", metavar="NAME",
                   help="kfold (repeated stratified), official (the source's splits), groups "
                        "(leave one group out), fewshot")
    p.add_argument("--folds", type=int, default=10, help="folds of kfold (at least 2)")
    p.add_argument("--repeats", type=int, default=10,
                   help="repetitions of kfold and fewshot, each with a new shuffle")
    p.add_argument("--shots", type=int, default=2, help="training images per class (fewshot)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffles and draws")
    p.add_argument("--standardize", action="store_true", help="z-score features in each fold")
    p.add_argument("--pca", type=_number, metavar="N",
                   help="PCA inside each fold: components (a whole number) or the fraction of "
                        "variance kept (below 1); default: no PCA")
    p.add_argument("--jobs", type=int, help="worker processes for the folds of large tables "
                   "(default: the cores; 1: all in this process)")
    p.add_argument("-o", "--output", help="folder for summary.json/csv, folds.csv, confusion "
                   "PNGs (default: print only)")
    p.set_defaults(func=run)


def _number(text: str) -> int | float:
    """A whole number stays an int (components), anything else a float (variance or error)."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def run(args: argparse.Namespace) -> int:
    from ..evaluate import classify

    report = classify(args.features, classifiers=args.classifier, protocol=args.protocol,
                      folds=args.folds, repeats=args.repeats, shots=args.shots, seed=args.seed,
                      standardize=args.standardize, pca=args.pca, n_jobs=args.jobs)
    print(report)
    if args.output:
        out = report.write(args.output)
        print(f"results: {out}/summary.json, summary.csv, folds.csv, confusion_*.png")
    return 0
