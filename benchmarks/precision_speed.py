"""bf16 against fp32 speed inside extraction, on this machine: the CPU features found, what
``--precision auto`` picks, the forward pass of the Extractor (uint8 batch in, vectors out) in
each precision, measured interleaved (the machine's speed drifts), medians of the repeats.

    flock /tmp/imgfeat-bench.lock python benchmarks/precision_speed.py [--model M] [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from precision_usptex import cpu_features  # noqa: I001 - benchmarks run as scripts

from imgfeat import Extractor, ModelConfig


def rate(ex: Extractor, x: torch.Tensor, batches: int) -> float:
    """Images per second of ``batches`` forward passes of ``x`` (after one warm-up)."""
    ex.embed(x)
    t0 = time.perf_counter()
    for _ in range(batches):
        ex.embed(x)
    return batches * len(x) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tf_efficientnet_lite0")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(cpu_features())
    print(f"{torch.get_num_threads()} torch threads")
    ex = {p: Extractor(ModelConfig(model=args.model, precision=p)) for p in ("fp32", "bf16")}
    _, h, w = ex["fp32"].data_config["input_size"]
    x = torch.randint(0, 256, (args.batch_size, 3, h, w), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(0))
    rates = {"fp32": [], "bf16": []}
    for _ in range(args.repeats):
        for p in ("fp32", "bf16"):
            rates[p].append(rate(ex[p], x, args.batches))
    ratios = [b / f for f, b in zip(rates["fp32"], rates["bf16"], strict=True)]
    for p, r in rates.items():
        print(f"{p}: {statistics.median(r):.1f} img/s (runs: {', '.join(f'{v:.1f}' for v in r)})")
    print(f"bf16 / fp32: {statistics.median(ratios):.2f}x (median of {args.repeats} interleaved "
          f"pairs, {args.model}, batch {args.batch_size}, {h}x{w})")


if __name__ == "__main__":
    main()
