"""RADAM's cost next to the backbone: forward time of the stage maps at batch size 32, with
and without the RADAM pooling (same backbone, output stride 8 as RADAM uses).

    python benchmarks/radam_speed.py [--model tf_efficientnet_lite0] [--batch 32]
"""

from __future__ import annotations

import argparse
import time

import torch

from imgfeat import Extractor
from imgfeat.config import ModelConfig, RunConfig
from imgfeat.preprocess import normalize


def timed(fn, reps: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tf_efficientnet_lite0")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(RunConfig().resolved_threads_workers()[0])
    ex = Extractor(ModelConfig(model=args.model, pool="radam", img_size=args.img_size))
    x = torch.randint(0, 256, (args.batch, 3, args.img_size, args.img_size), dtype=torch.uint8)
    xin = normalize(x, ex.data_config["mean"], ex.data_config["std"]).contiguous(
        memory_format=torch.channels_last)
    with torch.inference_mode():
        maps = ex.backbone(xin)
        stage_maps = [maps[t.name] for t in ex.layers.taps]
        t_backbone = timed(lambda: ex.backbone(xin), args.reps)
        t_pool = timed(lambda: ex.pooling.pool_maps(stage_maps), args.reps * 3)
    t_total = timed(lambda: ex.embed(x), args.reps)
    print(f"{args.model}, batch {args.batch}, {args.img_size} px, output stride "
          f"{ex.output_stride}, {ex.dim}-d RADAM (m={ex.pooling.m})")
    print(f"backbone (all stages)   : {1000 * t_backbone:8.1f} ms per batch")
    print(f"RADAM pooling           : {1000 * t_pool:8.1f} ms per batch "
          f"= {100 * t_pool / t_backbone:.1f}% of the backbone (target <= 15%)")
    print(f"embed() end to end      : {1000 * t_total:8.1f} ms per batch")


if __name__ == "__main__":
    main()
