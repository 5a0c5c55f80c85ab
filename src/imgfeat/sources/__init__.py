"""Sources: where the images come from (folders, CSV lists, arrays)."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from ..errors import SourceError
from ..storage import is_url
from .arrays import ArraySource
from .base import Item, Source
from .csvlist import CsvSource
from .folder import FolderSource
from .paths import PathsSource


def open_source(spec, *, labels: str = "auto", label_pattern: str | None = None,
                data_labels=None, height: int | None = None, width: int | None = None,
                channels: int | None = None, storage_options: dict | None = None) -> Source:
    """Make a source from a folder path, a ``.csv`` list, a ``.npy`` array, an array, or
    ``lids:FOLDER[,SPLIT]`` (flat ``<class>_<id>.png`` images, optional split file).

    Folders and CSV lists may be URLs (``s3://bucket/prefix/``, ``gs://…``, ``az://…``), read
    through fsspec with ``storage_options``.
    """
    if isinstance(spec, Source):
        return spec
    if isinstance(spec, list | tuple) and spec and isinstance(spec[0], str | os.PathLike):
        src = PathsSource(spec, data_labels)
        src.storage_options = dict(storage_options or {})
        return src
    if not isinstance(spec, str | os.PathLike):
        return ArraySource(spec, data_labels, height, width, channels)
    if is_url(spec):
        suffix = posixpath.splitext(spec.rstrip("/"))[1].lower()
        if suffix in (".csv", ".txt", ".tsv"):
            return CsvSource(spec, storage_options=storage_options)
        if suffix in (".npy", ".npz"):
            raise SourceError(f"arrays are read from local files only, not {spec}")
        return FolderSource(spec, labels=labels, label_pattern=label_pattern,
                            storage_options=storage_options)
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
