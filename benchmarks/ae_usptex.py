"""FeXT on USPtex: train an autoencoder for a bounded time on 2 CPU cores, then compare
(a) the trained encoder's pooled features, (b) the same encoder untrained, (c) raw down-sampled
pixels, with linear SVM and LDA under stratified 10-fold CV (imgfeat.classify); also the
test-split PSNR/SSIM of the reconstructions. Prints the figures, the training time and images/s.

The images are taken at their native 128×128; training sees random 64×64 patches of them
(``patch``), so an epoch costs a quarter of whole images and the filters learn the textures at
full resolution; validation, the test split and the features take whole images. Features are
the global average of the latent (what ``imgfeat extract --model ae:RUN`` gives by default)
and the average of every stage (``--layers all``).

    flock /tmp/imgfeat-bench.lock python benchmarks/ae_usptex.py [--budget 600] [--quick]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import imgfeat
from imgfeat.autoencoder import AEConfig, evaluate, train
from imgfeat.autoencoder.checkpoint import save_weights
from imgfeat.autoencoder.data import augment, load_images, make_split, to_float
from imgfeat.autoencoder.model import AutoEncoder, describe_shapes
from imgfeat.device import autocast
from imgfeat.precision import resolve_precision
from imgfeat.sources.benchmarks import open_benchmark

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "usptex"


def calibrate(cfg: AEConfig, pixels: torch.Tensor, steps: int = 6, warmup: int = 3) -> float:
    """Training images per second of this network (a throwaway copy, a few steps)."""
    torch.manual_seed(cfg.seed)
    model = AutoEncoder(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    precision = resolve_precision(cfg.precision, "cpu")
    gen = torch.Generator().manual_seed(cfg.seed)
    x = augment(to_float(pixels[:cfg.batch_size]), cfg, gen)
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        with autocast(precision, "cpu"):
            recon = model(x)
        loss = torch.nn.functional.mse_loss(recon.float(), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * len(x) / (time.perf_counter() - t0)


def features(model: str, src, out: Path, ids: list[str], layers: str | None) -> np.ndarray:
    """Average-pooled features through imgfeat.extract (the latent, or every stage), in the
    order of ``ids``."""
    res = imgfeat.extract(src, out, model=model, layers=layers, pool="avg", resize="squash",
                          overwrite=True, progress=False)
    X, _, got, _ = imgfeat.load_features(res.output)
    order = {i: n for n, i in enumerate(got)}
    return np.asarray(X)[[order[i] for i in ids]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--size", type=int, default=128, help="input height = width in pixels")
    ap.add_argument("--patch", type=int, default=64, help="training patch side (0: whole)")
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--base-width", type=int, default=16)
    ap.add_argument("--max-width", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--budget", type=float, default=600, help="training seconds")
    ap.add_argument("--raw-size", type=int, default=16, help="side of the raw-pixel baseline")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (20 classes, 20 s)")
    ap.add_argument("--output", help="keep the run and features here")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    out = Path(args.output or tempfile.mkdtemp(prefix="ae-usptex-"))
    src = open_benchmark("usptex", args.data)
    if args.quick:
        from imgfeat.sources import Source

        classes = sorted(set(src.labels))[:20]
        src = Source([it for it in src.items if it.label in classes])
        args.budget = 20
    torch.set_num_threads(2)
    cfg = AEConfig(height=args.size, width=args.size, depth=args.depth,
                   base_width=args.base_width, max_width=args.max_width,
                   batch_size=args.batch_size, lr=args.lr, hflip=True, vflip=True,
                   patch=args.patch,
                   precision="auto", progress=False)
    t0 = time.perf_counter()
    everything = load_images(src, cfg)
    split = make_split([it.id for it in src.items], cfg.val_fraction, cfg.test_fraction, cfg.seed)
    n_train = len(split["train"])
    rate = calibrate(cfg, everything.pixels)
    epochs = max(1, math.floor(args.budget * rate / n_train))
    cfg = cfg.override(epochs=epochs)
    print(f"USPtex: {len(everything)} images; {describe_shapes(cfg)}; precision "
          f"{resolve_precision(cfg.precision, 'cpu')}; calibrated {rate:.0f} images/s -> "
          f"{epochs} epochs of {n_train} images")
    run = out / "run"
    result = train(src, run, cfg, log=lambda m: print("  " + m, flush=True))
    print(f"training: {result.seconds:.0f} s, {result.images_per_s:.1f} images/s, "
          f"{result.epochs_done} epochs, best validation MSE {result.best_val_loss:.5f} "
          f"(epoch {result.best_epoch})")
    ev = evaluate_test(run, src, split, out)
    print(f"test split ({len(ev.ids)} images): PSNR {ev.summary['psnr']['mean']:.2f} dB, "
          f"SSIM {ev.summary['ssim']['mean']:.4f}, MSE {ev.summary['mse']['mean']:.5f}")

    torch.manual_seed(cfg.seed)
    untrained = out / "untrained.safetensors"
    save_weights(untrained, AutoEncoder(cfg))
    ids, labels = everything.ids, dict(zip([it.id for it in src.items], src.labels, strict=True))
    y = np.array([labels[i] for i in ids])
    raw = torch.nn.functional.interpolate(to_float(everything.pixels),
                                          size=(args.raw_size, args.raw_size), mode="area")
    sets = {}
    for layers, what in ((None, "latent avg"), ("all", "stages avg")):
        for name, model in (("trained", f"ae:{run}"), ("untrained", f"ae:{untrained}")):
            sets[f"{name}, {what}"] = features(model, src, out / f"f_{name}_{layers}", ids,
                                               layers)
    sets[f"raw pixels {args.raw_size}x{args.raw_size}"] = raw.flatten(1).numpy()
    print(f"10-fold stratified CV, standardized features, {len(set(y))} classes; accuracy %")
    print(f"{'features':<26}{'dim':>6}{'linear SVM':>14}{'LDA':>14}")
    for name, X in sets.items():
        rep = imgfeat.classify(X, y, classifiers=["svm", "lda"], folds=10, repeats=1,
                               standardize=True, n_jobs=2)
        acc = {r.name: np.array([f["accuracy"] for f in r.folds]) for r in rep.results}
        print(f"{name:<26}{X.shape[1]:>6}" + "".join(
            f"{100 * acc[c].mean():>8.2f} ± {100 * acc[c].std():.1f}" for c in ("svm", "lda")))
    print(f"total {time.perf_counter() - t0:.0f} s; results in {out}")


def evaluate_test(run: Path, src, split: dict, out: Path):
    """Reconstruction metrics on the run's own test split."""
    from imgfeat.sources import Source

    test = set(split["test"])
    return evaluate(run, Source([it for it in src.items if it.id in test]), out / "eval")


if __name__ == "__main__":
    main()
