"""An explicit list of image paths (what the scikit-learn transformer receives)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from .base import Item, Source


class PathsSource(Source):
    """Images given as a list of paths; ``id`` is the row number, the path is kept."""

    kind = "paths"

    def __init__(self, paths: Sequence[str | os.PathLike], labels: Sequence | None = None):
        width = len(str(max(len(paths) - 1, 0)))
        super().__init__([
            Item(id=str(i).zfill(width), path=os.fspath(p),
                 label=None if labels is None else str(labels[i]))
            for i, p in enumerate(paths)])
