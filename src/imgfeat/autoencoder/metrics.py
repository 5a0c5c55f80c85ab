"""Reconstruction quality per image: MSE, MAE, PSNR, SSIM and cosine similarity.

SSIM follows Wang et al. (2004) as scikit-image computes it with ``gaussian_weights=True``:
an 11-tap Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03, population covariances, the mean
taken over the pixels whose window lies inside the image, then over channels. It is written in
torch, so it is differentiable (the optional SSIM loss term) and batched.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import ConfigError

SSIM_SIGMA, SSIM_RADIUS, K1, K2 = 1.5, 5, 0.01, 0.03
METRIC_NAMES = ("mse", "mae", "psnr", "ssim", "cosine")


def _gaussian(device, dtype) -> torch.Tensor:
    x = torch.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, device=device, dtype=torch.float64)
    g = torch.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return (g / g.sum()).to(dtype)


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter, 'valid' region only (N·C×1×H×W)."""
    x = F.conv2d(x, g.view(1, 1, 1, -1))
    return F.conv2d(x, g.view(1, 1, -1, 1))


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image SSIM of two N×C×H×W batches (values in [0, data_range]) -> N."""
    n, c, h, w = a.shape
    if min(h, w) < 2 * SSIM_RADIUS + 1:
        raise ConfigError(f"SSIM needs images of at least {2 * SSIM_RADIUS + 1} px, not {h}x{w}")
    g = _gaussian(a.device, a.dtype)
    a = a.reshape(n * c, 1, h, w)
    b = b.reshape(n * c, 1, h, w)
    mu_a, mu_b = _blur(a, g), _blur(b, g)
    var_a = _blur(a * a, g) - mu_a * mu_a
    var_b = _blur(b * b, g) - mu_b * mu_b
    cov = _blur(a * b, g) - mu_a * mu_b
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2))
    return s.reshape(n, c, -1).mean(dim=(1, 2))


def psnr_from_mse(mse: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB (inf for a perfect reconstruction)."""
    return 10 * torch.log10(data_range ** 2 / mse)


def image_metrics(original: torch.Tensor, recon: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image metrics of two N×C×H×W batches in [0, 1] (computed in float64)."""
    a, b = original.double(), recon.double()
    diff = (a - b).flatten(1)
    mse = diff.pow(2).mean(1)
    return {
        "mse": mse,
        "mae": diff.abs().mean(1),
        "psnr": psnr_from_mse(mse),
        "ssim": ssim(a, b),
        "cosine": F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1, eps=1e-12),
    }


def reconstruction_loss(recon: torch.Tensor, target: torch.Tensor, loss: str,
                        ssim_weight: float = 0.0) -> torch.Tensor:
    """The training loss: MSE or MAE, plus ``ssim_weight · (1 − SSIM)``."""
    recon = recon.float()
    base = F.mse_loss(recon, target) if loss == "mse" else F.l1_loss(recon, target)
    if ssim_weight:
        base = base + ssim_weight * (1 - ssim(recon, target).mean())
    return base


def summarize(values: list[float]) -> dict[str, float]:
    """Mean, std, min, median and max of finite values."""
    t = torch.tensor([v for v in values if math.isfinite(v)], dtype=torch.float64)
    if t.numel() == 0:
        return {"mean": math.nan, "std": math.nan, "min": math.nan, "median": math.nan,
                "max": math.nan}
    return {"mean": t.mean().item(), "std": t.std(unbiased=False).item(), "min": t.min().item(),
            "median": t.median().item(), "max": t.max().item()}
