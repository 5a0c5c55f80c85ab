"""A learned FLIM network as an imgfeat backbone (``flim:MODEL``).

Stages are the network's blocks: a block starts at a convolution (with the normalisation layers
right before it) and runs up to the next block; its output is the stage map. The final map is
the last stage. Preprocessing: the model's input size, RGB scaled to [0, 1] (mean 0, std 1);
the L*a*b* conversion, when the model uses it, runs inside the network.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..backbones.base import Backbone, Tap
from ..backbones.registry import StrideNotSupported
from ..backbones.weights import WeightsInfo, file_sha256
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


class FlimBackbone(Backbone):
    """A FLIM network's features: one stage per convolution block."""

    kind = "flim"

    def __init__(self, net: FlimNetwork, weights: WeightsInfo, input_size: tuple[int, int] | None = None):
        super().__init__()
        self.net = net
        self.weights = weights
        self.input_size = tuple(input_size or net.input_size)
        self._ends = stage_ends(net.features)
        with torch.no_grad():
            probe = torch.zeros(1, 3, *self.input_size)
            _, maps = self.forward_intermediates(probe, list(range(len(self._ends))), False)
        names = [n for n, _ in net.features.named_children()]
        self._taps = [Tap(name=f"stage{i}", index=i, channels=int(m.shape[1]),
                          reduction=max(1, round(self.input_size[0] / m.shape[2])),
                          module=f"features.{names[end]}")
                      for i, (m, end) in enumerate(zip(maps, self._ends, strict=True))]

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

    def data_config(self) -> dict:
        return {"input_size": (3, *self.input_size), "interpolation": "bilinear",
                "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0), "crop_pct": 1.0,
                "crop_mode": "center"}

    def forward_intermediates(self, x: torch.Tensor, indices: list[int],
                              final: bool) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        wanted = {self._ends[i] for i in indices}
        last = len(self._ends) - 1 if final else max(indices, default=-1)
        stop = self._ends[last] if last >= 0 else -1
        x = self.net.input(x)
        out = []
        for i, layer in enumerate(self.net.features.children()):
            if i > stop:
                break
            x = layer(x)
            if i in wanted:
                out.append(x)
        return (x if final else None), out

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
    input (the network takes any size); an output stride other than the network's own cannot be
    honoured."""
    path = resolve_model_path(location)
    net = load_model(path)
    size = (cfg.img_size, cfg.img_size) if cfg.img_size else net.input_size
    backbone = FlimBackbone(net, WeightsInfo("file", str(path.resolve()), file_sha256(path)), size)
    natural = backbone.feature_info[-1].reduction
    if cfg.output_stride and cfg.output_stride != natural:
        raise StrideNotSupported(f"a FLIM network has a fixed stride ({natural}); drop output_stride "
                                 f"{cfg.output_stride}")
    return backbone.eval()
