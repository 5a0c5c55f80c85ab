"""The tensor mathematics of RADAM and its spectral variant: the authors' LCG stream, encoder
weights, the 2-D positional encoding, stage aggregation and the batched ELM decoder."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

#: the paper's linear congruential generator: x_{n+1} = (a x_n + b) mod c
LCG_A, LCG_B, LCG_C = 75, 74, 2**16 + 1
#: length of the authors' stored stream (their ``RAE_LCG_weights.pkl``)
LCG_STREAM_LENGTH = 2**18


def lcg_stream(length: int = LCG_STREAM_LENGTH, start: int = 1) -> np.ndarray:
    """``length`` values of the paper's LCG from ``x0 = start``: the authors' stored stream
    (1, 149, 11249, 57305, …) is ``lcg_stream(2**18)``."""
    x = np.empty(length, dtype=np.int64)
    x[0] = start
    for n in range(1, length):
        x[n] = (LCG_A * x[n - 1] + LCG_B) % LCG_C
    return x


def _orthonormal_rows(w: torch.Tensor) -> torch.Tensor:
    """(q, z) rows made orthonormal by QR with the sign of R's diagonal kept positive (the
    authors' ``make_orthogonal``); for q = 1 this is the unit vector of the same direction."""
    q, z = w.shape
    flat = w.T if q < z else w
    Q, R = torch.linalg.qr(flat)
    Q = Q * torch.diagonal(R).sign()
    return Q.T if q < z else Q


def encoder_weights(m: int, q: int, z: int, source: str = "lcg", seed: int = 0) -> torch.Tensor:
    """(m, q, z) encoder weights. ``lcg``: the k-th encoder takes the q·z values at offset
    k·q·z of the authors' stream (x0 = 1), z-scores them as one slice (unbiased std) and makes
    its q rows orthonormal; a single weight (q·z = 1) is 1, as in their code. ``torch``: the same
    from a seeded standard-normal stream instead of the LCG."""
    n = m * q * z
    if source == "lcg":
        if n > LCG_STREAM_LENGTH:
            raise ValueError(f"m·hidden·channels = {n} exceeds the authors' LCG stream of "
                             f"{LCG_STREAM_LENGTH} values; use weights='torch'")
        stream = torch.from_numpy(lcg_stream(n).astype(np.float64))
    elif source == "torch":
        stream = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    else:
        raise ValueError(f"unknown weights source {source!r}")
    rows = []
    for k in range(m):
        v = stream[k * q * z:(k + 1) * q * z]
        if v.numel() == 1:
            rows.append(torch.ones(1, 1, dtype=torch.float64))
            continue
        v = (v - v.mean()) / v.std()
        rows.append(_orthonormal_rows(v.view(q, z)))
    return torch.stack(rows).float()


def positional_encoding_2d(channels: int, h: int, w: int) -> torch.Tensor:
    """The authors' (channels, h, w) sine/cosine encoding: d = channels rounded up to a multiple
    of 4 (their code adds 2, which is the same for every even channel count and fails for odd
    ones), half = d/2, f_i = exp(-2i·ln(10000)/half); channels 0, 2, … < half hold sin(x·f_i),
    1, 3, … cos(x·f_i) (x = column); channels half, half+2, … sin(y·f_i), half+1, … cos(y·f_i)
    (y = row); the first ``channels`` are kept."""
    d = -(-channels // 4) * 4
    half = d // 2
    freq = torch.exp(torch.arange(0.0, half, 2) * -(math.log(10000.0) / half))  # (half/2,)
    ax = torch.arange(0.0, w)[:, None] * freq  # (w, half/2)
    ay = torch.arange(0.0, h)[:, None] * freq
    pe = torch.zeros(d, h, w)
    pe[0:half:2] = ax.sin().T[:, None, :].expand(-1, h, w)
    pe[1:half:2] = ax.cos().T[:, None, :].expand(-1, h, w)
    pe[half::2] = ay.sin().T[:, :, None].expand(-1, h, w)
    pe[half + 1::2] = ay.cos().T[:, :, None].expand(-1, h, w)
    return pe[:channels]


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
    q = W.shape[1]
    if q == 1:
        num = torch.einsum("bmqn,bzn->bmqz", G, X)  # G Xᵀ
        return num / (G * G).sum(-1, keepdim=True).clamp_min(1e-30)
    # the q×q system is ill-conditioned in float32 (sigmoid outputs are alike): build and
    # solve it in float64, so a row never depends on the rounding of its batch
    G64 = G.double()
    num = torch.einsum("bmqn,bzn->bmqz", G64, X.double())
    gram = torch.einsum("bmqn,bmpn->bmqp", G64, G64)
    gram = gram + ridge * torch.eye(q, dtype=gram.dtype, device=X.device)
    return torch.linalg.solve(gram, num).to(X.dtype)
