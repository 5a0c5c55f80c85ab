"""``imgfeat sample``."""

from __future__ import annotations

import argparse

from .options import add_source_arguments


def add_parsers(sub) -> None:
    p = sub.add_parser("sample", help="write a stratified toy subset of a source",
                       description="Copy N images of a folder, CSV list or array, stratified by "
                                   "label (at least one per class), into OUTPUT/<label>/ under "
                                   "their own file names (array rows become PNGs).")
    p.add_argument("source", nargs="?", help="a folder, a CSV list of label,path rows, or a "
                   ".npy array")
    p.add_argument("-n", type=int, required=True, help="number of images (stratified)")
    p.add_argument("-o", "--output", required=True, help="output folder (<label>/<image>)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draw")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an output folder an earlier 'imgfeat sample' wrote")
    g = p.add_argument_group("source (as in 'imgfeat extract')")
    add_source_arguments(g)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..sample import sample

    if bool(args.source) == bool(args.data):
        raise ConfigError("give either a SOURCE (folder, CSV list or .npy) or --data X.npy")
    out = sample(args.source or args.data, args.n, args.output, seed=args.seed,
                 overwrite=args.overwrite, labels="none" if args.no_labels else "auto",
                 label_pattern=args.label_pattern, data_labels=args.labels,
                 height=args.height, width=args.width, channels=args.channels)
    n = sum(1 for p in out.rglob("*") if p.is_file() and not p.name.startswith("."))
    classes = sum(1 for p in out.iterdir() if p.is_dir())
    print(f"wrote {n} images in {classes} classes to {out}")
    return 0
