"""The marker folder's sidecar, ``flim-markers.json``: says the label base of the marker files
beside it, so readers need not guess (a set with no label 0 is otherwise ambiguous).

``imgfeat flim markers`` and ``imgfeat flim annotate`` write it;
:func:`~imgfeat.flim.markers.read_marker_set` reads it when no label base is given.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from ..store.atomic import atomic_path

__all__ = ["SIDECAR_NAME", "read_sidecar_base", "sidecar_base_for", "sidecar_bytes", "write_sidecar"]

SIDECAR_NAME = "flim-markers.json"


def write_sidecar(folder: str | os.PathLike, label_base: int, written_by: str = "imgfeat flim markers"
                  ) -> Path:
    """Write ``folder/flim-markers.json`` (atomically) saying the files' label base."""
    data = sidecar_bytes(label_base, written_by)
    path = Path(folder) / SIDECAR_NAME
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def sidecar_bytes(label_base: int, written_by: str) -> bytes:
    """The sidecar's content (for writers with their own safe write, as the annotate server)."""
    from .markers import LABEL_BASES, MarkerError

    if label_base not in LABEL_BASES or isinstance(label_base, bool):
        raise MarkerError(f"label base must be 0 or 1, not {label_base!r}")
    return (json.dumps({"label_base": label_base, "written_by": written_by}) + "\n").encode()


def read_sidecar_base(folder: str | os.PathLike) -> int | None:
    """The label base a folder's sidecar says, or None when it has none."""
    from .markers import LABEL_BASES, MarkerError

    path = Path(folder) / SIDECAR_NAME
    if not path.is_file():
        return None
    try:
        base = json.loads(path.read_text()).get("label_base")
    except (OSError, ValueError, AttributeError):
        raise MarkerError(f"{path}: not a marker sidecar (expected JSON with a label_base)") from None
    if base not in LABEL_BASES or isinstance(base, bool):
        raise MarkerError(f"{path}: label_base must be 0 or 1, not {base!r}")
    return base


def sidecar_base_for(paths: Iterable[str | os.PathLike]) -> int | None:
    """The one label base the sidecars of these marker files' folders say; None when any folder
    has no sidecar. Folders that disagree are an error."""
    from .markers import MarkerError

    bases = {}
    for folder in {Path(p).parent for p in paths}:
        base = read_sidecar_base(folder)
        if base is None:
            return None
        bases[folder] = base
    if len(set(bases.values())) > 1:
        raise MarkerError("marker folders' sidecars disagree on the label base: "
                          + ", ".join(f"{f} says {b}" for f, b in sorted(bases.items())))
    return next(iter(bases.values()), None)
