"""Extraction speed and memory, in one run on the same images and model.

Prints: forward-only images/s on ready tensors (best batch size and memory format), end-to-end
images/s of ``imgfeat.extract`` (fp32 and bf16), a naive one-image-at-a-time loop (open,
transform, forward in NCHW fp32, as older embedding scripts do), thread/worker alternatives on
light and on decode-heavy images, and peak memory of extraction at 1,000 and 10,000 images.
Forward-only, imgfeat and the naive loop are measured back to back in each of ``--repeats``
repeats and reported as medians (ratios taken within a repeat), as the machine's speed drifts.

    python benchmarks/extract_throughput.py [--images 384] [--model tf_efficientnet_lite0]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def make_images(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> Path:
    """``n`` JPEG photos of ``size`` cut from scikit-image's bundled pictures."""
    import skimage.data

    if folder.is_dir() and len(list(folder.rglob("*.jpg"))) >= n:
        return folder
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pics = [np.asarray(Image.fromarray(getattr(skimage.data, name)()).convert("RGB"))
                for name in ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
                             "immunohistochemistry", "retina")]
    rng = np.random.default_rng(seed)
    for k in range(n):
        pic = pics[k % len(pics)]
        h, w = pic.shape[:2]
        ch, cw = rng.integers(h // 2, h), rng.integers(w // 2, w)
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        img = Image.fromarray(pic[y:y + ch, x:x + cw]).resize(size, Image.Resampling.BILINEAR)
        sub = folder / f"c{k % 7}"
        sub.mkdir(parents=True, exist_ok=True)
        img.save(sub / f"{k:05d}.jpg", quality=90)
    return folder


def make_heavy(folder: Path, photos: Path, n: int, size=(1600, 1200)) -> Path:
    """``n`` large PNGs (slow to decode: ~85 ms each here), enlarged from the JPEG photos."""
    if folder.is_dir() and len(list(folder.rglob("*.png"))) >= n:
        return folder
    for k, p in enumerate(sorted(photos.rglob("*.jpg"))[:n]):
        sub = folder / f"c{k % 4}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.open(p).resize(size, Image.Resampling.BICUBIC).save(sub / f"{k:04d}.png")
    return folder


class ForwardOnly:
    """Images/s of the backbone + pooling on ready, normalised tensors."""

    def __init__(self, extractor, n: int):
        self.ex, self.n = extractor, n
        self.all = {f"{fmt} bs{bs}": self.rate(fmt, bs) for fmt in ("channels_last", "nchw")
                    for bs in (1, 4, 8, 16, 32)}
        self.best = max(self.all, key=self.all.get)
        extractor.backbone.to(memory_format=torch.channels_last)

    def rate(self, fmt: str | None = None, bs: int | None = None) -> float:
        """One measurement of ``fmt`` at batch ``bs`` (the best of the sweep by default)."""
        from imgfeat.preprocess import normalize

        if fmt is None:
            fmt, b = self.best.split(" bs")
            bs = int(b)
        _, h, w = self.ex.data_config["input_size"]
        net = self.ex.backbone.to(memory_format=torch.channels_last if fmt == "channels_last"
                                  else torch.contiguous_format)
        x = normalize(torch.randint(0, 256, (bs, 3, h, w), dtype=torch.uint8),
                      self.ex.data_config["mean"], self.ex.data_config["std"])
        if fmt == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            net(x)
            t0, done = time.perf_counter(), 0
            while done < self.n:
                maps = net(x)
                [self.ex.pooling(maps[t.name]) for t in self.ex.layers.taps]
                done += bs
        return done / (time.perf_counter() - t0)


def naive_loop(model_name: str, paths: list[Path]) -> tuple[float, float]:
    """Open, transform and forward one image at a time, NCHW fp32 (the old scripts' way).

    Returns (images/s of the loop alone, images/s of the whole run with the model load), so that
    both can be set against imgfeat's steady state and whole run."""
    import timm.data

    from imgfeat.backbones.timm import create_timm_model
    from imgfeat.config import ModelConfig

    t_start = time.perf_counter()
    model, _ = create_timm_model(ModelConfig(model=model_name))
    model.eval()
    transform = timm.data.create_transform(**timm.data.resolve_model_data_config(model))
    with torch.no_grad():
        t0 = time.perf_counter()
        for p in paths:
            x = transform(Image.open(p).convert("RGB")).unsqueeze(0)
            model.forward_head(model.forward_features(x), pre_logits=True).numpy()
    end = time.perf_counter()
    return len(paths) / (end - t0), len(paths) / (end - t_start)


def end_to_end(folder: Path, model: str, precision: str, **kw) -> float:
    import imgfeat

    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        res = imgfeat.extract(folder, Path(out) / "f", model=model, precision=precision,
                              progress=False, **kw)
        return res.items / (time.perf_counter() - t0)


def spread(values: list[float]) -> str:
    """Median and range of repeated measurements (this shared machine varies by ~5 %)."""
    return f"median of {len(values)}, range {min(values):.1f}-{max(values):.1f}"


def peak_memory(folder: Path, model: str, img_size: int) -> float:
    """Peak RSS (MiB) of a separate process extracting ``folder``."""
    code = (
        "import resource, sys, tempfile, imgfeat\n"
        "with tempfile.TemporaryDirectory() as d:\n"
        f"    imgfeat.extract({str(folder)!r}, d + '/f', model={model!r}, img_size={img_size},"
        " progress=False)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tf_efficientnet_lite0")
    ap.add_argument("--images", type=int, default=384, help="images for the speed figures")
    ap.add_argument("--size", default="512x384", help="size of the generated JPEGs")
    ap.add_argument("--bf16-images", type=int, default=48)
    ap.add_argument("--heavy-images", type=int, default=64,
                    help="large PNGs for the decode-bound worker comparison (0: skip)")
    ap.add_argument("--repeats", type=int, default=3, help="end-to-end runs per figure (median)")
    ap.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--memory-img-size", type=int, default=96,
                    help="model input size for the 1,000 vs 10,000 image memory runs")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "imgfeat-bench"))
    args = ap.parse_args()

    import imgfeat
    from imgfeat.config import ModelConfig, RunConfig

    w, h = (int(v) for v in args.size.split("x"))
    work = Path(args.work)
    folder = make_images(work / f"photos_{args.size}_{args.images}", args.images, (w, h))
    threads, workers = RunConfig().resolved_threads_workers()
    torch.set_num_threads(threads)
    print(f"model {args.model}, {args.images} JPEG images of {w}x{h}, "
          f"{threads} torch threads, {workers} decode worker(s)")
    ex = imgfeat.Extractor(ModelConfig(model=args.model))
    fwd = ForwardOnly(ex, n=max(64, args.images // 4))
    print(f"forward-only sweep (ready tensors), best {fwd.best}:")
    print("    " + ", ".join(f"{k} {v:.1f}" for k, v in fwd.all.items()))
    plain = ForwardOnly(imgfeat.Extractor(ModelConfig(model=args.model, fold_bn=False)),
                        n=max(64, args.images // 4))
    print(f"  without BatchNorm folding   : {plain.all[plain.best]:6.1f} img/s  best: {plain.best}"
          f" (vs {fwd.all[fwd.best]:.1f} folded, same sweep)")
    del plain
    double = make_images(work / f"photos_{args.size}_{2 * args.images}", 2 * args.images, (w, h))
    paths = sorted(folder.rglob("*.jpg"))[: max(64, args.images // 3)]
    # The machine's speed drifts by several percent over minutes, so every repeat measures all
    # the rates back to back and the ratios are taken within a repeat, then their median.
    rows = []
    for _ in range(args.repeats):
        f = fwd.rate()
        e1 = end_to_end(folder, args.model, "fp32")
        e2 = end_to_end(double, args.model, "fp32")
        loop, naive_whole = naive_loop(args.model, paths)
        steady = args.images / (2 * args.images / e2 - args.images / e1)
        rows.append({"forward": f, "whole": e1, "whole2": e2, "steady": steady, "loop": loop,
                     "naive_whole": naive_whole})

    def med(key: str) -> float:
        return float(np.median([r[key] for r in rows]))

    def ratio(a: str, b: str) -> float:
        return float(np.median([r[a] / r[b] for r in rows]))

    print(f"(each figure: median of {args.repeats} interleaved repeats; ranges in brackets)")
    print(f"forward-only, {fwd.best:<15}: {med('forward'):6.1f} img/s  "
          f"({spread([r['forward'] for r in rows])})")
    print(f"end-to-end fp32 (imgfeat)     : {med('whole'):6.1f} img/s  = "
          f"{ratio('whole', 'forward'):.2f}x forward-only (whole {args.images}-image run, model "
          f"load included; {spread([r['whole'] for r in rows])})")
    print(f"  whole {2 * args.images}-image run        : {med('whole2'):6.1f} img/s  = "
          f"{ratio('whole2', 'forward'):.2f}x forward-only")
    print(f"  steady state                : {med('steady'):6.1f} img/s  = "
          f"{ratio('steady', 'forward'):.2f}x forward-only (the extra {args.images} images of "
          f"the {2 * args.images}-image run)")
    print(f"naive one-at-a-time loop      : {med('loop'):6.1f} img/s  loop alone; "
          f"{med('naive_whole'):.1f} img/s whole run with model load")
    print(f"  imgfeat vs naive            : whole run vs whole run {ratio('whole', 'naive_whole'):.2f}x"
          f" ({args.images} images), {ratio('whole2', 'naive_whole'):.2f}x ({2 * args.images} "
          f"images); steady state vs loop alone {ratio('steady', 'loop'):.2f}x")
    for kw in ({"num_workers": 1}, {"num_workers": 1, "threads": max(1, threads - 1)}):
        alt = end_to_end(folder, args.model, "fp32", **kw)
        print(f"    alternative {json.dumps(kw):<34}: {alt:6.1f} img/s")
    if args.heavy_images:
        heavy = make_heavy(work / f"png_1600x1200_{args.heavy_images}", folder, args.heavy_images)
        rates = {json.dumps(kw): end_to_end(heavy, args.model, "fp32", **kw)
                 for kw in ({}, {"num_workers": 1}, {"num_workers": 1, "threads": 1},
                            {"num_workers": 2, "threads": 1})}
        print(f"heavy images ({args.heavy_images} PNG 1600x1200): "
              + ", ".join(f"{k} {v:.1f}" for k, v in rates.items()) + " img/s")
    bf_folder = make_images(work / f"photos_{args.size}_{args.bf16_images}", args.bf16_images,
                            (w, h))
    bf16 = end_to_end(bf_folder, args.model, "bf16")
    fp32_small = end_to_end(bf_folder, args.model, "fp32")
    print(f"end-to-end bf16               : {bf16:6.1f} img/s  = {bf16 / fp32_small:.2f}x fp32 "
          f"on the same {args.bf16_images} images; CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}")
    if args.memory:
        m1 = peak_memory(make_images(work / "small_1000", 1000, (128, 96)), args.model,
                         args.memory_img_size)
        m10 = peak_memory(make_images(work / "small_10000", 10000, (128, 96)), args.model,
                          args.memory_img_size)
        print(f"peak memory 1,000 images      : {m1:6.0f} MiB")
        print(f"peak memory 10,000 images     : {m10:6.0f} MiB  ({100 * (m10 / m1 - 1):+.1f}%)")


if __name__ == "__main__":
    main()
