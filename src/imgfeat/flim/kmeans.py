"""Batched k-means in torch: many small problems (one per marker) solved at once.

``batched_kmeans(X, mask, n)`` clusters every row group ``X[m]`` (its valid points given by
``mask[m]``) into ``n`` clusters with k-means++ seeding and Lloyd iterations, all groups in one
set of tensor operations. ``metric="cosine"`` is real spherical k-means: points and centroids on
the unit sphere, assignment by the largest dot product, centroids re-normalised means.
"""

from __future__ import annotations

import torch

__all__ = ["batched_kmeans", "unit_rows"]


def unit_rows(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Rows of ``x`` (last dimension) scaled to unit L2 norm; zero rows stay zero."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


def _distances(x: torch.Tensor, c: torch.Tensor, cosine: bool) -> torch.Tensor:
    """(M, P, n) dissimilarities between points (M, P, D) and centres (M, n, D)."""
    dots = torch.bmm(x, c.transpose(1, 2))
    if cosine:
        return -dots
    return (x * x).sum(-1, keepdim=True) - 2 * dots + (c * c).sum(-1).unsqueeze(1)


def batched_kmeans(
    x: torch.Tensor,
    mask: torch.Tensor,
    n: int,
    *,
    metric: str = "euclidean",
    max_iter: int = 100,
    tol: float = 1e-6,
    seed: int = 0,
) -> torch.Tensor:
    """Centroids (M, n, D) of ``n`` clusters in each of the M point sets of ``x`` (M, P, D).

    ``mask`` (M, P) marks the valid points; every set must hold at least ``n`` of them. Seeding
    is k-means++ drawn from a generator seeded with ``seed``; iterations stop when no centroid
    moves more than ``tol`` or after ``max_iter``. An emptied cluster keeps its centre.
    """
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric must be 'euclidean' or 'cosine', not {metric!r}")
    cosine = metric == "cosine"
    m, p, d = x.shape
    x = x.to(torch.float64)
    if cosine:
        x = unit_rows(x)
    valid = mask.to(torch.bool)
    if bool((valid.sum(1) < n).any()):
        raise ValueError("every point set needs at least n valid points")
    gen = torch.Generator().manual_seed(int(seed))
    rows = torch.arange(m)

    # k-means++ seeding (squared Euclidean distances; on the unit sphere they order like cosine)
    first = torch.multinomial(valid.to(torch.float64), 1, generator=gen).squeeze(1)
    centres = [x[rows, first]]
    best = _distances(x, centres[0].unsqueeze(1), False).squeeze(2).clamp_min(0)
    for _ in range(1, n):
        weight = best * valid
        degenerate = weight.sum(1) <= 0  # every valid point sits on a centre already
        weight[degenerate] = valid[degenerate].to(torch.float64)
        pick = torch.multinomial(weight, 1, generator=gen).squeeze(1)
        centres.append(x[rows, pick])
        d2 = _distances(x, centres[-1].unsqueeze(1), False).squeeze(2).clamp_min(0)
        best = torch.minimum(best, d2)
    c = torch.stack(centres, 1)

    onehot_mask = valid.unsqueeze(2).to(torch.float64)
    for _ in range(max_iter):
        assign = _distances(x, c, cosine).argmin(dim=2)
        onehot = torch.nn.functional.one_hot(assign, n).to(torch.float64) * onehot_mask
        counts = onehot.sum(1)  # (M, n)
        sums = torch.bmm(onehot.transpose(1, 2), x)  # (M, n, D)
        new = torch.where(counts.unsqueeze(2) > 0, sums / counts.clamp_min(1).unsqueeze(2), c)
        if cosine:
            new = torch.where(counts.unsqueeze(2) > 0, unit_rows(new), c)
        shift = (new - c).abs().max()
        c = new
        if float(shift) <= tol:
            break
    return c
