"""Plots of feature tables."""

from .maps import embed_2d, plot_features, plot_features_html

__all__ = ["embed_2d", "plot_features", "plot_features_html"]
