"""The one Backbone protocol: every kind of extractor (timm, autoencoder, FLIM) is one of these.

A kind supplies four things: ``feature_info`` (its stages), ``num_features``, ``data_config()``
(timm's preprocessing keys) and ``forward_intermediates()``. Everything else is written here once:
tap selection (``select``), ``forward(x) -> {tap name: tensor}``, the default head (global
average) and provenance (``describe``). The probe, BatchNorm folding, SAME-edge padding, layout,
preprocessing, stores and engines work on this class and never ask which kind they hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import ModelError
from .weights import WeightsInfo


@dataclass(frozen=True)
class Tap:
    """One feature map a backbone hands out: a stage (by index), the final map or pre-logits."""

    name: str
    index: int | None  # feature_info index for stages, None for "final" / "pooled"
    channels: int
    reduction: int | None
    module: str = ""


@dataclass
class LayerSpec:
    """The parsed ``layers`` value: taps in order."""

    taps: list[Tap] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.taps]

    @property
    def stage_indices(self) -> list[int]:
        return [t.index for t in self.taps if t.index is not None]


#: The keys every ``data_config()`` returns (timm's names).
DATA_CONFIG_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
#: Keys a ``data_config()`` may add: its own resize mode (``crop`` when absent) and the colour
#: space it works in (``rgb`` when absent; pixels always reach it as RGB).
DATA_CONFIG_OPTIONAL = ("resize", "color_space")


class Backbone(nn.Module):
    """Abstract backbone: images (B, 3, H, W) float in, named feature maps out.

    Subclasses set ``kind`` and ``weights`` and implement ``feature_info``, ``num_features``,
    ``data_config`` and ``forward_intermediates``; they may override ``forward_head`` (timm uses
    its pre-logits) and ``describe`` (add what identifies the network, e.g. file hashes).
    """

    kind: str = "abstract"
    #: where the parameters came from; recorded in every output and hashed for resume
    weights: WeightsInfo = WeightsInfo("random", "none")
    #: the output stride the network was built with (None: its default)
    output_stride: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.layers = LayerSpec()

    # -- what each kind supplies -------------------------------------------------------------
    @property
    def feature_info(self) -> list[Tap]:
        """The stages, in order: ``Tap(name='stage{i}', index=i, channels, reduction, module)``."""
        raise NotImplementedError

    @property
    def num_features(self) -> int:
        """Channels of the final map (and of the ``pooled`` vector)."""
        raise NotImplementedError

    @property
    def architecture(self) -> str:
        """A short name of the network, for provenance."""
        return type(self).__name__

    def data_config(self) -> dict:
        """Everything that decides its pixels: timm's keys (:data:`DATA_CONFIG_KEYS`) and
        optionally :data:`DATA_CONFIG_OPTIONAL`; a user's option overrides it only when given
        (:func:`imgfeat.preprocess.resolve_data_config`)."""
        raise NotImplementedError

    def forward_intermediates(self, x: torch.Tensor, indices: list[int],
                              final: bool) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        """(final map or None, [map of stage i for i in indices]) for a batch ``x``."""
        raise NotImplementedError

    def forward_head(self, final: torch.Tensor) -> torch.Tensor:
        """The ``pooled`` vector from the final map: global average by default."""
        return final.mean(dim=(2, 3)) if final.ndim == 4 else final

    def describe(self) -> dict:
        """Provenance: kind, architecture, weights (with their hash when from a file)."""
        return {"kind": self.kind, "architecture": self.architecture,
                "weights": self.weights.to_dict()}

    # -- shared by every kind ----------------------------------------------------------------
    def parse_layers(self, spec: str) -> LayerSpec:
        """Parse ``pooled``, ``final``, ``all``, or a comma list of stage indices (negative ok)."""
        stages = self.feature_info
        taps: list[Tap] = []
        for token in [t.strip() for t in str(spec).split(",") if t.strip()]:
            if token == "pooled":
                taps.append(Tap("pooled", None, int(self.num_features), None, "pre_logits"))
            elif token == "final":
                taps.append(Tap("final", None, int(self.num_features),
                                stages[-1].reduction if stages else None, "forward_features"))
            elif token == "all":
                if not stages:
                    raise ModelError("this model exposes no stages; use --layers pooled or final")
                taps.extend(stages)
            else:
                try:
                    i = int(token)
                except ValueError:
                    raise ModelError(f"bad layer {token!r}: use pooled, final, all, or stage "
                                     f"indices like 1,-1") from None
                if not -len(stages) <= i < len(stages):
                    raise ModelError(f"stage index {i} out of range: this model has "
                                     f"{len(stages)} stages (0..{len(stages) - 1})")
                taps.append(stages[i])
        if not taps:
            raise ModelError("no layers selected")
        if len({t.name for t in taps}) != len(taps):
            raise ModelError(f"layer chosen twice in {spec!r}")
        return LayerSpec(taps)

    def select(self, layers: str | LayerSpec) -> Backbone:
        """Choose the taps ``forward`` returns; returns self."""
        self.layers = layers if isinstance(layers, LayerSpec) else self.parse_layers(layers)
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The selected taps of a batch, by name, in the selected order."""
        if not self.layers.taps:
            raise ModelError("no layers selected: call select() first")
        n = len(self.feature_info)
        indices = sorted({i % n for i in self.layers.stage_indices})
        wants_final = any(t.index is None for t in self.layers.taps)
        final, inters = self.forward_intermediates(x, indices, wants_final)
        by_index = dict(zip(indices, inters, strict=True))
        out: dict[str, torch.Tensor] = {}
        for tap in self.layers.taps:
            if tap.index is not None:
                out[tap.name] = by_index[tap.index % n]
            elif tap.name == "pooled":
                out["pooled"] = self.forward_head(final)
            else:  # final: token maps (B, N, C) become (B, C, N, 1)
                out["final"] = final.transpose(1, 2).unsqueeze(-1) if final.ndim == 3 else final
        return out


def stage_taps(info: list[dict]) -> list[Tap]:
    """Taps from timm-style ``feature_info`` dicts (``num_chs``, ``reduction``, ``module``)."""
    return [Tap(name=f"stage{i}", index=i, channels=int(d["num_chs"]),
                reduction=int(d["reduction"]) if d.get("reduction") else None,
                module=str(d.get("module", "")))
            for i, d in enumerate(info)]
