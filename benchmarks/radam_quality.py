"""RADAM against its baselines on the real USPtex set, with the packaged EfficientNet-Lite0
weights: GAP of the last stage, GAP of all stages concatenated, RADAM (m = 4) and its
"spectral" variant (one 4-unit auto-encoder, flattened decoder), each under
10 × stratified 10-fold CV and a few-shot protocol (2 training images per class, 10
repetitions), with 1-NN, LDA and a linear SVM. Prints one table (accuracy %, mean ± std).

    python benchmarks/radam_quality.py [--data ../shared/data/usptex] [--output DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

import imgfeat
from imgfeat.sources.benchmarks import open_benchmark

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "usptex"
CONFIGS = {  # name -> extract() options
    "GAP-last": {"layers": "-1", "pool": "avg"},
    "GAP-all": {"layers": "all", "pool": "avg"},
    "RADAM": {"pool": "radam"},
    "spectral": {"pool": "spectral"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--model", default="tf_efficientnet_lite0")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--output", default=None)
    ap.add_argument("--only", nargs="+", choices=list(CONFIGS), default=list(CONFIGS),
                    help="the poolings to run (default: all)")
    args = ap.parse_args()
    out = Path(args.output or tempfile.mkdtemp(prefix="radam-"))
    print(f"CPU: {platform.processor() or platform.machine()}, torch capability "
          f"{torch.backends.cpu.get_cpu_capability()}, native bf16 "
          f"{torch.ops.mkldnn._is_mkldnn_bf16_supported()}, {os.cpu_count()} cores", flush=True)
    src = open_benchmark("usptex", args.data)
    rows = []
    for name in args.only:
        opts = CONFIGS[name]
        t0 = time.perf_counter()
        res = imgfeat.extract(src, out / name, model=args.model, resize="squash", img_size=224,
                              precision="fp32", progress=False,
                              resume=(out / name / "_imgfeat.json").is_file(),
                              **opts)
        t1 = time.perf_counter()
        for protocol in ("kfold", "fewshot"):
            report = imgfeat.classify(res.output, classifiers=["knn", "lda", "svm"],
                                      protocol=protocol, repeats=args.repeats, shots=2)
            report.write(out / f"{name}_{protocol}", plots=False)
            rows.append((name, res.dim, protocol, {r.name: r.summary() for r in report.results}))
        print(f"{name}: {res.dim} features, extraction {t1 - t0:.0f} s, "
              f"classification {time.perf_counter() - t1:.0f} s", flush=True)
    print(f"\nUSPtex, {args.model} (packaged ImageNet weights), 224 px squash; accuracy %, "
          f"mean ± std over {args.repeats} repetitions")
    print("| pooling | dim | protocol | 1-NN | LDA | linear SVM |")
    print("|---|---|---|---|---|---|")
    for name, dim, protocol, s in rows:
        cells = " | ".join(f"{100 * s[c]['accuracy']:.2f} ± {100 * s[c]['accuracy_std']:.2f}"
                           for c in ("knn", "lda", "svm"))
        label = "10×10-fold" if protocol == "kfold" else "2-shot ×10"
        print(f"| {name} | {dim} | {label} | {cells} |")


if __name__ == "__main__":
    main()
