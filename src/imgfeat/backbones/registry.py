"""Backbone kinds by model-name scheme, and the one factory every entry point uses.

``tf_efficientnet_lite0`` (a plain name) is timm; ``ae:RUN`` an autoencoder run; ``flim:MODEL`` a
FLIM model file; ``hf-hub:…`` and ``local-dir:…`` are timm's own schemes and go to timm unchanged.
The scheme is parsed before timm's ``name.tag`` split, as timm parses ``hf-hub:``. A Windows path
(``C:\\…``) is a path, not a scheme.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import replace

from ..config import ModelConfig
from ..errors import ModelError
from .base import Backbone

#: A kind's factory: (location after the scheme, the model options) -> a Backbone.
BackboneFactory = Callable[[str, ModelConfig], Backbone]

#: timm's own schemes: passed to timm as they are
TIMM_SCHEMES = ("hf-hub", "hf_hub", "timm", "local-dir")

_FACTORIES: dict[str, BackboneFactory | str] = {
    "timm": "imgfeat.backbones.timm:create_timm_backbone",
    "ae": "imgfeat.autoencoder.backbone:create_ae_backbone",
    "flim": "imgfeat.flim.backbone:create_flim_backbone",
}


class StrideNotSupported(ModelError):
    """The backbone cannot be built at the requested output stride."""


def register_backbone_kind(scheme: str, factory: BackboneFactory | str) -> None:
    """Make ``scheme:LOCATION`` model names build backbones with ``factory`` (a callable or an
    ``"module:function"`` string, imported on first use)."""
    if not re.fullmatch(r"[a-z][a-z0-9_-]+", scheme) or scheme in TIMM_SCHEMES:
        raise ValueError(f"bad backbone scheme {scheme!r}")
    if scheme in _FACTORIES and _FACTORIES[scheme] != factory:
        raise ValueError(f"backbone scheme {scheme!r} registered twice")
    _FACTORIES[scheme] = factory


def backbone_kinds() -> list[str]:
    """The registered kinds (``timm`` is the plain-name kind)."""
    return sorted(_FACTORIES)


def parse_model_name(name: str) -> tuple[str, str]:
    """(kind, location): ``ae:runs/x`` -> (``ae``, ``runs/x``); ``resnet50.a1`` -> (``timm``,
    ``resnet50.a1``); ``hf-hub:org/m`` -> (``timm``, ``hf-hub:org/m``)."""
    name = str(name).strip()
    if not name:
        raise ModelError("empty model name")
    scheme, sep, rest = name.partition(":")
    if not sep or re.fullmatch(r"[A-Za-z]", scheme) and rest[:1] in ("\\", "/"):
        return "timm", name  # a plain name (or a Windows path, which timm will refuse)
    if scheme in TIMM_SCHEMES:
        return "timm", name
    if scheme in _FACTORIES and scheme != "timm":
        if not rest:
            raise ModelError(f"model {name!r}: give a location after '{scheme}:'")
        return scheme, rest
    known = ", ".join(f"{k}:" for k in backbone_kinds() if k != "timm")
    raise ModelError(f"unknown model scheme {scheme + ':'!r} in {name!r}: use a timm name, "
                     f"{known} or hf-hub:")


def _factory(kind: str) -> BackboneFactory:
    factory = _FACTORIES[kind]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            raise ModelError(f"backbone kind {kind!r} is not available: {exc}") from None
        _FACTORIES[kind] = factory
    return factory


def create_backbone(cfg: ModelConfig, *, multi_stage: bool = False) -> Backbone:
    """Build the backbone ``cfg.model`` names, with its weights, in eval mode.

    With ``multi_stage`` (a pooling over several stages, as RADAM) and no output stride asked,
    stride 8 is tried, then 32, then the network's default: only "stride not supported" moves on
    to the next, any other error (a mistyped name) is reported as it is. ``output_stride`` of the
    result says which was used.
    """
    kind, location = parse_model_name(cfg.model)
    factory = _factory(kind)
    if not multi_stage or cfg.output_stride:
        backbone = factory(location, cfg)
        backbone.output_stride = cfg.output_stride
        return backbone.eval()
    for stride in (8, 32):
        try:
            backbone = factory(location, replace(cfg, output_stride=stride))
            backbone.output_stride = stride
            return backbone.eval()
        except StrideNotSupported:
            continue
    backbone = factory(location, cfg)
    backbone.output_stride = None
    return backbone.eval()
