"""The LIDS/FLIM dataset layout: a flat folder of ``<class>_<id>.<ext>`` images (class ids from
1) and optional split files, text files listing one image file name per line.

``LidsSource("data/")`` takes every image; ``LidsSource("data/", split="splits/train.txt")``
only the listed ones (in the listed order). Labels are the class ids as written (``"1"``,
``"2"``, …). ``open_source("lids:data/")`` and ``open_source("lids:data/,splits/train.txt")``
open it from any command.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..decode import is_image_file
from ..errors import SourceError
from .base import Item, Source

__all__ = ["LIDS_PREFIX", "LidsSource", "parse_lids_spec", "read_split"]

LIDS_PREFIX = "lids:"
_NAME = re.compile(r"^(\d+)_(.+)$")


def read_split(path: str | os.PathLike) -> list[str]:
    """The file names a split file lists (blank lines and ``#`` comments skipped)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise SourceError(f"{path}: cannot read split file ({exc.strerror or exc})") from None
    names = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    if not names:
        raise SourceError(f"{path}: split file lists no images")
    return names


def parse_lids_spec(spec: str) -> tuple[str, str | None]:
    """``lids:ROOT`` or ``lids:ROOT,SPLIT`` -> (root, split or None)."""
    rest = spec[len(LIDS_PREFIX):] if spec.startswith(LIDS_PREFIX) else spec
    root, _, split = rest.partition(",")
    if not root:
        raise SourceError(f"{spec!r}: give a folder after 'lids:'")
    return root, split or None


class LidsSource(Source):
    """Images named ``<class>_<id>.<ext>`` in one folder, optionally restricted by a split file."""

    kind = "lids"

    def __init__(self, root: str | os.PathLike, split: str | os.PathLike | None = None):
        self.root = Path(root)
        self.split = Path(split) if split is not None else None
        if not self.root.is_dir():
            raise SourceError(f"LIDS dataset folder not found: {self.root}")
        if self.split is not None:
            names = read_split(self.split)
        else:
            names = sorted(p.name for p in self.root.iterdir() if p.is_file() and is_image_file(p.name))
            if not names:
                raise SourceError(f"{self.root}: no images")
        items = []
        for name in names:
            m = _NAME.match(Path(name).name)
            if not m:
                where = f"{self.split}: " if self.split else f"{self.root}: "
                raise SourceError(f"{where}{name!r} is not named <class>_<id>.<ext> (class ids from 1)")
            path = self.root / name
            if self.split is not None and not path.is_file():
                raise SourceError(f"{self.split}: {name} is not in {self.root}")
            items.append(Item(id=name, path=str(path), label=str(int(m.group(1)))))
        super().__init__(items)

    def describe(self) -> dict:
        return {"kind": self.kind, "root": str(self.root.resolve()),
                "split": str(self.split.resolve()) if self.split else None, "count": len(self.items)}
