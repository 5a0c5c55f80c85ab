"""The full USPtex evaluation: extraction with the packaged EfficientNet-Lite0 weights, then
1-NN, LDA and linear SVM under 10 × stratified 10-fold CV. Prints the table and the time.

    python benchmarks/usptex_eval.py [--data ../shared/data/usptex] [--layers pooled --pool avg]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import imgfeat
from imgfeat.sources.benchmarks import open_benchmark

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "usptex"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--model", default="tf_efficientnet_lite0")
    ap.add_argument("--layers", default="pooled")
    ap.add_argument("--pool", default="avg")
    ap.add_argument("--classifier", nargs="+", default=["knn", "lda", "svm"])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--output", default=None, help="keep features and results here")
    args = ap.parse_args()
    out = Path(args.output or tempfile.mkdtemp(prefix="usptex-"))
    t0 = time.perf_counter()
    src = open_benchmark("usptex", args.data)
    res = imgfeat.extract(src, out / "features", model=args.model, layers=args.layers,
                          pool=args.pool, resize="squash", img_size=224, overwrite=True,
                          progress=False)
    t1 = time.perf_counter()
    report = imgfeat.classify(res.output, classifiers=args.classifier, repeats=args.repeats)
    t2 = time.perf_counter()
    report.write(out / "classification")
    print(f"USPtex: {res.ok} images, {len(set(src.labels))} classes, {res.dim} features "
          f"({args.model}, layers={args.layers}, pool={args.pool}, 224 px squash)")
    print(report.table())
    print(f"time: extraction {t1 - t0:.0f} s + classification {t2 - t1:.0f} s = {t2 - t0:.0f} s"
          f" (target < 600 s)")
    print(f"results in {out}")


if __name__ == "__main__":
    main()
