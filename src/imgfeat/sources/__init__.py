"""Sources: where the images come from (folders, CSV lists, arrays)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import SourceError
from .arrays import ArraySource
from .base import Item, Source
from .csvlist import CsvSource
from .folder import FolderSource
from .paths import PathsSource


def open_source(spec, *, labels: str = "auto", label_pattern: str | None = None,
                data_labels=None, height: int | None = None, width: int | None = None,
                channels: int | None = None) -> Source:
    """Make a source from a folder path, a ``.csv`` list, a ``.npy`` array, an array, or
    ``lids:FOLDER[,SPLIT]`` (flat ``<class>_<id>.png`` images, optional split file)."""
    if isinstance(spec, Source):
        return spec
    if isinstance(spec, list | tuple) and spec and isinstance(spec[0], str | os.PathLike):
        return PathsSource(spec, data_labels)
    if not isinstance(spec, str | os.PathLike):
        return ArraySource(spec, data_labels, height, width, channels)
    if isinstance(spec, str) and spec.startswith("lids:"):  # the LIDS/FLIM layout, split optional
        from .lids import LidsSource, parse_lids_spec

        return LidsSource(*parse_lids_spec(spec))
    p = Path(spec)
    if p.is_dir():
        return FolderSource(p, labels=labels, label_pattern=label_pattern)
    if p.suffix.lower() in (".csv", ".txt", ".tsv") and p.is_file():
        return CsvSource(p)
    if p.suffix.lower() in (".npy", ".npz"):
        return ArraySource(p, data_labels, height, width, channels)
    if not p.exists():
        raise SourceError(f"source not found: {p}")
    raise SourceError(f"cannot read {p}: give a folder, a .csv list, or a .npy array")


__all__ = ["ArraySource", "CsvSource", "FolderSource", "Item", "PathsSource", "Source", "open_source"]
