"""FLIM: a convolutional feature extractor whose filters are computed from user-drawn markers.

Submodules: ``markers`` (marker files), ``architecture`` (the JSON network description),
``learn`` (filter learning), ``network`` (the runnable network and its model file),
``backbone`` (the imgfeat Backbone adapter), ``train`` / ``validate`` (the tools).
Names are imported lazily, so reading markers never imports torch.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_LAZY = {
    "Markers": "markers",
    "MarkerError": "markers",
    "read_markers": "markers",
    "read_marker_set": "markers",
    "write_markers": "markers",
    "marker_path": "markers",
    "markers_from_mask": "markers",
    "markers_from_image_label": "markers",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
