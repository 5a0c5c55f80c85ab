"""``imgfeat classify``."""

from __future__ import annotations

import argparse


def add_parsers(sub) -> None:
    from ..evaluate import CLASSIFIERS, PROTOCOLS

    p = sub.add_parser("classify", help="evaluate features with classifiers under a protocol",
                       description="Classify an imgfeat output (or a .parquet/.csv/_data.npy "
                                   "file) and report accuracy, balanced accuracy, macro F1 and "
                                   "Cohen's kappa.")
    p.add_argument("features", help="an imgfeat output folder or features file")
    p.add_argument("--classifier", nargs="+", default=["knn", "lda", "svm"], choices=CLASSIFIERS,
                   metavar="NAME", help=f"one or more of {', '.join(CLASSIFIERS)}")
    p.add_argument("--protocol", choices=PROTOCOLS, default="kfold",
                   help="kfold (repeated stratified), official (the source's splits), groups "
                        "(leave one group out), fewshot")
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--shots", type=int, default=2, help="training images per class (fewshot)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--standardize", action="store_true", help="z-score features in each fold")
    p.add_argument("--pca", type=float, help="PCA components (int) or variance kept (<1)")
    p.add_argument("--jobs", type=int, help="parallel folds (default: the cores)")
    p.add_argument("-o", "--output", help="folder for summary.json/csv, folds.csv, confusion PNGs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluate import classify

    pca = None if args.pca is None else (int(args.pca) if args.pca >= 1 else args.pca)
    report = classify(args.features, classifiers=args.classifier, protocol=args.protocol,
                      folds=args.folds, repeats=args.repeats, shots=args.shots, seed=args.seed,
                      standardize=args.standardize, pca=pca, n_jobs=args.jobs)
    s = report.settings
    desc = {"kfold": f"{args.repeats}x stratified {args.folds}-fold CV",
            "fewshot": f"{args.shots} training images per class, {args.repeats} repetitions",
            "official": "official splits", "groups": "leave one group out"}[args.protocol]
    print(f"{s['n_samples']} samples, {s['n_features']} features, {s['n_classes']} classes; "
          f"{desc}; mean ± std over repetitions (%)")
    print(report.table())
    if args.output:
        out = report.write(args.output)
        print(f"results: {out}/summary.json, summary.csv, folds.csv, confusion_*.png")
    return 0
