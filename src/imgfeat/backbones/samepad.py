"""TensorFlow "SAME" convolutions without a padded copy of their input.

timm's ``Conv2dSame`` (TF-ported EfficientNets, MobileNets, MixNets…) pads its whole input with
``F.pad`` before every strided convolution, because SAME padding can put one more zero row and
column after the input than before it, which ``F.conv2d`` cannot express. That copy is about a
tenth of EfficientNet-Lite0's time on CPU. Here the symmetric part of the padding is given to
``F.conv2d`` and only the last output row and column (the ones that see the extra zero) are
computed from thin padded slices: the same arithmetic on the same numbers, without the copy.
The interior is bit-identical; the edge row and column may differ by float rounding (a few ulp)
where the convolution picks another algorithm for the thin slice.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from timm.layers.conv2d_same import Conv2dSame


def same_split(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """(before, after) zero padding of TF SAME along one axis; ``after - before`` is 0 or 1."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def conv2d_same(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                stride: tuple[int, int], dilation: tuple[int, int], groups: int) -> torch.Tensor:
    """``F.conv2d`` with TF SAME padding: timm's ``conv2d_same`` without padding all of ``x``."""
    (kh, kw), (ih, iw) = weight.shape[-2:], x.shape[-2:]
    top, bottom = same_split(ih, kh, stride[0], dilation[0])
    left, right = same_split(iw, kw, stride[1], dilation[1])
    extra_h, extra_w = bottom - top, right - left
    if (ih + 2 * top < (kh - 1) * dilation[0] + 1 or iw + 2 * left < (kw - 1) * dilation[1] + 1):
        # a map smaller than the kernel (tiny inputs): only the whole padded copy has a window
        x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, weight, bias, stride, 0, dilation, groups)
    main = F.conv2d(x, weight, bias, stride, (top, left), dilation, groups)
    if not (extra_h or extra_w):
        return main
    n, c, mh, mw = main.shape
    oh, ow = mh + extra_h, mw + extra_w
    fmt = (torch.channels_last if not main.is_contiguous()
           and main.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format)
    out = torch.empty((n, c, oh, ow), dtype=main.dtype, device=main.device, memory_format=fmt)
    out[:, :, :mh, :mw] = main
    if extra_h:  # the last row's window, padded the SAME way on every side it touches
        r0 = (oh - 1) * stride[0] - top
        rows = F.pad(x[:, :, r0:, :], (left, right, 0, r0 + (kh - 1) * dilation[0] + 1 - ih))
        out[:, :, oh - 1:, :] = F.conv2d(rows, weight, bias, stride, 0, dilation, groups)
    if extra_w:  # the last column, corner included
        c0 = (ow - 1) * stride[1] - left
        cols = F.pad(x[:, :, :, c0:], (0, c0 + (kw - 1) * dilation[1] + 1 - iw, top, bottom))
        out[:, :, :, ow - 1:] = F.conv2d(cols, weight, bias, stride, 0, dilation, groups)
    return out


class EdgeSameConv2d(Conv2dSame):
    """A ``Conv2dSame`` that pads only the edges it needs (see the module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv2d_same(x, self.weight, self.bias, self.stride, self.dilation, self.groups)


class Swapped:
    """The modules :func:`edge_same_padding` changed, so that :meth:`undo` can put them back."""

    def __init__(self, modules: list[Conv2dSame]):
        self.modules = modules

    def __len__(self) -> int:
        return len(self.modules)

    def undo(self) -> None:
        for m in self.modules:
            m.__class__ = Conv2dSame
        self.modules = []


def edge_same_padding(model: torch.nn.Module) -> Swapped:
    """Make every timm ``Conv2dSame`` in ``model`` an :class:`EdgeSameConv2d`, in place."""
    swapped = [m for m in model.modules() if type(m) is Conv2dSame]
    for m in swapped:
        m.__class__ = EdgeSameConv2d
    return Swapped(swapped)


class StaticSameConv2d(Conv2dSame):
    """A ``Conv2dSame`` whose padding was worked out once for one input size (export only): a
    constant ``Pad`` then a ``Conv``, or the convolution's own padding when it is symmetric.
    An exporter then writes no shape arithmetic, which ONNX Runtime and OpenVINO fuse away."""

    static_pad: tuple[int, int, int, int]  # left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right, top, bottom = self.static_pad
        if left == right and top == bottom:
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation,
                            self.groups)
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, self.bias,
                        self.stride, 0, self.dilation, self.groups)


@contextlib.contextmanager
def static_same_padding(model: torch.nn.Module, example: torch.Tensor) -> Iterator[int]:
    """Within the block, every SAME convolution of ``model`` (timm's or ours) pads for the
    input size it sees when ``model`` runs ``example``: the graph an exporter traces has fixed
    paddings. Yields how many were fixed; the modules are put back on leaving."""
    convs = [m for m in model.modules() if isinstance(m, Conv2dSame)]
    seen: dict[torch.nn.Module, set[tuple[int, int]]] = {}
    hooks = [m.register_forward_pre_hook(
        lambda mod, args: seen.setdefault(mod, set()).add(tuple(args[0].shape[-2:])))
        for m in convs]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    fixed = {}
    try:
        for m in convs:
            sizes = seen.get(m, set())
            if len(sizes) != 1:  # not run, or run at several sizes: its padding stays computed
                continue
            (ih, iw), (kh, kw) = next(iter(sizes)), m.weight.shape[-2:]
            top, bottom = same_split(ih, kh, m.stride[0], m.dilation[0])
            left, right = same_split(iw, kw, m.stride[1], m.dilation[1])
            fixed[m] = type(m)
            m.static_pad = (left, right, top, bottom)
            m.__class__ = StaticSameConv2d
        yield len(fixed)
    finally:
        for m, cls in fixed.items():
            m.__class__ = cls
            del m.static_pad
