"""bf16 against fp32 on USPtex: the CPU features found, what ``--precision auto`` picks here,
extraction speed in each precision and 1-NN / LDA / linear SVM accuracy under 10 × 10-fold CV.
``auto`` may default to bf16 only where the accuracy stays within 0.5 percentage points.

    flock /tmp/imgfeat-bench.lock python benchmarks/precision_usptex.py [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import imgfeat
from imgfeat.precision import native_bf16, resolve_precision
from imgfeat.sources import PathsSource
from imgfeat.sources.benchmarks import open_benchmark

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "usptex"
TOLERANCE_PP = 0.5


def cpu_features() -> str:
    """The CPU's bf16-related features, as /proc/cpuinfo and torch see them."""
    import torch

    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags |= set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16")
    found = ", ".join(f for f in wanted if f in flags) or "none of " + ", ".join(wanted)
    return (f"CPU flags: {found}; torch capability {torch.backends.cpu.get_cpu_capability()}; "
            f"oneDNN native bf16: {native_bf16('cpu')}; --precision auto -> "
            f"{resolve_precision('auto', 'cpu')}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--model", default="tf_efficientnet_lite0")
    ap.add_argument("--classifier", nargs="+", default=["knn", "lda", "svm"])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 10 classes (120 images), 3 x 4-fold CV, 1-NN and LDA")
    args = ap.parse_args()
    print(cpu_features())
    src = open_benchmark("usptex", args.data)
    folds, repeats, classifiers = 10, args.repeats, args.classifier
    if args.quick:
        keep = sorted(set(src.labels))[:10]
        items = [it for it in src.items if it.label in keep]
        src = PathsSource([it.path for it in items], [it.label for it in items])
        folds, repeats, classifiers = 4, 3, ["knn", "lda"]
    out = Path(tempfile.mkdtemp(prefix="precision-"))
    acc: dict[str, dict[str, float]] = {}
    for precision in ("fp32", "bf16"):
        t0 = time.perf_counter()
        res = imgfeat.extract(src, out / precision, model=args.model, resize="squash",
                              img_size=224, precision=precision, overwrite=True, progress=False)
        seconds = time.perf_counter() - t0
        report = imgfeat.classify(res.output, classifiers=classifiers, folds=folds,
                                  repeats=repeats)
        acc[precision] = {r.name: 100 * r.summary()["accuracy"] for r in report.results}
        print(f"{precision}: extraction {seconds:.1f} s ({res.ok / seconds:.1f} images/s, "
              f"{res.ok} images, {res.dim} values); "
              + ", ".join(f"{k} {v:.2f}%" for k, v in acc[precision].items())
              + f" ({repeats}x{folds}-fold CV)")
    worst = max(abs(acc["bf16"][k] - acc["fp32"][k]) for k in acc["fp32"])
    print(f"largest accuracy difference bf16 vs fp32: {worst:.2f} pp "
          f"({'within' if worst <= TOLERANCE_PP else 'OUTSIDE'} {TOLERANCE_PP} pp)")


if __name__ == "__main__":
    main()
