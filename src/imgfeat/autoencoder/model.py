"""The FeXT network: a VGG16-shaped convolutional autoencoder for any H×W.

Encoder block ``i`` holds 2 (first two blocks) or 3 (deeper blocks) ``conv k×k → BatchNorm →
ReLU`` units and ends in a 2×2 max-pool that rounds up, so odd sizes work; widths are
``base_width · 2^i`` capped at ``max_width`` (64-128-256-512-512 by default, as VGG16). The
latent map is the last block's output: ``max_width × ⌈H/2^depth⌉ × ⌈W/2^depth⌉``, e.g. 256×256
with depth 5 gives 512×8×8, 64×96 with depth 4 gives 512×4×6. The decoder mirrors the encoder:
each block up-samples (nearest) to the exact size its encoder block saw, then convolves; a last
convolution and a sigmoid give the image back in [0, 1]. Each unit is an ``nn.Sequential`` of
conv then BatchNorm, so the shared BatchNorm folding applies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import AEConfig


def convs_in_block(i: int) -> int:
    """VGG16's pattern: two convolutions in the first two blocks, three after."""
    return 2 if i < 2 else 3


class ConvUnit(nn.Sequential):
    """conv (no bias) → BatchNorm → ReLU."""

    def __init__(self, cin: int, cout: int, k: int):
        super().__init__(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class EncoderBlock(nn.Sequential):
    """Convolution units, then a 2×2 max-pool (rounding up)."""

    def __init__(self, cin: int, cout: int, n: int, k: int):
        units = [ConvUnit(cin if j == 0 else cout, cout, k) for j in range(n)]
        super().__init__(*units, nn.MaxPool2d(2, ceil_mode=True))


class DecoderBlock(nn.Module):
    """Nearest up-sampling to a given size, then convolution units."""

    def __init__(self, cin: int, cout: int, n: int, k: int):
        super().__init__()
        self.convs = nn.Sequential(*[ConvUnit(cin, cin if j < n - 1 else cout, k)
                                     for j in range(n)])

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.convs(F.interpolate(x, size=size, mode="nearest"))


class Encoder(nn.Module):
    """The encoder: ``blocks[i]`` maps to reduction ``2^(i+1)``."""

    def __init__(self, cfg: AEConfig):
        super().__init__()
        widths, k = cfg.widths, cfg.kernel_size
        self.blocks = nn.ModuleList(
            EncoderBlock(3 if i == 0 else widths[i - 1], widths[i], convs_in_block(i), k)
            for i in range(cfg.depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class AutoEncoder(nn.Module):
    """Encoder + mirrored decoder; ``forward`` returns the reconstruction in [0, 1]."""

    def __init__(self, cfg: AEConfig):
        super().__init__()
        self.cfg = cfg
        widths, k = cfg.widths, cfg.kernel_size
        self.encoder = Encoder(cfg)
        self.decoder = nn.ModuleList(
            DecoderBlock(widths[i], widths[i - 1] if i > 0 else widths[0], convs_in_block(i), k)
            for i in reversed(range(cfg.depth)))
        self.head = nn.Conv2d(widths[0], 3, k, padding=k // 2)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sizes = []
        for block in self.encoder.blocks:
            sizes.append((x.shape[-2], x.shape[-1]))
            x = block(x)
        for block, size in zip(self.decoder, reversed(sizes), strict=True):
            x = block(x, size)
        return torch.sigmoid(self.head(x))


def describe_shapes(cfg: AEConfig) -> str:
    """One line: input, each stage and the latent, e.g. ``3×256×256 → 64×128×128 → …``."""
    parts = [f"3×{cfg.height}×{cfg.width}"]
    h, w = cfg.height, cfg.width
    for c in cfg.widths:
        h, w = -(-h // 2), -(-w // 2)
        parts.append(f"{c}×{h}×{w}")
    c, h, w = cfg.latent_shape
    return " → ".join(parts) + f" (latent {c}×{h}×{w} = {c * h * w} values)"
