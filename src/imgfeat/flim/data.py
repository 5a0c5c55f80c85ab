"""Images and marker files for FLIM tools: sources, reading at the model's size, batched features."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..decode import image_size, open_image
from ..errors import DecodeError, SourceError
from ..sources import Item, Source, open_source
from ..sources.lids import LIDS_PREFIX, LidsSource, parse_lids_spec
from .markers import MARKER_SUFFIX, Markers, marker_path, read_marker_set

__all__ = ["batches", "marked_items", "open_data", "read_rgb"]


def open_data(data: str | os.PathLike | Source, split: str | os.PathLike | None = None,
              label_pattern: str | None = None) -> Source:
    """A source for FLIM tools: any imgfeat source (``label_pattern`` takes labels from file
    names), ``lids:FOLDER[,SPLIT]``, or a LIDS folder with a ``split`` file."""
    if isinstance(data, Source):
        return data
    if split is not None:
        root = parse_lids_spec(str(data))[0] if str(data).startswith(LIDS_PREFIX) else data
        return LidsSource(root, split)
    if str(data).startswith(LIDS_PREFIX):
        return LidsSource(*parse_lids_spec(str(data)))
    return open_source(data, label_pattern=label_pattern)


def read_rgb(path: str | os.PathLike, size: tuple[int, int] | None = None) -> torch.Tensor:
    """An image as an RGB float tensor (3, H, W) in [0, 1], resized (bilinear) to ``size`` (H, W)."""
    try:
        img = open_image(path)
    except DecodeError as exc:
        raise SourceError(f"{path}: cannot read image ({exc})") from None
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).to(torch.float32) / 255.0


def batches(items: list[Item], size: tuple[int, int], batch_size: int) -> Iterator[torch.Tensor]:
    """Batches (B, 3, H, W) of the items' images at ``size``."""
    for start in range(0, len(items), batch_size):
        yield torch.stack([read_rgb(it.path, size) for it in items[start: start + batch_size]])


def marked_items(source: Source, markers: str | os.PathLike | None = None,
                 label_base: int | None = None) -> tuple[list[Item], list[Markers], int]:
    """The source's images that have a marker file (``<stem>.txt`` in ``markers``, or beside the
    image), their markers, and the label base used. A marker file in ``markers`` with no image
    of that name is an error, as is finding no marker file at all."""
    chosen: list[Item] = []
    files: list[Path] = []
    stems: dict[str, str] = {}
    for it in source.items:
        if it.path is None:
            continue
        f = marker_path(it.path, markers)
        if f.is_file():
            if f.name in stems:
                raise SourceError(f"{f}: marker file claimed by two images ({stems[f.name]} and {it.id})")
            stems[f.name] = it.id
            chosen.append(it)
            files.append(f)
    if markers is not None:
        folder = Path(markers)
        if not folder.is_dir():
            raise SourceError(f"marker folder not found: {folder}")
        orphans = sorted(p.name for p in folder.glob(f"*{MARKER_SUFFIX}") if p.name not in stems)
        if orphans:
            raise SourceError(f"{folder / orphans[0]}: no image named {Path(orphans[0]).stem}.* in the data"
                              + (f" ({len(orphans)} such marker files)" if len(orphans) > 1 else ""))
    if not chosen:
        where = markers if markers is not None else "beside the images"
        raise SourceError(f"no marker files (<image stem>{MARKER_SUFFIX}) found {'in ' if markers else ''}"
                          f"{where}")
    marks, base = read_marker_set(files, label_base)
    for f, m, it in zip(files, marks, chosen, strict=True):
        if len(m) == 0:
            raise SourceError(f"{f}: the image has no markers")
        if (size := image_size(it.path)) != (m.width, m.height):
            raise SourceError(f"{f}: markers drawn on a {m.width}x{m.height} image, the image {it.id} is "
                              f"{size[0]}x{size[1]}")
    return chosen, marks, base
