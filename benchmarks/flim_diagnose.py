"""FLIM diagnosis on the tuning half of USPtex (even class index): per conv layer, how diverse the
kernels are (mean |mutual cosine|, effective rank) for learned and random filters, and the CV
accuracy (LDA, linear SVM, 10-fold, standardised stage averages) of recipe variants. In-process
(the public Python functions ``markers_from_labels`` / ``learn_filters``), for quick figures;
``flim_usptex.py`` is the held-out, through-the-CLI benchmark.

    flock /tmp/imgfeat-bench.lock python benchmarks/flim_diagnose.py [--grey] [--variants ...]
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
from imgfeat.flim.architecture import parse_architecture
from imgfeat.flim.automark import markers_from_labels
from imgfeat.flim.data import read_images
from imgfeat.flim.learn import learn_filters
from imgfeat.flim.markers import read_marker_set
from imgfeat.flim.network import FlimConv2d, FlimNetwork
from imgfeat.sources import open_source

DEFAULT_DATA = next((p / "shared" / "data" / "usptex" for p in Path(__file__).resolve().parents
                     if (p / "shared" / "data" / "usptex").is_dir()), Path("usptex"))
TEXTURE = Path(__file__).resolve().parents[1] / "src" / "imgfeat" / "flim" / "architectures"


def arch(widths=(32, 64, 128), k=3, kpm=4, reduce="auto", whiten=False, center=True, pool=(3, 2),
         clustering="per_marker", complement=0.0, bias=False, dilation=(1, 1, 1)) -> dict:
    """A texture-style network: ``complement`` is the fraction of each layer's kernels drawn
    orthogonal to the learned ones; ``bias`` folds the marker statistics into the convolutions
    (no m-norm layers, as flim-python-demo's ``use_bias``); ``dilation`` per layer."""
    layers: dict = {}
    ch = 3
    for i, (w, d) in enumerate(zip(widths, dilation, strict=True), 1):
        red = "pca" if reduce == "auto" and w <= k * k * ch else ("kmeans" if reduce == "auto" else reduce)
        if not bias:
            layers[f"m-norm{i}"] = {"operation": "m_norm2d"}
        layers[f"conv{i}"] = {"operation": "conv2d", "params": {
            "kernel_size": k, "padding": d * (k // 2), "dilation": d, "number_of_kernels_per_marker": kpm,
            "out_channels": w, "reduce": red, "center_patches": center, "whiten": whiten,
            "clustering": clustering, "complement_kernels": round(complement * w), "bias": bias,
            "activation": {"operation": "relu"},
            "pool": {"operation": "max_pool2d", "params": {"kernel_size": pool[0], "stride": pool[1],
                                                            "padding": pool[0] // 2}}}}
        ch = w
    return {"features": {"type": "sequential", "layers": layers}}


VARIANTS = {
    "bench": dict(),
    "bench-kmeans": dict(reduce="kmeans"),
    "whiten": dict(reduce="kmeans", whiten=True),
    "whiten-pca": dict(reduce="auto", whiten=True),
    "whiten-kpm8": dict(reduce="kmeans", whiten=True, kpm=8),
    "whiten-k5": dict(reduce="kmeans", whiten=True, k=5),
    # the original libraries' choices (LIDS-UNICAMP/FLIM, flim-python-demo)
    "global": dict(clustering="global"),
    "bias": dict(bias=True),
    "dilated": dict(pool=(3, 1), dilation=(1, 2, 4)),
    "kpm16": dict(kpm=16),
    "uncentred": dict(center=False),
    # learned + random kernels orthogonal to them
    "complement25": dict(complement=0.25),
    "complement50": dict(complement=0.5),
}
def diversity(w: torch.Tensor) -> tuple[float, float]:
    """Mean |cosine| between distinct kernels, and the effective rank (exp of the entropy of the
    normalised singular values) of the (out, in·k·k) kernel matrix."""
    k = w.flatten(1).double()
    k = k / k.norm(dim=1, keepdim=True).clamp_min(1e-12)
    c = (k @ k.T).abs()
    n = len(k)
    mc = float((c.sum() - c.diagonal().sum()) / (n * (n - 1)))
    s = torch.linalg.svdvals(k)
    p = s / s.sum()
    return mc, float(torch.exp(-(p * p.clamp_min(1e-30).log()).sum()))


def stage_means(net: FlimNetwork, x: torch.Tensor, batch: int = 128) -> np.ndarray:
    outs = []
    keep = [m for m in net.features.modules() if isinstance(m, torch.nn.MaxPool2d)]
    with torch.no_grad():
        for s in range(0, len(x), batch):
            got: list[torch.Tensor] = []
            hooks = [m.register_forward_hook(lambda _m, _i, o, got=got: got.append(o.mean((2, 3))))
                     for m in keep]
            net.forward_features(x[s: s + batch])
            for h in hooks:
                h.remove()
            outs.append(torch.cat(got, 1))
    return torch.cat(outs).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--grey", action="store_true")
    ap.add_argument("--variants", nargs="+", default=["bench", "whiten"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--images-per-class", type=int, default=2)
    ap.add_argument("--strokes", type=int, default=3)
    ap.add_argument("--random", action="store_true", help="also the random baseline of each variant")
    ap.add_argument("--random-only", action="store_true", help="only the random baseline of each variant")
    ap.add_argument("--no-svm", action="store_true")
    ap.add_argument("--time-cache", action="store_true",
                    help="only time learning with and without the per-layer map cache")
    ap.add_argument("--no-constant-fix", action="store_true",
                    help="m-norm divides constant channels by their ~0 std (as before #21)")
    args = ap.parse_args()
    if args.no_constant_fix:
        import imgfeat.flim.learn as learn_module

        learn_module.CONSTANT_STD = -1.0
    src = open_source(args.data, label_pattern=r"(\d+)C\d+")
    classes = sorted({it.label for it in src.items}, key=int)
    tune = set(classes[0::2])
    items = [it for it in src.items if it.label in tune]
    y = np.array([it.label for it in items])
    cache = Path(tempfile.gettempdir()) / f"flim3-tune-{'grey' if args.grey else 'rgb'}.pt"
    if cache.is_file():
        x = torch.load(cache)
    else:
        x = torch.stack(read_images(src, items, (128, 128)))
        if args.grey:
            g = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)  # PIL's L
            x = g.repeat(1, 3, 1, 1)
        torch.save(x, cache)
    tmp = Path(tempfile.mkdtemp(prefix="flim-diag-"))
    files = markers_from_labels(items, tmp, images_per_class=args.images_per_class, strokes=args.strokes,
                                seed=args.seed)
    marks, _ = read_marker_set(files, label_base=1)
    stem = {Path(it.path).stem: i for i, it in enumerate(items)}
    marked = [x[stem[f.stem]] for f in files]
    print(f"tuning half: {len(items)} images, {len(tune)} classes, {'grey' if args.grey else 'colour'}; "
          f"{len(files)} marked images, {sum(len(m) for m in marks)} marker pixels, seed {args.seed}")
    if args.time_cache:
        nets = {}
        for cached in (False, True, False, True):
            net = FlimNetwork(parse_architecture(arch(**VARIANTS[args.variants[0]])), (128, 128), "lab")
            t0 = time.perf_counter()
            rep = learn_filters(net, marked, marks, seed=args.seed, cache_maps=cached)
            layers = ", ".join(f"{r.name.split('.')[-1]} {r.seconds:.2f}" for r in rep.layers)
            print(f"cache_maps={cached}: learned in {time.perf_counter() - t0:.2f} s ({layers})", flush=True)
            nets[cached] = net.state_dict()
        same = all(torch.allclose(nets[True][k], nets[False][k], atol=1e-6) for k in nets[True])
        print(f"identical filters and statistics: {same}")
        return
    rows = []
    for v in args.variants:
        for rnd in ((True,) if args.random_only else (False, True) if args.random else (False,)):
            net = FlimNetwork(parse_architecture(arch(**VARIANTS[v])), (128, 128), "lab")
            t0 = time.perf_counter()
            learn_filters(net, marked, marks, seed=args.seed, random_kernels=rnd)
            t_learn = time.perf_counter() - t0
            div = [diversity(m.weight) for m in net.features.modules() if isinstance(m, FlimConv2d)]
            feats = stage_means(net, x)
            clfs = ("lda",) if args.no_svm else ("lda", "svm")
            rep = imgfeat.classify(feats, y, classifiers=clfs, protocol="kfold", folds=10, seed=0,
                                   standardize=True, n_jobs=2)
            acc = {r.name: 100 * r.summary()["accuracy"] for r in rep.results}
            name = f"{v}{' random' if rnd else ''}"
            dv = " ".join(f"{c:.2f}/{r:.1f}" for c, r in div)
            print(f"{name:22s} learn {t_learn:5.1f}s  " + "  ".join(f"{k} {a:5.2f}" for k, a in acc.items())
                  + f"  |cos|/eff.rank per layer: {dv}", flush=True)
            rows.append({"variant": name, "learn_s": t_learn, "acc": acc, "diversity": div})
    (tmp / "diag.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
