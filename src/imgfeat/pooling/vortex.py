"""VORTEX: RADAM's randomized auto-encoders over the tokens of every block of a transformer.

Scabini et al., "VORTEX: Surpassing CNNs at texture recognition by using vision transformers
with orderless and randomized token encodings" (2025; code: scabini/VORTEX, ``models.py``
``VORTEX``, ``RNN.py`` ``RAE`` and ``LCG``). For each image: the patch-token maps of the
selected blocks (timm's ``forward_intermediates``: every block, prefix tokens dropped) are
stacked so that every token of every block is one sample of d channels; each channel is
L2-normalised over all samples of the image; then ``m`` one-unit auto-encoders with weights from
the LCG stream (encoder k at offset k·q·d, z-scored, orthonormalised), bias 1 and a sigmoid
give g_k, and the decoder β_k solving g_kᵀ β_k ≈ Xᵀ by least squares; the vector is Σ_k β_k.

Maps whose shapes differ (the stages of a CNN) cannot be stacked as samples of one width: they
are aggregated as RADAM does (each resized to the middle stage, channels concatenated, so a
sample is one position with the channels of every stage), then encoded the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .radam import RadamPool
from .registry import register_pooling

if TYPE_CHECKING:
    import torch


def stack_tokens(maps: list[torch.Tensor]) -> tuple[torch.Tensor, tuple[int, int]]:
    """Maps -> (samples X of shape (B, d, N), token grid (h, w)). Maps of one shape (the blocks
    of a ViT) are stacked block after block, N = blocks·h·w in (block, row, column) order;
    maps of several shapes are aggregated as RADAM does (:func:`~.elm.aggregate_maps`)."""
    import torch

    from .elm import aggregate_maps

    if all(m.shape[1:] == maps[0].shape[1:] for m in maps):
        X = torch.stack([m.float() for m in maps], dim=2)  # (B, d, L, h, w)
    else:
        X = aggregate_maps(maps)[:, :, None]  # (B, z, 1, h, w)
    h, w = X.shape[-2:]
    return X.flatten(2), (h, w)


@register_pooling
class VortexPool(RadamPool):
    """VORTEX over the selected blocks (all by default). ``m`` encoders (their default 16) of
    ``hidden`` units (their Q = 1; more units use a ridge solve with ``ridge``), bias 1,
    weights from the LCG stream or a seeded torch generator, ``positional`` adds the 2-D
    sine/cosine encoding of the token grid to every block (off, as in their paper)."""

    name = "vortex"  # RADAM's options and flags (--m, --hidden, --stages, --radam-weights, …)

    def __init__(self, m: int = 16, hidden: int = 1, weights: str = "lcg", seed: int = 0,
                 positional: bool = False, ridge: float = 1e-3, stages: str = "all"):
        super().__init__(m=m, hidden=hidden, weights=weights, seed=seed, positional=positional,
                         ridge=ridge, stages=stages)

    def pool_maps(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """(B, d, h, w) maps of the selected blocks -> (B, hidden·d) vectors."""
        import torch

        from .elm import elm_decoder, positional_encoding_2d

        X, (h, w) = stack_tokens(maps)
        b, d, n = X.shape
        X = X / X.norm(dim=2, keepdim=True).clamp_min(1e-10)  # each channel over all samples
        if self.positional:  # the same grid encoding on every block's tokens
            pe = positional_encoding_2d(d, h, w).to(X.device).flatten(1)
            X = X + pe.repeat(1, n // (h * w))[None]
        W = self._weights(d, X.device)
        bias = torch.ones(W.shape[:2], device=X.device)
        beta = elm_decoder(X, W, self.ridge, bias=bias)  # (B, m, q, d)
        return torch.nan_to_num(beta.sum(1).flatten(1), nan=0.0, posinf=0.0, neginf=0.0)
