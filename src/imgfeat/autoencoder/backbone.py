"""A trained FeXT encoder as an imgfeat backbone (``ae:RUN`` or ``ae:CHECKPOINT``).

Stages are the encoder blocks' outputs (after each down-sampling, reductions 2, 4, 8, …); the
final map is the latent (the last stage). Preprocessing is the run's: its H×W, [0, 1] scaling
(mean 0, std 1), bilinear resize with ``crop_pct`` 1.0.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from ..backbones.base import Backbone, Tap
from ..backbones.registry import StrideNotSupported
from ..backbones.weights import WeightsInfo, file_sha256
from ..config import ModelConfig
from .checkpoint import find_checkpoint, load_model
from .config import AEConfig
from .model import Encoder


class AEBackbone(Backbone):
    """The encoder of a FeXT autoencoder."""

    kind = "ae"

    def __init__(self, encoder: Encoder, cfg: AEConfig, weights: WeightsInfo,
                 meta: dict | None = None):
        super().__init__()
        self.encoder = encoder
        self.cfg = cfg
        self.weights = weights
        self.meta = dict(meta or {})

    @property
    def feature_info(self) -> list[Tap]:
        return [Tap(name=f"stage{i}", index=i, channels=c, reduction=2 ** (i + 1),
                    module=f"encoder.blocks.{i}") for i, c in enumerate(self.cfg.widths)]

    @property
    def num_features(self) -> int:
        return self.cfg.widths[-1]

    @property
    def architecture(self) -> str:
        c = self.cfg
        return f"fext-d{c.depth}-w{c.base_width}-{c.max_width}-k{c.kernel_size}"

    def data_config(self) -> dict:
        return {"input_size": (3, self.cfg.height, self.cfg.width), "interpolation": "bilinear",
                "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0), "crop_pct": 1.0,
                "crop_mode": "center"}

    def forward_intermediates(self, x: torch.Tensor, indices: list[int],
                              final: bool) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        wanted = set(indices)
        last = len(self.encoder.blocks) - 1 if final else max(wanted, default=-1)
        out = []
        for i, block in enumerate(self.encoder.blocks[:last + 1]):
            x = block(x)
            if i in wanted:
                out.append(x)
        return (x if final else None), out

    def describe(self) -> dict:
        d = super().describe()
        d.update({"architecture_config": self.cfg.architecture(),
                  "latent_shape": list(self.cfg.latent_shape),
                  "epoch": self.meta.get("epoch"), "val_loss": self.meta.get("val_loss")})
        return d


def create_ae_backbone(location: str, cfg: ModelConfig) -> AEBackbone:
    """Build the encoder of the run folder (its ``best``, else ``last`` checkpoint) or the
    checkpoint file at ``location``. ``cfg.img_size`` sets a square input (the network takes any
    size); an output stride cannot be honoured (the encoder always halves)."""
    path = find_checkpoint(location)
    model, meta = load_model(path)
    if cfg.output_stride and cfg.output_stride != 2 ** model.cfg.depth:
        raise StrideNotSupported(f"an autoencoder encoder has a fixed stride; drop output_stride "
                                 f"{cfg.output_stride} (this one's is {2 ** model.cfg.depth})")
    arch = model.cfg
    if cfg.img_size:
        arch = replace(arch, height=cfg.img_size, width=cfg.img_size)
    weights = WeightsInfo("file", str(Path(path).resolve()), file_sha256(path))
    return AEBackbone(model.encoder, arch, weights, meta).eval()
