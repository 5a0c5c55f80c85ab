"""The one pixel road: a network's data config, resolved with the user's options, decides how
every item is resized (uint8, here) and normalised (batched, on the device). Extraction, the
autoencoder's training and evaluation, every FLIM command and the annotate preview read items
through :func:`read_pixels` with a :class:`Preprocess` made from :func:`resolve_data_config`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .config import ModelConfig
from .decode import MAX_PIXELS

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


def unit_rgb_config(height: int, width: int, resize: str = "squash",
                    color_space: str = "rgb") -> dict:
    """The data config of a network that takes RGB scaled to [0, 1] at one size (``ae:``,
    ``flim:``): bilinear, mean 0, std 1, no crop margin, resized by ``resize``."""
    return {"input_size": (3, int(height), int(width)), "interpolation": "bilinear",
            "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0), "crop_pct": 1.0,
            "crop_mode": "center", "resize": resize, "color_space": color_space}


def resolve_data_config(own, cfg: ModelConfig | None = None) -> dict:
    """Everything that decides the pixels a network gets: its own data config (a backbone's
    ``data_config()``, or that dict: timm's ``pretrained_cfg``, an autoencoder's recorded size
    and resize, …) with the user's options applied only where given (``img_size``; ``resize``,
    whose ``None`` means the network's own, ``crop`` when it has none)."""
    dc = dict(own.data_config() if hasattr(own, "data_config") else own)
    if cfg is not None and cfg.img_size:
        dc["input_size"] = (3, cfg.img_size, cfg.img_size)
    resize = (cfg.resize if cfg is not None else None) or dc.get("resize") or "crop"
    return {
        "input_size": tuple(int(v) for v in dc["input_size"]),
        "interpolation": str(dc.get("interpolation", "bilinear")),
        "mean": tuple(float(v) for v in dc["mean"]),
        "std": tuple(float(v) for v in dc["std"]),
        "crop_pct": 1.0 if resize == "squash" else float(dc.get("crop_pct") or 1.0),
        "crop_mode": str(dc.get("crop_mode", "center")),
        "resize": resize,
        "color_space": str(dc.get("color_space", "rgb")),
    }


@dataclass(frozen=True)
class Preprocess:
    """PIL RGB image -> uint8 tensor (3, H, W), resized as the data config says.

    ``crop``: scale so the shorter side is ``size / crop_pct`` and take the centre (timm's eval
    transform); ``squash``: resize straight to ``size`` (no crop, aspect not kept, as texture
    papers do). The crop is taken in source coordinates, so a 10000×10 image never becomes a huge
    intermediate.
    """

    height: int
    width: int
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    resize: str = "crop"

    @property
    def min_side(self) -> int:
        """The smallest source side that still gives full quality at this input size."""
        return math.ceil(max(self.height, self.width) / min(self.crop_pct, 1.0))

    @classmethod
    def from_data_config(cls, dc: dict) -> Preprocess:
        _, h, w = dc["input_size"]
        return cls(h, w, dc["interpolation"], dc["crop_pct"], dc["resize"])

    def box(self, w: int, h: int) -> tuple[float, float, float, float]:
        """The region (left, top, right, bottom) of a ``w``×``h`` source resized to the input."""
        if self.resize == "squash":
            return 0.0, 0.0, float(w), float(h)
        scale = max(self.width / (self.crop_pct * w), self.height / (self.crop_pct * h))
        if self.width == self.height:
            scale = math.floor(self.width / self.crop_pct) / min(w, h)
        bw, bh = min(self.width / scale, w), min(self.height / scale, h)
        left, top = (w - bw) / 2, (h - bh) / 2
        return left, top, left + bw, top + bh

    def __call__(self, img: Image.Image) -> torch.Tensor:
        resample = _RESAMPLE.get(self.interpolation, Image.Resampling.BICUBIC)
        if self.resize == "squash":
            out = img.resize((self.width, self.height), resample)
        else:
            out = img.resize((self.width, self.height), resample, box=self.box(*img.size))
        arr = np.asarray(out, dtype=np.uint8)
        return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def read_pixels(source, item, preprocess: Preprocess, max_pixels: int = MAX_PIXELS
                ) -> torch.Tensor:
    """One item of a :class:`~imgfeat.sources.Source` as the network's uint8 input (3, H, W):
    the one road from a file (or URL, or array row) to a network. Raises ``DecodeError``."""
    return preprocess(source.read(item, max_pixels=max_pixels, min_side=preprocess.min_side))


def normalize(batch: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float32 normalised with the model's mean and std."""
    m = torch.tensor(mean, dtype=torch.float32, device=batch.device).view(1, -1, 1, 1) * 255.0
    s = torch.tensor(std, dtype=torch.float32, device=batch.device).view(1, -1, 1, 1) * 255.0
    return (batch.float() - m) / s
