"""A learned FLIM network as an imgfeat backbone (``flim:MODEL``).

Stages are the network's blocks: a block starts at a convolution (with the normalisation layers
right before it) and runs up to the next block; its output is the stage map. The final map is
the last stage. Preprocessing is the model's own (:meth:`FlimNetwork.data_config`): its input
size, squashed, RGB scaled to [0, 1] (mean 0, std 1); the L*a*b* conversion, when the model
uses it, runs inside the network.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..backbones.base import Tap
from ..backbones.sequential import SequentialBackbone
from ..backbones.weights import WeightsInfo, file_weights
from ..config import ModelConfig
from ..errors import ModelError
from .network import FlimConv2d, FlimNetwork, MarkerNorm2d, load_model

__all__ = ["FlimBackbone", "create_flim_backbone", "resolve_model_path"]

MODEL_FILE = "model.safetensors"


def _has_conv(mod: nn.Module) -> bool:
    return any(isinstance(m, FlimConv2d) for m in mod.modules())


def stage_ends(features: nn.Sequential) -> list[int]:
    """Indices of the top-level layers whose outputs are the stages."""
    children = list(features.children())
    convs = [i for i, m in enumerate(children) if _has_conv(m)]
    if not convs:
        return [len(children) - 1]
    starts = []
    for b, i in enumerate(convs):
        lowest = convs[b - 1] + 1 if b else 0
        while i > lowest and isinstance(children[i - 1], MarkerNorm2d | nn.BatchNorm2d):
            i -= 1
        starts.append(i if b else 0)
    return [s - 1 for s in starts[1:]] + [len(children) - 1]


class FlimBackbone(SequentialBackbone):
    """A FLIM network's features: one stage per convolution block."""

    kind = "flim"

    def __init__(self, net: FlimNetwork, weights: WeightsInfo, input_size: tuple[int, int] | None = None):
        super().__init__()
        self.net = net
        self.weights = weights
        self.input_size = tuple(input_size or net.input_size)
        self.color_space = net.color
        self.stage_ends = stage_ends(net.features)
        self._taps = self.probe_taps(prefix="features")  # named in the network, as its file

    def chain(self) -> nn.Module:
        return self.net.features

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.input(x)

    @property
    def feature_info(self) -> list[Tap]:
        return list(self._taps)

    @property
    def num_features(self) -> int:
        return self._taps[-1].channels

    @property
    def architecture(self) -> str:
        convs = [m.out_channels for m in self.net.features.modules() if isinstance(m, FlimConv2d)]
        return f"flim-{self.net.color}-" + "-".join(map(str, convs))

    def describe(self) -> dict:
        d = super().describe()
        d.update({"color": self.net.color, "input_size": list(self.input_size),
                  "architecture_json": self.net.architecture.to_dict()})
        return d


def resolve_model_path(location: str) -> Path:
    """The model file at ``location``, or ``model.safetensors`` in the folder ``location``."""
    path = Path(location).expanduser()
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise ModelError(f"FLIM model not found: {path}")
    return path


def create_flim_backbone(location: str, cfg: ModelConfig) -> FlimBackbone:
    """Build the backbone of the FLIM model file at ``location``. ``cfg.img_size`` sets a square
    input (the network takes any size; it is checked to fit at that size before it is built)."""
    path = resolve_model_path(location)
    size = (cfg.img_size, cfg.img_size) if cfg.img_size else None
    net = load_model(path, size)
    return FlimBackbone(net, file_weights(path), size).eval()
