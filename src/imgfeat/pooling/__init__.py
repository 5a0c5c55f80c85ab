"""Poolings: named ways to turn feature maps into vectors."""

from . import basic  # noqa: F401 - registers the classic poolings
from .registry import Pooling, create_pooling, list_poolings, register_pooling

__all__ = ["Pooling", "create_pooling", "list_poolings", "register_pooling"]
