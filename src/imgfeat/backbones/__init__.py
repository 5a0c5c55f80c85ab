"""Backbones: networks that turn a batch of images into named feature maps."""

from .timm import LayerSpec, Tap, TimmBackbone, check_model_name, create_timm_model, parse_layers
from .weights import PACKAGED, WeightsInfo

__all__ = ["PACKAGED", "LayerSpec", "Tap", "TimmBackbone", "WeightsInfo", "check_model_name",
           "create_timm_model", "parse_layers"]
