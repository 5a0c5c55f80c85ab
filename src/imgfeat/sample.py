"""``sample()``: a stratified toy subset of any source, written as a folder of images."""

from __future__ import annotations

import os
import re
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np

from .errors import SourceError
from .sources import open_source


def sample(source, n: int, output: str | os.PathLike, *, seed: int = 0, **source_args) -> Path:
    """Copy ``n`` images, stratified by label (at least one per class), to ``output/<label>/``.

    Works for folders, CSV lists and arrays (array rows are written as PNG). The result is itself
    a folder source with sub-folder labels.
    """
    src = open_source(source, **source_args)
    out = Path(output)
    if out.exists() and any(out.iterdir()):
        raise SourceError(f"{out} is not empty")
    if n < 1:
        raise SourceError("n must be at least 1")
    items = [it for it in src.items if not it.error]
    groups: dict[str, list] = defaultdict(list)
    for it in items:
        groups[it.label or "unlabelled"].append(it)
    rng = np.random.default_rng(seed)
    total = len(items)
    chosen = []
    for label in sorted(groups):
        members = groups[label]
        k = min(len(members), max(1, round(n * len(members) / total)))
        picks = rng.choice(len(members), size=k, replace=False)
        chosen.extend(members[i] for i in sorted(picks))
    out.mkdir(parents=True, exist_ok=True)
    for it in chosen:
        folder = out / _safe(it.label or "unlabelled")
        folder.mkdir(exist_ok=True)
        stem = _safe(it.id.replace("/", "__"))
        if it.path:
            shutil.copy2(it.path, folder / (Path(stem).stem + Path(it.path).suffix.lower()))
        else:
            src.read(it).save(folder / f"{stem}.png")
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^\w.\- ]", "_", name) or "_"
