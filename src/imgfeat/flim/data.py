"""Images and marker files for FLIM tools: sources, and items read as the network gets them
(through ``Source`` and ``Preprocess`` with the network's data config, as ``extract`` reads them)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import torch

from ..errors import DecodeError, SourceError
from ..preprocess import Preprocess, normalize, read_pixels, resolve_data_config
from ..sources import Item, Source, open_source
from ..sources.lids import LIDS_PREFIX, LidsSource, parse_lids_spec
from .markers import MARKER_SUFFIX, Markers, marker_path, read_marker_set
from .network import FlimNetwork, flim_data_config

__all__ = ["marked_items", "natural_size", "network_batches", "open_data", "preprocess_for",
           "read_images"]


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


def preprocess_for(net_or_size: FlimNetwork | tuple[int, int]) -> tuple[Preprocess, dict]:
    """The pixel road of a FLIM network (or of one at (H, W)): its data config, resolved as
    extraction resolves it, and the :class:`Preprocess` made from it."""
    own = (net_or_size.data_config() if isinstance(net_or_size, FlimNetwork)
           else flim_data_config(net_or_size))
    dc = resolve_data_config(own)
    return Preprocess.from_data_config(dc), dc


def natural_size(source: Source, item: Item) -> tuple[int, int]:
    """(H, W) of an item as decoded."""
    try:
        w, h = source.read(item).size
    except DecodeError as exc:
        raise SourceError(f"{item.path or item.id}: cannot read image ({exc})") from None
    return h, w


def read_images(source: Source, items: list[Item], net_or_size: FlimNetwork | tuple[int, int]
                ) -> list[torch.Tensor]:
    """The items as the network gets them: RGB float (3, H, W) in [0, 1], through
    :func:`~imgfeat.preprocess.read_pixels` and the network's data config. An unreadable item
    is a :class:`SourceError` naming it."""
    prep, dc = preprocess_for(net_or_size)
    out = []
    for it in items:
        try:
            pixels = read_pixels(source, it, prep)
        except DecodeError as exc:
            raise SourceError(f"{it.path or it.id}: cannot read image ({exc})") from None
        out.append(normalize(pixels[None], dc["mean"], dc["std"])[0])
    return out


def network_batches(source: Source, items: list[Item], net: FlimNetwork, batch_size: int
                    ) -> Iterator[torch.Tensor]:
    """Batches (B, 3, H, W) of the items as ``net`` gets them (see :func:`read_images`)."""
    for start in range(0, len(items), batch_size):
        yield torch.stack(read_images(source, items[start: start + batch_size], net))


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
        h, w = natural_size(source, it)
        if (w, h) != (m.width, m.height):
            raise SourceError(f"{f}: markers drawn on a {m.width}x{m.height} image, the image {it.id} is "
                              f"{w}x{h}")
    return chosen, marks, base
