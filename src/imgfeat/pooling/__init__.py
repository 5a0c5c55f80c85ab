"""Poolings: named ways to turn feature maps into vectors."""

from . import basic, radam, stats, vortex  # noqa: F401 - registers the poolings
from .registry import Pooling, create_pooling, list_poolings, register_pooling

__all__ = ["Pooling", "create_pooling", "list_poolings", "register_pooling"]
