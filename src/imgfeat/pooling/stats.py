"""Statistical and second-order poolings: mean and standard deviation per channel, and
bilinear (covariance) pooling after a fixed random channel reduction."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .radam import STAGE_SELECTIONS
from .registry import Pooling, register_pooling

if TYPE_CHECKING:
    import torch

#: what the bilinear pooling averages: x xᵀ (B-CNN) or (x - μ)(x - μ)ᵀ (covariance)
BILINEAR_STATISTICS = ("bilinear", "covariance")


@register_pooling
class MeanStdPool(Pooling):
    """Mean and standard deviation (population) of every channel over positions: the means
    of all channels, then their standard deviations (twice the channels)."""

    name = "meanstd"

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        import torch

        flat = fmap.float().flatten(2)
        return torch.cat([flat.mean(-1), flat.std(-1, correction=0)], dim=1)

    def out_features(self, channels: int, height: int, width: int) -> int:
        return 2 * channels


@register_pooling
class BilinearPool(Pooling):
    """Bilinear pooling of the selected stages (Lin et al., B-CNN, 2015; improved B-CNN, 2017).

    One stage is taken as it is; several are aggregated as RADAM does (channels L2-normalised
    over positions, resized to the middle stage, stacked). The z channels are reduced to
    ``k`` by a fixed Gaussian projection (seeded by ``projection_seed``; none when z ≤ k); the
    k×k matrix of averages of x xᵀ over positions (``statistic='covariance'``: of (x - μ)(x - μ)ᵀ) gets the
    signed square root, and its upper triangle (off-diagonal entries × √2, so that dot products
    equal those of the whole matrix) is L2-normalised: k(k+1)/2 values.
    """

    name = "bilinear"
    multi_layer = True
    cli_options = {
        "k": ("--bilinear-k", "bilinear: channels after the random reduction"),
        "statistic": ("--bilinear-statistic", "bilinear: average x xᵀ (B-CNN) or the "
                                              "covariance (x - μ)(x - μ)ᵀ"),
        "stages": ("--stages", "RADAM/spectral/VORTEX/bilinear: which stages to pool"),
        "projection_seed": ("--bilinear-seed", "bilinear: seed of the random channel reduction"),
    }
    option_choices = {"stages": STAGE_SELECTIONS, "statistic": BILINEAR_STATISTICS}

    def __init__(self, k: int = 64, statistic: str = "bilinear", stages: str = "last",
                 projection_seed: int = 0):
        self.k = int(k)
        self.statistic = statistic
        self.stages = stages
        self.projection_seed = int(projection_seed)
        if self.k < 1:
            raise ValueError("k must be at least 1")
        self.check_choices()
        self._projections: dict = {}

    def out_features(self, channels: int, height: int, width: int) -> int:
        k = min(self.k, channels)
        return k * (k + 1) // 2

    def _projection(self, z: int, device) -> torch.Tensor | None:
        """The fixed (k, z) reduction, entries N(0, 1/k); None when z ≤ k."""
        if z <= self.k:
            return None
        if z not in self._projections:
            import torch

            gen = torch.Generator().manual_seed(self.projection_seed)
            self._projections[z] = torch.randn(self.k, z, generator=gen) / math.sqrt(self.k)
        return self._projections[z].to(device)

    def pool_maps(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """(B, C_i, H_i, W_i) maps of the selected stages -> (B, k(k+1)/2) vectors."""
        import torch

        from .elm import aggregate_maps

        X = (maps[0].float() if len(maps) == 1 else aggregate_maps(maps)).flatten(2)
        P = self._projection(X.shape[1], X.device)
        if P is not None:
            X = torch.einsum("kz,bzn->bkn", P, X)
        if self.statistic == "covariance":
            X = X - X.mean(-1, keepdim=True)
        M = torch.einsum("bkn,bln->bkl", X, X) / X.shape[-1]
        M = M.sign() * M.abs().sqrt()
        k = M.shape[1]
        i, j = torch.triu_indices(k, k, device=M.device)
        v = M[:, i, j] * torch.where(i == j, 1.0, math.sqrt(2.0)).to(M.device)
        return torch.nn.functional.normalize(v, dim=1, eps=1e-12)

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.pool_maps([fmap])
