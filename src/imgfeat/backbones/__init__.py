"""Backbones: networks that turn a batch of images into named feature maps.

Every kind (timm, ``ae:``, ``flim:``) is a :class:`Backbone` (a chain of layers, as ``ae:`` and
``flim:``, is a :class:`SequentialBackbone`); :func:`create_backbone` builds any of them from a
model name; trained kinds keep their networks in model files (:mod:`.modelfile`).
"""

from .base import Backbone, LayerSpec, Tap
from .registry import (
    StrideNotSupported,
    backbone_kinds,
    create_backbone,
    parse_model_name,
    register_backbone_kind,
)
from .sequential import SequentialBackbone
from .weights import PACKAGED, WeightsInfo

__all__ = ["PACKAGED", "Backbone", "LayerSpec", "SequentialBackbone", "StrideNotSupported", "Tap",
           "WeightsInfo", "backbone_kinds", "create_backbone", "parse_model_name",
           "register_backbone_kind"]
