"""A trained FeXT encoder as an imgfeat backbone (``ae:RUN`` or ``ae:CHECKPOINT``).

Stages are the encoder blocks' outputs (after each down-sampling, reductions 2, 4, 8, …); the
final map is the latent (the last stage). Preprocessing is the run's: its H×W and recorded
resize mode, [0, 1] scaling (mean 0, std 1), bilinear, no crop margin.
"""

from __future__ import annotations

from pathlib import Path

from ..backbones.base import Tap
from ..backbones.sequential import SequentialBackbone
from ..backbones.weights import WeightsInfo, file_weights
from ..config import ModelConfig
from .checkpoint import architecture_of, find_checkpoint, load_into, read_weights
from .config import AEConfig
from .model import AutoEncoder, Encoder


class AEBackbone(SequentialBackbone):
    """The encoder of a FeXT autoencoder: its blocks are the stages."""

    kind = "ae"

    def __init__(self, encoder: Encoder, cfg: AEConfig, weights: WeightsInfo,
                 meta: dict | None = None):
        super().__init__()
        self.encoder = encoder
        self.cfg = cfg
        self.weights = weights
        self.meta = dict(meta or {})
        self.stage_ends = list(range(cfg.depth))
        self.input_size = (cfg.height, cfg.width)
        self.resize = cfg.resize

    def chain(self):
        return self.encoder.blocks

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

    def describe(self) -> dict:
        d = super().describe()
        d.update({"architecture_config": self.cfg.architecture(),
                  "latent_shape": list(self.cfg.latent_shape),
                  "epoch": self.meta.get("epoch"), "val_loss": self.meta.get("val_loss")})
        return d


def create_ae_backbone(location: str, cfg: ModelConfig) -> AEBackbone:
    """Build the encoder of the run folder (its ``best``, else ``last`` checkpoint) or the
    checkpoint file at ``location``. ``cfg.img_size`` sets a square input (the network takes any
    size); the architecture is checked to fit at that size before it is built."""
    path = find_checkpoint(location)
    tensors, meta = read_weights(path)
    size = (cfg.img_size, cfg.img_size) if cfg.img_size else None
    arch = architecture_of(meta, size, Path(path).name)
    model = AutoEncoder(arch)
    load_into(model, tensors, Path(path).name)
    return AEBackbone(model.encoder, arch, file_weights(path), meta).eval()
