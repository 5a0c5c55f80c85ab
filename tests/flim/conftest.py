"""Shared builders of the FLIM tests: a conv layer's architecture entry and marked images."""

from __future__ import annotations

import torch

from imgfeat.flim.markers import markers_from_image_label


def conv_layer(k: int = 1, n: int = 2, out: int = 2, **extra) -> dict:
    """An architecture's conv2d entry: ``k``×``k`` kernels, ``n`` per marker, ``out`` in all."""
    return {"operation": "conv2d", "params": {"kernel_size": k, "padding": k // 2, "out_channels": out,
                                              "number_of_kernels_per_marker": n, **extra}}


def marked_images(n: int, size: tuple[int, int] = (40, 36), seed: int = 0):
    """``n`` random images of ``size`` (H, W) and automatic markers of two alternating labels."""
    gen = torch.Generator().manual_seed(seed)
    imgs = [torch.rand(3, *size, generator=gen) for _ in range(n)]
    marks = [markers_from_image_label(size[1], size[0], i % 2, strokes=3, length=12, seed=i)
             for i in range(n)]
    return imgs, marks
