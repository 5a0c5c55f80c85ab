"""Inference-time folding of batch normalisation into the convolution before it.

In eval mode a BatchNorm is an affine map per channel, so ``bn(conv(x))`` equals one convolution
with scaled weights and a bias: one pass over the activations fewer per layer, which is a large
share of a small CNN's time on CPU. Only sibling pairs ``conv`` → ``bn`` that the module runs in
that order are folded (timm's EfficientNet, MobileNet, ResNet blocks); a BatchNorm with a fused
activation (timm's ``BatchNormAct2d``) keeps its activation. The caller checks the folded model
against the original on a probe input and undoes the folding if they differ.
"""

from __future__ import annotations

import torch
from torch import nn


def _fold_pair(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    inv = torch.rsqrt(bn.running_var + bn.eps)
    scale = bn.weight.detach() * inv if bn.affine else inv
    shift = (bn.bias.detach() if bn.affine else 0.0) - bn.running_mean * scale
    w = conv.weight.detach() * scale.reshape(-1, 1, 1, 1)
    b = shift if conv.bias is None else conv.bias.detach() * scale + shift
    conv.weight = nn.Parameter(w, requires_grad=False)
    conv.bias = nn.Parameter(b, requires_grad=False)


def _after(bn: nn.BatchNorm2d) -> nn.Module:
    """What is left of ``bn`` once its affine part is folded: its activation, if it has one."""
    act, drop = getattr(bn, "act", None), getattr(bn, "drop", None)
    parts = [m for m in (drop, act) if m is not None and not isinstance(m, nn.Identity)]
    if not parts:
        return nn.Identity()
    return parts[0] if len(parts) == 1 else nn.Sequential(*parts)


class Folded:
    """What :func:`fold_batchnorm` changed, so that :meth:`undo` can put it back."""

    def __init__(self) -> None:
        self.records: list[tuple] = []

    def __len__(self) -> int:
        return len(self.records)

    def undo(self) -> None:
        for parent, bn_name, bn, conv, weight, bias in reversed(self.records):
            conv.weight, conv.bias = weight, bias
            setattr(parent, bn_name, bn)
        self.records.clear()


def fold_batchnorm(model: nn.Module) -> Folded:
    """Fold every eval-mode ``Conv2d`` → ``BatchNorm2d`` sibling pair in place."""
    done = Folded()
    for parent in list(model.modules()):
        children = list(parent.named_children())
        for (_, conv), (bn_name, bn) in zip(children, children[1:], strict=False):
            if (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
                    and type(bn).__name__ in ("BatchNorm2d", "BatchNormAct2d")
                    and not bn.training and bn.track_running_stats
                    and bn.running_mean is not None and bn.num_features == conv.out_channels):
                done.records.append((parent, bn_name, bn, conv, conv.weight, conv.bias))
                _fold_pair(conv, bn)
                setattr(parent, bn_name, _after(bn))
    return done
