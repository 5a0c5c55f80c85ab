"""A folder of images: labels from sub-folders, from a pattern on the file name, or none."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..decode import is_image_file
from ..errors import SourceError
from ..storage import filesystem, is_url, join, with_retries
from .base import Item, Source

LABEL_MODES = ("auto", "subfolder", "pattern", "none")
#: top-level folder names read as a split, not a label (``train/<class>/…``), and the split
#: each names
SPLIT_FOLDERS = {"train": "train", "training": "train", "val": "val", "valid": "val",
                 "validation": "val", "trainval": "trainval", "test": "test", "testing": "test"}


def scan_images(root: Path) -> list[Path]:
    """All image files under ``root`` (recursive, case-insensitive extensions), sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend(Path(dirpath, f) for f in filenames
                     if not f.startswith(".") and is_image_file(f))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def scan_remote(url: str, storage_options: dict | None = None) -> list[str]:
    """Keys of image objects under the prefix ``url``, relative to it, sorted."""
    fs, root = filesystem(url, storage_options)
    root = root.rstrip("/")
    try:
        keys = with_retries(lambda: fs.find(root, detail=False), f"listing {url}")
    except FileNotFoundError:
        return []
    rels = (k[len(root) + 1:] for k in keys if k.startswith(root + "/"))
    return sorted(r for r in rels if is_image_file(r)
                  and not any(part.startswith(".") for part in r.split("/")))


class FolderSource(Source):
    """Images under a folder. ``id`` is the POSIX path relative to the folder.

    ``labels``: ``auto`` (sub-folder names when every image is in one, else none), ``subfolder``
    (the first folder under the root), ``pattern`` (the first group, or the whole match, of
    ``label_pattern`` searched in the file name), or ``none``. When every top-level folder is a
    split (``train``, ``val``, ``test``, …), that folder is the item's split and the folder
    below it its label, so ``train/cats/1.png`` is a cat in the training split.
    """

    kind = "folder"

    def __init__(self, root: str | os.PathLike, labels: str = "auto",
                 label_pattern: str | None = None, storage_options: dict | None = None):
        self.storage_options = dict(storage_options or {})
        self.url = str(root).rstrip("/") if is_url(root) else None
        self.root = Path(root) if self.url is None else self.url
        if self.url is None and not self.root.exists():
            raise SourceError(f"folder not found: {self.root}")
        if self.url is None and not self.root.is_dir():
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
            raise SourceError(f"bad label pattern '{label_pattern}': {exc}") from None
        if self.url is None:
            rels = [p.relative_to(self.root).as_posix() for p in scan_images(self.root)]
        else:
            rels = scan_remote(self.url, self.storage_options)
        if not rels:
            raise SourceError(f"no images found under {self.root}")
        self.split_folders = all("/" in r and r.split("/", 1)[0].lower() in SPLIT_FOLDERS
                                 for r in rels)
        within = [r.split("/", 1)[1] if self.split_folders else r for r in rels]
        if labels == "auto":
            labels = "subfolder" if all("/" in r for r in within) else "none"
        items = []
        for rel, inner in zip(rels, within, strict=True):
            label: str | None = None
            error = None
            split = SPLIT_FOLDERS[rel.split("/", 1)[0].lower()] if self.split_folders else None
            if labels == "subfolder":
                label = inner.split("/", 1)[0] if "/" in inner else None
            elif regex is not None:
                m = regex.search(rel.rsplit("/", 1)[-1])
                if m:
                    label = m.group(1) if m.groups() else m.group(0)
                else:
                    error = f"file name does not match label pattern '{label_pattern}'"
            items.append(Item(id=rel, path=join(self.root, rel), label=label, split=split,
                              error=error))
        if regex is not None and all(it.error for it in items):
            raise SourceError(f"no file name under {self.root} matches the label pattern "
                              f"'{label_pattern}'")
        self.resolved_labels = labels
        super().__init__(items)

    def describe(self) -> dict:
        root = self.url or str(self.root.resolve())
        return {"kind": self.kind, "root": root, "labels": self.resolved_labels,
                "label_pattern": self.label_pattern, "count": len(self.items),
                **({"splits": "folders"} if self.split_folders else {})}
