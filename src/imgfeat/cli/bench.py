"""``imgfeat bench`` and ``imgfeat plot``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import LazyChoices, add_model_arguments, add_runtime_argument, model_kwargs


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "bench", help="models x poolings x classifiers on a texture benchmark",
        description="Extract (cached) and classify a texture benchmark over a grid of models "
                    "and poolings; one summary table. Its defaults follow the texture "
                    "literature's protocol and differ from 'imgfeat extract': --layers final "
                    "(the last feature map, pooled by --pool; radam and spectral: their own "
                    "stages) instead of pooled for --pool avg, --resize squash (no crop: "
                    "textures have no centre) instead of crop, and a fixed 224 px input "
                    "instead of the model's own size.")
    p.add_argument("--dataset", required=True, metavar="NAME", help="one of %(choices)s",
                   choices=LazyChoices("imgfeat.sources.benchmarks", "DATASETS", sort=True))
    p.add_argument("--data-path", required=True, help="the dataset's folder")
    p.add_argument("--output", required=True, help="results folder")
    add_model_arguments(p.add_argument_group(
        "model (as extract, with the texture papers' defaults: 224 px squashed, no crop; "
        "layers: the final map, or the pooling's stages for radam/spectral)"),
        several=True, img_size=224, resize="squash")
    p.add_argument("--classifier", nargs="+", default=["knn", "lda", "svm"],
                   choices=LazyChoices("imgfeat.evaluate.classifiers", "CLASSIFIERS"),
                   metavar="NAME", help="one or more of %(choices)s")
    p.add_argument("--protocol", choices=LazyChoices("imgfeat.evaluate.protocols", "PROTOCOLS"),
                   metavar="NAME", help="one of %(choices)s (default: the dataset's own: "
                                        "kfold; official for dtd, outex, gtos and gtos-mobile; "
                                        "groups for kth-tips2-b)")
    p.add_argument("--folds", type=int, default=10, help="folds of kfold")
    p.add_argument("--repeats", type=int, default=10, help="repetitions of kfold and fewshot")
    p.add_argument("--shots", type=int, default=2, help="training images per class (fewshot)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffles and draws")
    p.add_argument("--batch-size", type=int, help="images per forward pass (default 16 on CPU)")
    add_runtime_argument(p)
    p.add_argument("--jobs", type=int, help="worker processes for the folds (default: the cores)")
    p.add_argument("--download", action="store_true",
                   help="fetch the dataset into --data-path if missing (where it has an address)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_bench, on_interrupt="imgfeat: interrupted; finished cells are "
                   "kept: run the same command again to continue where it stopped")

    p = sub.add_parser("plot", help="a 2-D map of features coloured by label (PNG or HTML)",
                       description="Project features to 2-D (PCA, t-SNE or UMAP) and draw them "
                                   "coloured by label: a PNG picture, or a self-contained "
                                   "interactive HTML page.")
    p.add_argument("features", help="an imgfeat output folder or features file")
    p.add_argument("-o", "--output", required=True,
                   help="a .png picture, or an .html page (hover for ids, click the legend)")
    p.add_argument("--method", choices=("pca", "tsne", "umap"), default="pca",
                   help="the 2-D projection")
    p.add_argument("--seed", type=int, default=0, help="seed of t-SNE and UMAP")
    p.set_defaults(func=run_plot)


def run_bench(args: argparse.Namespace) -> int:
    from ..evaluate.bench import bench

    bench(args.dataset, args.data_path, args.output, **model_kwargs(args),
          classifiers=args.classifier, protocol=args.protocol,
          folds=args.folds, repeats=args.repeats,
          seed=args.seed, shots=args.shots, batch_size=args.batch_size,
          progress=False if args.quiet else None, n_jobs=args.jobs, download=args.download,
          runtime=args.runtime)
    print(Path(args.output, "summary.md").read_text(), end="")
    print(f"results: {args.output}/summary.md, summary.csv, classification/, feature_matrix/")
    return 0


def run_plot(args: argparse.Namespace) -> int:
    from ..viz import plot_features, plot_features_html

    draw = plot_features_html if str(args.output).lower().endswith(".html") else plot_features
    path = draw(args.features, args.output, method=args.method, seed=args.seed)
    print(f"wrote {path}")
    return 0
