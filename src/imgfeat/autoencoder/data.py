"""Images for the autoencoder: any imgfeat source, decoded once into memory, a saved split,
augmentation on batches.

The split is made over the source's ids sorted, with a seeded permutation, so the same source
and seed give the same split on any machine; unreadable images are skipped and counted, never
fatal. The training and validation images are held in memory as uint8 (3·H·W bytes each:
12 KiB at 64×64, 192 KiB at 256×256), so every epoch after the first decodes nothing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import DecodeError, SourceError
from ..preprocess import Preprocess, normalize, read_pixels, resolve_data_config, unit_rgb_config
from ..sources import Source, open_source
from .config import AEConfig

SPLITS = ("train", "val", "test")
UNIT_MEAN, UNIT_STD = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)


@dataclass
class ImageSet:
    """Decoded images (uint8, N×3×H×W) with their ids, and the items that failed."""

    ids: list[str]
    pixels: torch.Tensor
    failures: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, ids: list[str]) -> ImageSet:
        index = {i: n for n, i in enumerate(self.ids)}
        keep = [i for i in ids if i in index]
        rows = torch.tensor([index[i] for i in keep], dtype=torch.long)
        return ImageSet(keep, self.pixels[rows] if keep else self.pixels[:0], [])


def data_config(cfg: AEConfig) -> dict:
    """The run's pixels (what ``ae:RUN`` extraction resolves too): its H×W and resize mode,
    RGB in [0, 1], bilinear."""
    return resolve_data_config(unit_rgb_config(cfg.height, cfg.width, resize=cfg.resize))


def preprocess_for(cfg: AEConfig) -> Preprocess:
    """The resize the run trains and evaluates with."""
    return Preprocess.from_data_config(data_config(cfg))


def open_images(data, **source_args) -> Source:
    """An imgfeat source from a folder, CSV list, array file or array; never an empty one."""
    src = open_source(data, **source_args)
    if len(src) == 0:
        raise SourceError(f"no images in {data}")
    return src


def load_images(src: Source, cfg: AEConfig, ids: list[str] | None = None,
                workers: int = 0) -> ImageSet:
    """Decode and resize the items (all, or those in ``ids``) with ``workers`` threads."""
    wanted = None if ids is None else set(ids)
    items = src.items if wanted is None else [it for it in src.items if it.id in wanted]
    prep = preprocess_for(cfg)

    def one(item):
        try:
            return item.id, read_pixels(src, item, prep), None
        except DecodeError as exc:
            return item.id, None, str(exc)

    if workers > 0:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(one, items))
    else:
        results = [one(it) for it in items]
    good = [(i, t) for i, t, err in results if err is None]
    failures = [(i, err) for i, _, err in results if err is not None]
    if not good:
        raise SourceError(f"none of the {len(items)} images could be read "
                          f"(first: {failures[0][0]}: {failures[0][1]})" if failures
                          else "no images to read")
    pixels = torch.stack([t for _, t in good])
    return ImageSet([i for i, _ in good], pixels, failures)


def make_split(ids: list[str], val_fraction: float, test_fraction: float,
               seed: int) -> dict[str, list[str]]:
    """Deterministic train/val/test id lists: sorted ids, seeded permutation, sorted parts."""
    ordered = sorted(ids)
    perm = np.random.default_rng(seed).permutation(len(ordered))
    n_test = int(round(len(ordered) * test_fraction))
    n_val = int(round(len(ordered) * val_fraction))
    if len(ordered) - n_test - n_val < 1:
        raise SourceError(f"{len(ordered)} images are too few for this split")
    test = sorted(ordered[i] for i in perm[:n_test])
    val = sorted(ordered[i] for i in perm[n_test:n_test + n_val])
    train = sorted(ordered[i] for i in perm[n_test + n_val:])
    return {"train": train, "val": val, "test": test}


def to_float(pixels: torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 N×3×H×W -> float in [0, 1] (the data config's normalisation: mean 0, std 1)."""
    return normalize(pixels.to(device), UNIT_MEAN, UNIT_STD)


def augment(batch: torch.Tensor, cfg: AEConfig, gen: torch.Generator) -> torch.Tensor:
    """With ``cfg.patch``, first a random ``patch × patch`` crop of each image; then random
    shifts (reflect-padded) and flips, per image; all drawn from ``gen``."""
    if cfg.patch:
        batch = random_patches(batch, cfg.patch, gen)
    if not (cfg.shift or cfg.hflip or cfg.vflip):
        return batch
    n, _, h, w = batch.shape
    out = batch.clone()
    dy_max, dx_max = int(cfg.shift * h), int(cfg.shift * w)
    draws = torch.rand(n, 4, generator=gen)
    for i in range(n):
        x = out[i]
        if dy_max or dx_max:
            dy = int(round((draws[i, 0].item() * 2 - 1) * dy_max))
            dx = int(round((draws[i, 1].item() * 2 - 1) * dx_max))
            if dy or dx:
                pad = torch.nn.functional.pad(x[None], (dx_max, dx_max, dy_max, dy_max),
                                              mode="reflect")[0]
                x = pad[:, dy_max - dy:dy_max - dy + h, dx_max - dx:dx_max - dx + w]
        if cfg.hflip and draws[i, 2] < 0.5:
            x = x.flip(-1)
        if cfg.vflip and draws[i, 3] < 0.5:
            x = x.flip(-2)
        out[i] = x
    return out


def random_patches(batch: torch.Tensor, patch: int, gen: torch.Generator) -> torch.Tensor:
    """One random ``patch × patch`` crop of each image (its corner drawn from ``gen``)."""
    n, _, h, w = batch.shape
    if patch >= h and patch >= w:
        return batch
    ys = torch.randint(0, h - patch + 1, (n,), generator=gen).tolist()
    xs = torch.randint(0, w - patch + 1, (n,), generator=gen).tolist()
    return torch.stack([batch[i, :, y:y + patch, x:x + patch]
                        for i, (y, x) in enumerate(zip(ys, xs, strict=True))])
