"""``imgfeat sample``."""

from __future__ import annotations

import argparse


def add_parsers(sub) -> None:
    p = sub.add_parser("sample", help="write a stratified toy subset of a source")
    p.add_argument("source", help="a folder, CSV list or .npy array")
    p.add_argument("-n", type=int, required=True, help="number of images (stratified)")
    p.add_argument("-o", "--output", required=True, help="output folder (<label>/<image>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label-pattern", metavar="REGEX")
    p.add_argument("--labels", metavar="y.npy", help="labels for a .npy source")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..sample import sample

    out = sample(args.source, args.n, args.output, seed=args.seed,
                 label_pattern=args.label_pattern, data_labels=args.labels)
    n = sum(1 for p in out.rglob("*") if p.is_file())
    classes = sum(1 for p in out.iterdir() if p.is_dir())
    print(f"wrote {n} images in {classes} classes to {out}")
    return 0
