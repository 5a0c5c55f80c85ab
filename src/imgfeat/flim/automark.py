"""Marker files for users who drew none: from class labels of a classification set, or from
label masks of a segmentation set."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from ..decode import open_image
from ..errors import SourceError
from ..sources import Item
from .markers import MarkerError, marker_path, markers_from_image_label, markers_from_mask, write_markers
from .sidecar import write_sidecar

__all__ = ["markers_from_labels", "markers_from_masks"]


def markers_from_labels(
    items: list[Item],
    output: str | os.PathLike,
    *,
    images_per_class: int = 2,
    strokes: int = 3,
    length: int | None = None,
    thickness: int = 3,
    label_base: int = 1,
    seed: int = 0,
) -> list[Path]:
    """Write marker files for ``images_per_class`` images of every class (chosen with ``seed``):
    ``strokes`` short strokes each, labelled with the class index (classes sorted by name, so
    labels are 0-based in memory and written from ``label_base``; a ``flim-markers.json``
    sidecar in ``output`` says that base). Returns the files written."""
    by_class: dict[str, list[Item]] = defaultdict(list)
    for it in items:
        if it.label is None:
            raise SourceError(f"{it.id}: no class label, so no markers can be made from labels")
        by_class[it.label].append(it)
    if not by_class:
        raise SourceError("no labelled images to make markers for")
    classes = sorted(by_class, key=_class_key)
    rng = np.random.default_rng(seed)
    out = Path(output)
    written: list[Path] = []
    seen: set[str] = set()
    for index, cls in enumerate(classes):
        members = by_class[cls]
        chosen = rng.choice(len(members), size=min(images_per_class, len(members)), replace=False)
        for k in sorted(chosen.tolist()):
            it = members[k]
            target = marker_path(it.path or it.id, out)
            if target.name in seen:
                raise MarkerError(f"two chosen images share the marker file name {target.name}")
            seen.add(target.name)
            with open_image(it.path) as img:
                w, h = img.size
            m = markers_from_image_label(w, h, index, strokes=strokes, length=length, thickness=thickness,
                                         seed=rng)
            written.append(write_markers(target, m, label_base=label_base))
    write_sidecar(out, label_base)
    return written


def markers_from_masks(
    items: list[Item],
    masks: str | os.PathLike,
    output: str | os.PathLike,
    *,
    ignore: list[int] | None = None,
    strokes_per_region: int = 1,
    length: int = 15,
    thickness: int = 3,
    label_base: int = 1,
    seed: int = 0,
) -> list[Path]:
    """Write marker files from label masks: ``masks/<image stem>.png`` holds one value per class
    (0-based); every region gets short strokes inside it. Images without a mask are skipped."""
    masks = Path(masks)
    if not masks.is_dir():
        raise SourceError(f"mask folder not found: {masks}")
    rng = np.random.default_rng(seed)
    written = []
    for it in items:
        stem = Path(it.path or it.id).stem
        mask_file = masks / f"{stem}.png"
        if not mask_file.is_file():
            continue
        with Image.open(mask_file) as mimg:
            mask = np.asarray(mimg)
        if mask.ndim == 3:
            raise MarkerError(f"{mask_file}: a label mask must have one channel (mode L, I or P)")
        m = markers_from_mask(mask.astype(np.int64), ignore=ignore, strokes_per_region=strokes_per_region,
                              length=length, thickness=thickness, seed=rng)
        if len(m):
            written.append(write_markers(marker_path(it.path or it.id, output), m, label_base=label_base))
    if not written:
        raise SourceError(f"{masks}: no <image stem>.png masks with labelled regions for these images")
    write_sidecar(output, label_base)
    return written


def _class_key(name: str) -> tuple[int, int | str]:
    return (0, int(name)) if name.isdigit() else (1, name)
