"""RADAM: a randomized auto-encoder (ELM) as a pooling of the maps of every stage.

Scabini et al., "RADAM: Texture recognition through randomized aggregated encoding of deep
activation maps", Pattern Recognition 143 (2023) 109802. For each image: L2-normalise every
channel over its positions, resize all stages to the middle stage's size, stack the channels
(X: z × N), add a 2-D sine/cosine positional encoding, then for k = 0..m-1 take a fixed random
row W_k, hidden output g_k = sigmoid(W_k X) and the decoder β_k that best maps g_k back to X
(closed form for one hidden unit, a ridge solve for q > 1). The vector is Σ_k β_k.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .registry import Pooling, register_pooling

#: the paper's linear congruential generator: x_{n+1} = (a x_n + b) mod c
LCG_A, LCG_B, LCG_C = 75, 74, 2**16 + 1
STAGE_SELECTIONS = ("all", "last", "top_quarter", "middle", "quarter")


def lcg_stream(length: int, start: int | None = None) -> np.ndarray:
    """``length`` values of the paper's LCG. The start value defaults to ``length + 2``, the
    choice of the authors' ELM code (a deterministic, size-dependent seed that never hits the
    generator's fixed point)."""
    x = np.empty(length, dtype=np.float64)
    x[0] = (length + 2) if start is None else start
    for n in range(1, length):
        x[n] = (LCG_A * x[n - 1] + LCG_B) % LCG_C
    return x


def encoder_weights(m: int, q: int, z: int, source: str = "lcg", seed: int = 0) -> torch.Tensor:
    """(m, q, z) random rows: the k-th encoder takes the slice at offset k·q·z of one stream
    (``lcg``) or of a seeded torch generator (``torch``); each row z-scored, then unit length."""
    n = m * q * z
    if source == "lcg":
        w = torch.from_numpy(lcg_stream(n)).float()
    elif source == "torch":
        w = torch.randn(n, generator=torch.Generator().manual_seed(seed))
    else:
        raise ValueError(f"weights source must be 'lcg' or 'torch', not {source!r}")
    w = w.view(m, q, z)
    w = (w - w.mean(-1, keepdim=True)) / w.std(-1, keepdim=True).clamp_min(1e-12)
    return w / w.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def positional_encoding_2d(channels: int, h: int, w: int) -> torch.Tensor:
    """A (channels, h, w) sine/cosine encoding: half the channels encode x, half y (the
    channel count is padded to a multiple of 4 and cut back)."""
    c = int(math.ceil(channels / 4) * 4) // 2
    inv_freq = 1.0 / (10000 ** (torch.arange(0, c, 2).float() / c))
    pos_x = torch.arange(w).float()[:, None] * inv_freq[None]  # (w, c/2)
    pos_y = torch.arange(h).float()[:, None] * inv_freq[None]
    emb_x = torch.cat([pos_x.sin(), pos_x.cos()], dim=-1)  # (w, c)
    emb_y = torch.cat([pos_y.sin(), pos_y.cos()], dim=-1)  # (h, c)
    emb = torch.cat([emb_x[None].expand(h, w, c), emb_y[:, None].expand(h, w, c)], dim=-1)
    return emb[..., :channels].permute(2, 0, 1)


def select_stages(n: int, selection: str) -> list[int]:
    """Stage indices for the paper's selections (``quarter``: the first quarter of stages,
    ``top_quarter``: the last quarter, ``middle``: index round(n/2))."""
    if selection == "all":
        return list(range(n))
    if selection == "last":
        return [n - 1]
    if selection == "middle":
        return [round(n / 2)]
    k = max(1, round(n / 4))
    if selection == "quarter":
        return list(range(k))
    if selection == "top_quarter":
        return list(range(n - k, n))
    raise ValueError(f"stage selection must be one of {', '.join(STAGE_SELECTIONS)}")


def aggregate_maps(maps: list[torch.Tensor], eps: float = 1e-10) -> torch.Tensor:
    """Stages -> X of shape (B, z, h, w): channels L2-normalised over positions, every stage
    resized (bilinear) to the middle stage's size, stacked."""
    mid = maps[round(len(maps) / 2) if len(maps) > 1 else 0]
    h, w = mid.shape[-2:]
    out = []
    for fm in maps:
        fm = fm.float()
        fm = fm / fm.flatten(2).norm(dim=-1).clamp_min(eps)[..., None, None]
        if fm.shape[-2:] != (h, w):
            fm = F.interpolate(fm, size=(h, w), mode="bilinear", align_corners=False)
        out.append(fm)
    return torch.cat(out, dim=1)


