"""Classic global poolings: average, max, their mixes, and generalised mean (GeM)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .registry import Pooling, register_pooling

if TYPE_CHECKING:
    import torch


@register_pooling
class AvgPool(Pooling):
    """Global average pooling (GAP)."""

    name = "avg"

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        return fmap.mean(dim=(2, 3))


@register_pooling
class MaxPool(Pooling):
    """Global max pooling."""

    name = "max"

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        return fmap.amax(dim=(2, 3))


@register_pooling
class AvgMaxPool(Pooling):
    """The mean of average and max pooling (timm's ``avgmax``)."""

    name = "avgmax"

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        return 0.5 * (fmap.mean(dim=(2, 3)) + fmap.amax(dim=(2, 3)))


@register_pooling
class CatAvgMaxPool(Pooling):
    """Average and max pooling concatenated (twice the channels)."""

    name = "catavgmax"

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.cat([fmap.mean(dim=(2, 3)), fmap.amax(dim=(2, 3))], dim=1)

    def out_features(self, channels: int, height: int, width: int) -> int:
        return 2 * channels


@register_pooling
class GeMPool(Pooling):
    """Generalised mean: (mean of x^p)^(1/p) over positions, x clamped at ``eps``."""

    name = "gem"
    cli_options = {"p": ("--gem-p", "exponent p of GeM pooling")}

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        self.p = float(p)
        self.eps = float(eps)

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        return fmap.float().clamp(min=self.eps).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)


@register_pooling
class NoPool(Pooling):
    """No pooling: the whole map, flattened channel-first (C·H·W), stored as float16."""

    name = "none"
    store_dtype = "float16"

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        return fmap.flatten(1)

    def out_features(self, channels: int, height: int, width: int) -> int:
        return channels * height * width
