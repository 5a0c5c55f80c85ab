"""``sample()``: a stratified toy subset of any source, written as a folder of images."""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path

from .errors import ImgfeatWarning, SourceError
from .usage import arg

#: written into every sample folder; ``overwrite`` replaces only folders that carry it
MARKER = ".imgfeat-sample.json"


def allocate(counts: dict[str, int], n: int) -> dict[str, int]:
    """Images per label: proportional to ``counts``, at least one each, summing to ``n``
    (largest remainders) unless ``n`` is below the number of labels or above the total."""
    total = sum(counts.values())
    n = min(max(n, len(counts)), total)
    quota = {k: n * c / total for k, c in counts.items()}
    take = {k: min(counts[k], max(1, int(q))) for k, q in quota.items()}
    by_remainder = sorted(counts, key=lambda k: (-(quota[k] - int(quota[k])), k))
    while sum(take.values()) < n:
        for k in by_remainder:
            if sum(take.values()) < n and take[k] < counts[k]:
                take[k] += 1
    while sum(take.values()) > n:  # the "at least one" floors overshot: trim the largest
        k = max((k for k in take if take[k] > 1), key=lambda k: (take[k] - quota[k], k))
        take[k] -= 1
    return take


def sample(source, n: int, output: str | os.PathLike, *, seed: int = 0,
           overwrite: bool = False, **source_args) -> Path:
    """Copy ``n`` images, stratified by label (at least one per class), to ``output/<label>/``.

    Works for folders, CSV lists and arrays (array rows are written as PNG); ``source_args``
    are :func:`imgfeat.open_source`'s (``label_pattern``, ``data_labels``, ``height``,
    ``width``, ``channels``, ``labels``). The result is itself a folder source with sub-folder
    labels; files keep their own names. When ``n`` cannot be honoured exactly (fewer than one
    per class, or more than there are) an :class:`~imgfeat.ImgfeatWarning` says what was done.
    ``overwrite`` replaces a folder an earlier ``sample`` wrote, never any other folder.
    """
    import numpy as np

    from .sources import open_source

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SourceError(f"{arg('n', n)}: must be a whole number, at least 1")
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise SourceError(f"output path is a file, not a folder: {out}")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise SourceError(f"{out} is not empty: choose a new folder, or use "
                              f"{arg('overwrite', True)} to replace an earlier sample")
        if not (out / MARKER).is_file():
            raise SourceError(f"{out} was not written by imgfeat sample, so it is not replaced; "
                              f"choose a new folder")
    src = open_source(source, **source_args)
    items = [it for it in src.items if not it.error]
    if not items:
        raise SourceError("the source has no readable items to sample")
    groups: dict[str, list] = {}
    for it in items:
        groups.setdefault(it.label or "unlabelled", []).append(it)
    take = allocate({k: len(v) for k, v in groups.items()}, n)
    written = sum(take.values())
    if written != n:
        why = (f"at least one image for each of the {len(groups)} classes" if n < len(groups)
               else f"the source has {len(items)} readable images")
        warnings.warn(f"{arg('n', n)} adjusted to {written}: {why}", ImgfeatWarning,
                      stacklevel=2)
    rng = np.random.default_rng(seed)
    tmp = out.with_name(f".tmp-{out.name}.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for label in sorted(groups):
            members = groups[label]
            picks = sorted(rng.choice(len(members), size=take[label], replace=False).tolist())
            folder = tmp / _safe(label)
            folder.mkdir(parents=True, exist_ok=True)
            for i in picks:
                it = members[i]
                if it.path:
                    target = _unique(folder, _safe(Path(it.path).name))
                    shutil.copy2(it.path, target)
                else:
                    src.read(it).save(_unique(folder, f"{_safe(it.id)}.png"))
        (tmp / MARKER).write_text(json.dumps({"source": src.describe(), "n": written,
                                              "seed": seed}, default=str) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _unique(folder: Path, name: str) -> Path:
    """``folder/name``, or ``stem-2.ext``, ``stem-3.ext``… when two images share a name."""
    path, k = folder / name, 2
    while path.exists():
        path = folder / f"{Path(name).stem}-{k}{Path(name).suffix}"
        k += 1
    return path


def _safe(name: str) -> str:
    return re.sub(r"[^\w.\- ]", "_", name).lstrip(".") or "_"
