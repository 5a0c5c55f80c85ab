"""FLIM on the real USPtex set: filters learned from automatic markers vs the same network with
random filters (same seed), linear SVM and LDA under stratified 10-fold CV, plus the learning
time and the extraction speed.

Markers come from the class labels: ``--strokes`` short strokes in ``--images-per-class`` images
of every class (no one drew). Features: the global average of every stage, concatenated. Both
networks get marker-measured normalisation; only the kernels differ.

    flock /tmp/imgfeat-bench.lock python benchmarks/flim_usptex.py [--quick] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import imgfeat
from imgfeat.backbones.weights import WeightsInfo
from imgfeat.flim.architecture import parse_architecture
from imgfeat.flim.automark import markers_from_labels
from imgfeat.flim.backbone import FlimBackbone
from imgfeat.flim.data import natural_size, read_images
from imgfeat.flim.learn import learn_filters
from imgfeat.flim.markers import read_marker_set
from imgfeat.flim.network import FlimNetwork, load_model, save_model
from imgfeat.sources.benchmarks import open_benchmark

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "usptex"


def architecture(widths: list[int], kernels_per_marker: int, reduce: str = "auto") -> dict:
    """m-norm → conv 3×3 → ReLU → max-pool 3/2, once per width. The marker kernels are reduced
    to ``out_channels`` by cosine k-means, or with ``reduce="auto"`` by PCA where the kernel has
    at least that many weights (as the original does; not the first layer: 3×3×3 = 27 < 32).
    Patches are centred per channel before k-means, so kernels see texture, not stroke colour."""
    layers: dict = {}
    channels = 3
    for i, w in enumerate(widths, start=1):
        layers[f"m-norm{i}"] = {"operation": "m_norm2d"}
        layers[f"conv{i}"] = {"operation": "conv2d", "params": {
            "kernel_size": 3, "padding": 1, "number_of_kernels_per_marker": kernels_per_marker,
            "out_channels": w, "reduce": "pca" if reduce == "auto" and w <= 9 * channels else "kmeans",
            "center_patches": True,
            "activation": {"operation": "relu"},
            "pool": {"operation": "max_pool2d", "params": {"kernel_size": 3, "stride": 2, "padding": 1}}}}
        channels = w
    return {"features": {"type": "sequential", "layers": layers}}


def features(net: FlimNetwork, images: torch.Tensor, batch: int) -> tuple[np.ndarray, float]:
    """Concatenated stage averages of every image, and the forward throughput (images/s)."""
    bb = FlimBackbone(net, WeightsInfo("random", "benchmark")).select("all").eval()
    out = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(images), batch):
            maps = bb(images[s: s + batch])
            out.append(torch.cat([m.mean(dim=(2, 3)) for m in maps.values()], 1))
    secs = time.perf_counter() - t0
    return torch.cat(out).numpy(), len(images) / secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128], help="out_channels per layer")
    ap.add_argument("--kernels-per-marker", type=int, default=4)
    ap.add_argument("--images-per-class", type=int, default=2)
    ap.add_argument("--strokes", type=int, default=3)
    ap.add_argument("--reduce", choices=("kmeans", "auto"), default="auto",
                    help="kernels -> out_channels: cosine k-means, or PCA where the kernel is large enough")
    ap.add_argument("--color", default="lab")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1, help="repetitions of the 10-fold CV")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="12 classes, 1 layer pair: a smoke run")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    src = open_benchmark("usptex", args.data)
    items = src.items
    if args.quick:
        keep = sorted(set(src.labels), key=int)[:12]
        items = [it for it in items if it.label in keep]
        args.widths = args.widths[:2]
    classes = sorted({it.label for it in items}, key=int)
    y = np.array([it.label for it in items])
    t0 = time.perf_counter()
    images = torch.stack(read_images(src, items, natural_size(src, items[0])))
    t_decode = time.perf_counter() - t0
    size = tuple(images.shape[-2:])

    tmp = Path(tempfile.mkdtemp(prefix="flim-usptex-"))
    files = markers_from_labels(items, tmp / "markers", images_per_class=args.images_per_class,
                                strokes=args.strokes, label_base=1, seed=args.seed)
    marks, _ = read_marker_set(files, label_base=1)
    by_stem = {Path(it.path).stem: i for i, it in enumerate(items)}
    marked = [by_stem[f.stem] for f in files]
    arch_spec = architecture(args.widths, args.kernels_per_marker, args.reduce)
    arch = parse_architecture(arch_spec)
    print(f"USPtex: {len(items)} images, {len(classes)} classes, {size[0]}x{size[1]} px; markers: "
          f"{args.strokes} strokes in {args.images_per_class} images per class = {len(files)} images, "
          f"{sum(len(m) for m in marks)} pixels")
    convs = [v["params"] for k, v in arch_spec["features"]["layers"].items() if k.startswith("conv")]
    blocks = " -> ".join(f"[m-norm, conv3x3x{p['out_channels']} ({p['reduce']}), relu, maxpool3/2]"
                         for p in convs)
    print(f"network ({args.color}): {blocks}, {args.kernels_per_marker} kernels per marker")

    results = {}
    for name, random_kernels in (("FLIM", False), ("random", True)):
        net = FlimNetwork(arch, size, args.color)
        t1 = time.perf_counter()
        rep = learn_filters(net, [images[i] for i in marked], marks, seed=args.seed,
                            random_kernels=random_kernels)
        t_learn = time.perf_counter() - t1
        path = save_model(tmp / f"{name}.safetensors", net, {"learn": rep.to_dict()})
        net = load_model(path)  # evaluate what was saved
        X, speed = features(net, images, args.batch)
        report = imgfeat.classify(X, y, classifiers=("svm", "lda"), protocol="kfold", folds=10,
                                  repeats=args.repeats, seed=args.seed, standardize=True, n_jobs=2)
        results[name] = {"learn_s": t_learn, "speed": speed, "dim": X.shape[1],
                         "scores": {r.name: r.summary() for r in report.results}}
        layers = ", ".join(f"{r.name.split('.')[-1]} {r.seconds:.2f}s" for r in rep.layers)
        print(f"\n{name} filters: learned in {t_learn:.2f} s ({layers})")
        print(f"  {X.shape[1]} features; extraction {speed:.0f} images/s (forward, {size[0]} px, "
              f"batch {args.batch}, {torch.get_num_threads()} threads)")
        print("  " + report.table().replace("\n", "\n  "))
    print(f"\n10-fold CV x{args.repeats}, standardised features; decode of {len(items)} images "
          f"{t_decode:.1f} s (not in the speed)")
    for clf in ("svm", "lda"):
        a, b = (results[k]["scores"][clf]["accuracy"] for k in ("FLIM", "random"))
        print(f"{clf}: FLIM {100 * a:.2f}% vs random {100 * b:.2f}% ({100 * (a - b):+.2f} points)")
    (tmp / "results.json").write_text(json.dumps(results, indent=2))
    print(f"results in {tmp}")


if __name__ == "__main__":
    main()
