"""A folder of images: labels from sub-folders, from a pattern on the file name, or none."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..decode import is_image_file
from ..errors import SourceError
from .base import Item, Source

LABEL_MODES = ("auto", "subfolder", "pattern", "none")


def scan_images(root: Path) -> list[Path]:
    """All image files under ``root`` (recursive, case-insensitive extensions), sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend(Path(dirpath, f) for f in filenames
                     if not f.startswith(".") and is_image_file(f))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


class FolderSource(Source):
    """Images under a folder. ``id`` is the POSIX path relative to the folder.

    ``labels``: ``auto`` (sub-folder names when every image is in one, else none), ``subfolder``
    (the first folder under the root), ``pattern`` (the first group, or the whole match, of
    ``label_pattern`` searched in the file name), or ``none``.
    """

    kind = "folder"

    def __init__(self, root: str | os.PathLike, labels: str = "auto",
                 label_pattern: str | None = None):
        self.root = Path(root)
        if not self.root.exists():
            raise SourceError(f"folder not found: {self.root}")
        if not self.root.is_dir():
            raise SourceError(f"not a folder: {self.root}")
        if label_pattern is not None:
            labels = "pattern"
        if labels not in LABEL_MODES:
            raise SourceError(f"labels must be one of {', '.join(LABEL_MODES)}")
        if labels == "pattern" and not label_pattern:
            raise SourceError("labels='pattern' needs a label_pattern")
        self.label_mode = labels
        self.label_pattern = label_pattern
        try:
            regex = re.compile(label_pattern) if label_pattern else None
        except re.error as exc:
            raise SourceError(f"bad label pattern {label_pattern!r}: {exc}") from None
        paths = scan_images(self.root)
        if not paths:
            raise SourceError(f"no images found under {self.root}")
        rels = [p.relative_to(self.root).as_posix() for p in paths]
        if labels == "auto":
            labels = "subfolder" if all("/" in r for r in rels) else "none"
        items = []
        for path, rel in zip(paths, rels, strict=True):
            label: str | None = None
            error = None
            if labels == "subfolder":
                label = rel.split("/", 1)[0] if "/" in rel else None
            elif regex is not None:
                m = regex.search(path.name)
                if m:
                    label = m.group(1) if m.groups() else m.group(0)
                else:
                    error = f"file name does not match label pattern {label_pattern!r}"
            items.append(Item(id=rel, path=str(path), label=label, error=error))
        if regex is not None and all(it.error for it in items):
            raise SourceError(f"no file name under {self.root} matches the label pattern "
                              f"{label_pattern!r}")
        self.resolved_labels = labels
        super().__init__(items)

    def describe(self) -> dict:
        return {"kind": self.kind, "root": str(self.root.resolve()), "labels": self.resolved_labels,
                "label_pattern": self.label_pattern, "count": len(self.items)}