def elm_decoder(X: torch.Tensor, W: torch.Tensor, ridge: float = 1e-3,
                bias: torch.Tensor | None = None) -> torch.Tensor:
    """Decoder weights of the randomized auto-encoders, batched.

    X: (B, z, N); W: (m, q, z); bias: optional (m, q). Returns (B, m, q, z): β_k solving
    g_kᵀ β_k ≈ Xᵀ with g_k = sigmoid(W_k X + b_k). One hidden unit (q = 1) has the closed form
    β = X g / (g·g); q > 1 uses the ridge solution (G Gᵀ + λI)⁻¹ G Xᵀ.
    """
    A = torch.einsum("mqz,bzn->bmqn", W, X)
    if bias is not None:
        A = A + bias[None, :, :, None]
    G = torch.sigmoid(A)  # (B, m, q, N)
    num = torch.einsum("bmqn,bzn->bmqz", G, X)  # G Xᵀ
    q = W.shape[1]
    if q == 1:
        return num / (G * G).sum(-1, keepdim=True).clamp_min(1e-30)
    gram = torch.einsum("bmqn,bmpn->bmqp", G, G)
    gram = gram + ridge * torch.eye(q, dtype=X.dtype, device=X.device)
    return torch.linalg.solve(gram, num)


@register_pooling
class RadamPool(Pooling):
    """RADAM over several stages. ``m`` encoders, ``hidden`` units each (q), weights from the
    paper's LCG (``weights='lcg'``) or a seeded torch generator (``weights='torch'``)."""

    name = "radam"
    multi_layer = True
    default_layers = "all"

    def __init__(self, m: int = 4, hidden: int = 1, weights: str = "lcg", seed: int = 0,
                 positional: bool = True, ridge: float = 1e-3, stages: str = "all"):
        self.m = int(m)
        self.hidden = int(hidden)
        self.weights = weights
        self.seed = int(seed)
        self.positional = bool(positional)
        self.ridge = float(ridge)
        self.stages = stages
        if self.m < 1 or self.hidden < 1:
            raise ValueError("m and hidden must be at least 1")
        if stages not in STAGE_SELECTIONS:
            raise ValueError(f"stages must be one of {', '.join(STAGE_SELECTIONS)}")
        self._cache: dict = {}

    def get_params(self) -> dict:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def out_features(self, channels: int, height: int, width: int) -> int:
        return self.hidden * channels

    def _weights(self, z: int, device) -> torch.Tensor:
        if z not in self._cache:
            self._cache[z] = encoder_weights(self.m, self.hidden, z, self.weights, self.seed)
        return self._cache[z].to(device)

    def pool_maps(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """(B, C_i, H_i, W_i) maps of the selected stages -> (B, q·z) vectors."""
        X = aggregate_maps(maps)
        b, z, h, w = X.shape
        if self.positional:
            X = X + positional_encoding_2d(z, h, w).to(X.device)[None]
        beta = elm_decoder(X.flatten(2), self._weights(z, X.device), self.ridge)
        return torch.nan_to_num(beta.sum(1).flatten(1), nan=0.0, posinf=0.0, neginf=0.0)

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.pool_maps([fmap])


@register_pooling
class SpectralPool(RadamPool):
    """The "spectral" reading of the randomized auto-encoder, the idea RADAM grew from: every
    position's channel vector (its spectrum across the selected stages) is one training sample
    of a single ELM auto-encoder with ``hidden`` sigmoid units and a bias; the vector is its
    decoder's weights flattened (hidden × z, unit by unit) instead of RADAM's sum over ``m``
    one-unit encoders, with no positional encoding. Same LCG or seeded weights and ridge."""

    name = "spectral"

    def __init__(self, hidden: int = 4, weights: str = "lcg", seed: int = 0,
                 ridge: float = 1e-3, stages: str = "all"):
        super().__init__(m=1, hidden=hidden, weights=weights, seed=seed, positional=False,
                         ridge=ridge, stages=stages)

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in ("hidden", "weights", "seed", "ridge", "stages")}

    def _weights(self, z: int, device) -> torch.Tensor:  # (1, q, z + 1): the last column is b
        return super()._weights(z + 1, device)

    def pool_maps(self, maps: list[torch.Tensor]) -> torch.Tensor:
        X = aggregate_maps(maps).flatten(2)
        Wb = self._weights(X.shape[1], X.device)
        beta = elm_decoder(X, Wb[..., :-1], self.ridge, bias=Wb[..., -1])
        return torch.nan_to_num(beta.flatten(1), nan=0.0, posinf=0.0, neginf=0.0)
