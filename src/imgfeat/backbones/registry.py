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
#: kinds whose networks have one output stride (their last stage's reduction): built once,
#: never asked for another; the others take ``output_stride`` when they are built
_FIXED_STRIDE: set[str] = {"ae", "flim"}
#: the strides a multi-stage pooling tries, in order, when none is asked
MULTI_STAGE_STRIDES = (8, 32)


class StrideNotSupported(ModelError):
    """The backbone cannot be built at the requested output stride."""


def register_backbone_kind(scheme: str, factory: BackboneFactory | str, *,
                           fixed_stride: bool = False) -> None:
    """Make ``scheme:LOCATION`` model names build backbones with ``factory`` (a callable or an
    ``"module:function"`` string, imported on first use).

    ``fixed_stride``: the kind's networks have one output stride, their last stage's reduction
    (an ``output_stride`` asked for is checked against it after one build; the factory never
    sees it); otherwise the factory builds at ``cfg.output_stride`` and raises
    :class:`StrideNotSupported` when the network cannot.
    """
    if not re.fullmatch(r"[a-z][a-z0-9_-]+", scheme) or scheme in TIMM_SCHEMES:
        raise ValueError(f"bad backbone scheme {scheme!r}")
    if scheme in _FACTORIES and _FACTORIES[scheme] != factory:
        raise ValueError(f"backbone scheme {scheme!r} registered twice")
    _FACTORIES[scheme] = factory
    if fixed_stride:
        _FIXED_STRIDE.add(scheme)
    else:
        _FIXED_STRIDE.discard(scheme)


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
    stride 8 is tried, then 32, then the network's default. A kind registered with a fixed
    stride is built once and keeps its own stride (recorded when it is one of those); the others
    are built at each stride until one is supported: only "stride not supported" moves on to
    the next, any other error (a mistyped name) is reported as it is. ``output_stride`` of the
    result says which was used.
    """
    kind, location = parse_model_name(cfg.model)
    factory = _factory(kind)
    if kind in _FIXED_STRIDE:
        backbone = factory(location, replace(cfg, output_stride=None))
        stages = backbone.feature_info
        own = stages[-1].reduction if stages else None
        if cfg.output_stride and cfg.output_stride != own:
            raise StrideNotSupported(f"{cfg.model} has a fixed output stride ({own}); drop "
                                     f"output_stride {cfg.output_stride}")
        wanted = cfg.output_stride or (multi_stage and own in MULTI_STAGE_STRIDES)
        backbone.output_stride = own if wanted else None
        return backbone.eval()
    if not multi_stage or cfg.output_stride:
        backbone = factory(location, cfg)
        backbone.output_stride = cfg.output_stride
        return backbone.eval()
    for stride in MULTI_STAGE_STRIDES:
        try:
            backbone = factory(location, replace(cfg, output_stride=stride))
            backbone.output_stride = stride
            return backbone.eval()
        except StrideNotSupported:
            continue
    backbone = factory(location, cfg)
    backbone.output_stride = None
    return backbone.eval()
