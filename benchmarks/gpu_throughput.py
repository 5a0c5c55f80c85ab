"""The GPU path: model-only and whole-run images/s on CUDA, PIL decode against nvJPEG.

Per model (default resnet50 and vit_base_patch16_224 at 224 px, random weights: the speed does
not depend on them and the GPU machines reach no hub): the forward pass alone on a ready batch
in channels-last bf16 (what timm's published inference tables measure: compare with the
``benchmark-infer-amp-nhwc-*.csv`` figures of timm's results folder for the same GPU), then
``imgfeat.extract`` of generated 500×375 JPEGs with ``--jpeg-decoder pil`` (decode workers) and
``torchvision`` (batched nvJPEG on the GPU, pinned batches). Prints the GPU, the CPU features
and torch's version. ``--device cpu --models test_resnet test_vit --images 32`` checks the
script itself on a machine without a GPU (the figures then mean nothing).

    python benchmarks/gpu_throughput.py [--batch 256] [--images 4096]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from extract_throughput import make_images  # noqa: I001 - benchmarks run as scripts
from precision_usptex import cpu_features

import imgfeat
from imgfeat import Extractor, ModelConfig


def model_only(model: str, device: str, batch: int, seconds: float) -> float:
    """Images/s of the network alone (no pooling, no copy) on a ready normalised batch."""
    ex = Extractor(ModelConfig(model=model, pretrained=False, img_size=224,
                               precision="bf16" if device == "cuda" else "fp32"), device=device)
    x = torch.randn(batch, 3, 224, 224, device=device).contiguous(
        memory_format=torch.channels_last)
    net = ex.backbone
    ctx = (torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda"
           else torch.autocast("cpu", enabled=False))

    def step() -> None:
        with torch.inference_mode(), ctx:
            net(x)
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):
        step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += batch
    return n / (time.perf_counter() - t0)


def whole_run(folder: Path, model: str, device: str, decoder: str, batch: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        res = imgfeat.extract(folder, f"{out}/f", model=model, pretrained=False, img_size=224,
                              device=device, jpeg_decoder=decoder, batch_size=batch,
                              progress=False, runtime="torch")
        return res.ok / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet50", "vit_base_patch16_224"])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    print(cpu_features())
    print(f"torch {torch.__version__}; device {args.device}"
          + (f": {torch.cuda.get_device_name()}" if args.device == "cuda" else ""))
    folder = make_images(Path(tempfile.gettempdir()) / f"imgfeat-gpu-{args.images}",
                         args.images, (500, 375))
    print("| model | model only, bf16 channels-last (img/s) | whole run, PIL decode | "
          "whole run, nvJPEG (torchvision) |")
    print("|---|---|---|---|")
    for model in args.models:
        fwd = model_only(model, args.device, args.batch, args.seconds)
        pil = whole_run(folder, model, args.device, "pil", args.batch)
        tv = whole_run(folder, model, args.device, "torchvision", args.batch)
        print(f"| {model} | {fwd:.0f} | {pil:.0f} | {tv:.0f} |", flush=True)


if __name__ == "__main__":
    main()
