"""Backbones: networks that turn a batch of images into named feature maps.

Every kind (timm, ``ae:``, ``flim:``) is a :class:`Backbone`; :func:`create_backbone` builds any
of them from a model name.
"""

from .base import Backbone, LayerSpec, Tap
from .registry import (
    StrideNotSupported,
    backbone_kinds,
    create_backbone,
    parse_model_name,
    register_backbone_kind,
)
from .weights import PACKAGED, WeightsInfo

__all__ = ["PACKAGED", "Backbone", "LayerSpec", "StrideNotSupported", "Tap", "WeightsInfo",
           "backbone_kinds", "create_backbone", "parse_model_name", "register_backbone_kind"]
