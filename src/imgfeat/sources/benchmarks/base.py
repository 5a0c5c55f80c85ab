"""What every texture benchmark has: its items, labels, and the protocol of the literature."""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import SourceError
from ..base import Item, Source


class BenchmarkSource(Source):
    """A dataset in its distributed layout, with its protocol in ``protocol``.

    ``protocol`` is one of ``{"kind": "kfold", "folds": 10, "repeats": 10}``,
    ``{"kind": "splits", "splits": [{"train": ids, "test": ids}, …]}`` or
    ``{"kind": "groups", "groups": {id: group}}``; it is recorded with the features, so
    ``imgfeat classify --protocol official|groups`` finds it again.
    """

    kind = "benchmark"
    name = "benchmark"
    #: where the dataset comes from and what the layout looks like (used in error messages)
    layout_help = ""
    url: str | None = None

    def __init__(self, root: str | os.PathLike, items: list[Item], protocol: dict):
        self.root = Path(root)
        self.protocol = protocol
        super().__init__(items)

    @classmethod
    def missing(cls, root: Path, what: str) -> SourceError:
        where = f" Download: {cls.url}." if cls.url else ""
        return SourceError(f"{cls.name}: {what} under {root}. Expected layout: "
                           f"{cls.layout_help}.{where}")

    def describe(self) -> dict:
        return {"kind": self.kind, "dataset": self.name, "root": str(self.root.resolve()),
                "count": len(self.items), "protocol": self.protocol}


KFOLD_10x10 = {"kind": "kfold", "folds": 10, "repeats": 10}
