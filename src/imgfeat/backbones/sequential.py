"""The base of backbones that are one chain of layers run in order (``ae:``, ``flim:``).

A kind says which module holds the chain (:meth:`chain`, whose children run in order), after
which of its layers each stage ends (``stage_ends``), what runs before the chain (:meth:`stem`,
e.g. a colour conversion), and its input size and resize mode. The forward loop that stops after
the last stage asked for, the stages' reductions measured on a probe, the fixed output stride
and the data config of a network that takes RGB in [0, 1] are written here once.
"""

from __future__ import annotations

import torch
from torch import nn

from ..preprocess import unit_rgb_config
from .base import Backbone, Tap


class SequentialBackbone(Backbone):
    """A chain of layers; stage ``i`` is the output of layer ``stage_ends[i]`` of the chain.

    Such a network has one output stride (its last stage's reduction): it is registered with
    ``fixed_stride=True`` and never rebuilt for another.
    """

    #: index (in the chain) of the last layer of each stage
    stage_ends: list[int]
    #: (H, W) the network takes
    input_size: tuple[int, int]
    #: how images of another shape reach ``input_size`` (``squash`` or ``crop``)
    resize: str = "squash"
    #: the colour space the network works in (it converts RGB itself when not ``rgb``)
    color_space: str = "rgb"

    def chain(self) -> nn.Module:
        """The module whose children are the layers, in the order they run."""
        raise NotImplementedError

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """What runs before the chain (nothing by default)."""
        return x

    def probe_taps(self, prefix: str | None = None) -> list[Tap]:
        """The stages measured on one zero image at the input size: channels and reduction;
        modules named ``prefix.<layer>`` (default: the chain's name in this backbone)."""
        with torch.no_grad():
            probe = torch.zeros(1, 3, *self.input_size)
            _, maps = self.forward_intermediates(probe, list(range(len(self.stage_ends))), False)
        names = [n for n, _ in self.chain().named_children()]
        if prefix is None:
            prefix = next(n for n, m in self.named_modules() if m is self.chain())
        return [Tap(name=f"stage{i}", index=i, channels=int(m.shape[1]),
                    reduction=max(1, round(self.input_size[0] / m.shape[2])),
                    module=f"{prefix}.{names[end]}")
                for i, (m, end) in enumerate(zip(maps, self.stage_ends, strict=True))]

    def data_config(self) -> dict:
        return unit_rgb_config(*self.input_size, resize=self.resize,
                               color_space=self.color_space)

    def forward_intermediates(self, x: torch.Tensor, indices: list[int],
                              final: bool) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        wanted = {self.stage_ends[i] for i in indices}
        last = len(self.stage_ends) - 1 if final else max(indices, default=-1)
        stop = self.stage_ends[last] if last >= 0 else -1
        x = self.stem(x)
        out = []
        for i, layer in enumerate(self.chain().children()):
            if i > stop:
                break
            x = layer(x)
            if i in wanted:
                out.append(x)
        return (x if final else None), out
