"""Extraction speed and memory, in one run on the same images and model.

Prints: forward-only images/s on ready tensors (best batch size and memory format), end-to-end
images/s of ``imgfeat.extract`` (fp32 and bf16), a naive one-image-at-a-time loop (open,
transform, forward in NCHW fp32, as older embedding scripts do), and peak memory of extraction
at 1,000 and 10,000 images.

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


def forward_only(extractor, n: int) -> dict:
    """Best images/s of the backbone + pooling on ready, normalised tensors."""
    from imgfeat.preprocess import normalize

    _, h, w = extractor.data_config["input_size"]
    results = {}
    for fmt in ("channels_last", "nchw"):
        net = extractor.backbone.to(memory_format=torch.channels_last if fmt == "channels_last"
                                    else torch.contiguous_format)
        for bs in (1, 4, 8, 16, 32):
            x = normalize(torch.randint(0, 256, (bs, 3, h, w), dtype=torch.uint8),
                          extractor.data_config["mean"], extractor.data_config["std"])
            if fmt == "channels_last":
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                net(x)
                t0, done = time.perf_counter(), 0
                while done < n:
                    maps = net(x)
                    [extractor.pooling(maps[t.name]) for t in extractor.layers.taps]
                    done += bs
            results[f"{fmt} bs{bs}"] = done / (time.perf_counter() - t0)
    extractor.backbone.to(memory_format=torch.channels_last)
    best = max(results, key=results.get)
    return {"best": best, "images_per_s": results[best], "all": results}


def naive_loop(model_name: str, paths: list[Path]) -> float:
    """Open, transform and forward one image at a time, NCHW fp32 (the old scripts' way)."""
    import timm.data

    from imgfeat.backbones import create_timm_model
    from imgfeat.config import ModelConfig

    model, _ = create_timm_model(ModelConfig(model=model_name))
    model.eval()
    transform = timm.data.create_transform(**timm.data.resolve_model_data_config(model))
    with torch.no_grad():
        t0 = time.perf_counter()
        for p in paths:
            x = transform(Image.open(p).convert("RGB")).unsqueeze(0)
            model.forward_head(model.forward_features(x), pre_logits=True).numpy()
    return len(paths) / (time.perf_counter() - t0)


def end_to_end(folder: Path, model: str, precision: str, **kw) -> float:
    import imgfeat

    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        res = imgfeat.extract(folder, Path(out) / "f", model=model, precision=precision,
                              progress=False, **kw)
        return res.items / (time.perf_counter() - t0)


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
    fwd = forward_only(ex, n=max(64, args.images // 4))
    print(f"forward-only (ready tensors)  : {fwd['images_per_s']:6.1f} img/s  best: {fwd['best']}")
    print("    " + ", ".join(f"{k} {v:.1f}" for k, v in fwd["all"].items()))
    plain = imgfeat.Extractor(ModelConfig(model=args.model, fold_bn=False))
    fwd_plain = forward_only(plain, n=max(64, args.images // 4))
    del plain
    print(f"  without BatchNorm folding   : {fwd_plain['images_per_s']:6.1f} img/s  best: "
          f"{fwd_plain['best']}")
    e2e = end_to_end(folder, args.model, "fp32")
    print(f"end-to-end fp32 (imgfeat)     : {e2e:6.1f} img/s  = "
          f"{e2e / fwd['images_per_s']:.2f}x forward-only (whole run: model load included)")
    double = make_images(work / f"photos_{args.size}_{2 * args.images}", 2 * args.images, (w, h))
    e2e2 = end_to_end(double, args.model, "fp32")
    steady = args.images / (2 * args.images / e2e2 - args.images / e2e)
    print(f"  steady state                : {steady:6.1f} img/s  = "
          f"{steady / fwd['images_per_s']:.2f}x forward-only (the extra {args.images} images "
          f"of a {2 * args.images}-image run)")
    for kw in ({"num_workers": 0}, {"num_workers": 1, "threads": 1}):
        alt = end_to_end(folder, args.model, "fp32", **kw)
        print(f"    alternative {json.dumps(kw):<34}: {alt:6.1f} img/s")
    paths = sorted(folder.rglob("*.jpg"))
    naive = naive_loop(args.model, paths[: max(64, args.images // 3)])
    print(f"naive one-at-a-time loop      : {naive:6.1f} img/s  -> imgfeat is "
          f"{e2e / naive:.2f}x the naive loop")
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
