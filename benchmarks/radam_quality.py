"""The texture poolings against their baselines on the real USPtex set, with the packaged
EfficientNet-Lite0 weights: GAP of the last stage, GAP of all stages concatenated, RADAM (m = 4)
and its "spectral" variant, mean+std per channel (last stage, all stages), bilinear (B-CNN)
and covariance pooling of the last stage (64 random channels, stride 32: the map GAP-last
pools), and VORTEX over the stages
(RADAM's aggregation, its 16 encoders with bias 1); each under 10 × stratified 10-fold CV and
a few-shot protocol (2 training images per class, 10 repetitions), with 1-NN, LDA and a linear
SVM. Prints one table (accuracy %, mean ± std).

Features are extracted once per pooling and kept in OUTPUT/<pooling>/, classification results
in OUTPUT/<pooling>_<protocol>/: a second run with the same --output reuses both (give
--output to keep them). With a ViT (``--model beitv2_base_patch16_224.in1k_ft_in22k_in1k
--only VORTEX``, where the hub is reachable) VORTEX pools every block's tokens.

    python benchmarks/radam_quality.py [--data ../shared/data/usptex] [--output DIR]
        [--only NAME …] [--classifiers knn lda svm] [--protocols kfold fewshot]
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
    "mean+std-last": {"layers": "-1", "pool": "meanstd"},
    "mean+std-all": {"layers": "all", "pool": "meanstd"},
    # the last stage at the network's own stride, the map GAP-last and mean+std-last pool
    "bilinear": {"pool": "bilinear", "output_stride": 32},
    "covariance": {"pool": "bilinear", "pool_args": {"statistic": "covariance"},
                   "output_stride": 32},
    "bilinear-os8": {"pool": "bilinear"},  # the pooling's own default: stride 8 (28×28)
    "covariance-os8": {"pool": "bilinear", "pool_args": {"statistic": "covariance"}},
    "VORTEX": {"pool": "vortex"},
}
CLASSIFIERS = ("knn", "lda", "svm")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--model", default="tf_efficientnet_lite0")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--output", default=None)
    ap.add_argument("--only", nargs="+", choices=list(CONFIGS), default=list(CONFIGS),
                    help="the poolings to run (default: all)")
    ap.add_argument("--classifiers", nargs="+", choices=CLASSIFIERS, default=list(CLASSIFIERS))
    ap.add_argument("--protocols", nargs="+", choices=("kfold", "fewshot"),
                    default=["kfold", "fewshot"])
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
        for protocol in args.protocols:
            rows.append((name, res.dim, protocol, classified(res.output, out / f"{name}_{protocol}",
                                                             protocol, args)))
        print(f"{name}: {res.dim} features, extraction {t1 - t0:.0f} s, "
              f"classification {time.perf_counter() - t1:.0f} s", flush=True)
    weights = " (packaged ImageNet weights)" if args.model == "tf_efficientnet_lite0" else ""
    print(f"\nUSPtex, {args.model}{weights}, 224 px squash; accuracy %, "
          f"mean ± std over {args.repeats} repetitions")
    print("| pooling | dim | protocol | 1-NN | LDA | linear SVM |")
    print("|---|---|---|---|---|---|")
    for name, dim, protocol, s in rows:
        cells = " | ".join(f"{100 * s[c]['accuracy']:.2f} ± {100 * s[c]['accuracy_std']:.2f}"
                           if c in s else "-" for c in CLASSIFIERS)
        label = "10×10-fold" if protocol == "kfold" else "2-shot ×10"
        print(f"| {name} | {dim} | {label} | {cells} |")


def classified(features: Path, folder: Path, protocol: str, args) -> dict:
    """{classifier: summary} of ``features`` under ``protocol``, one classifier at a time: read
    from ``folder``_<classifier> when a run with these settings and features wrote it, else
    classified and written there."""
    from imgfeat.store.atomic import read_json

    made_from = read_json(features / "_imgfeat.json").get("config_hash")
    out = {}
    for clf in args.classifiers:
        done = folder.with_name(f"{folder.name}_{clf}") / "summary.json"
        for path in (done, folder / "summary.json"):  # its own, or one of all classifiers
            old = read_json(path) if path.is_file() else {"settings": {}, "results": []}
            settings = old["settings"]
            have = {r["classifier"]: r for r in old["results"]}
            if (clf in have and settings.get("repeats") == args.repeats
                    and settings.get("shots") == 2
                    and (settings.get("features") or {}).get("config_hash") in (None, made_from)):
                out[clf] = have[clf]
                break
        if clf in out:
            continue
        report = imgfeat.classify(features, classifiers=[clf], protocol=protocol,
                                  repeats=args.repeats, shots=2)
        report.write(done.parent, plots=False)
        out[clf] = report.results[0].summary()
    return out


if __name__ == "__main__":
    main()
