"""Plots of feature tables."""

from .maps import embed_2d, plot_features

__all__ = ["embed_2d", "plot_features"]
