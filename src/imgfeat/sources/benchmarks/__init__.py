"""Texture benchmarks in their distributed layouts, each with the protocol of the literature."""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import SourceError
from .base import BenchmarkSource
from .download import download_dataset
from .flat import FMD, KTHTIPS, MBT, UIUC, Brodatz, CUReT, LeavesTex1200, USPtex
from .gtos import GTOS, GTOSMobile
from .splits import DTD, KTHTIPS2b, Outex13, Outex14

DATASETS: dict[str, type[BenchmarkSource]] = {
    cls.name: cls for cls in (USPtex, LeavesTex1200, MBT, FMD, KTHTIPS, UIUC, Brodatz, CUReT,
                              DTD, Outex13, Outex14, KTHTIPS2b, GTOS, GTOSMobile)
}
#: the protocol ``imgfeat classify`` and ``imgfeat bench`` use for each dataset
DEFAULT_PROTOCOL = {name: "kfold" for name in DATASETS} | {
    "dtd": "official", "outex13": "official", "outex14": "official", "kth-tips2-b": "groups",
    "gtos": "official", "gtos-mobile": "official"}


def open_benchmark(name: str, root: str | os.PathLike, download: bool = False) -> BenchmarkSource:
    """Open a texture benchmark by name from its folder; a clear error says where files go.
    With ``download``, a missing dataset that has a public address is fetched first."""
    key = name.lower()
    if key not in DATASETS:
        raise SourceError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    cls = DATASETS[key]
    if download and not Path(root).exists():
        download_dataset(cls, root)
    return cls(root)


__all__ = ["DATASETS", "DEFAULT_PROTOCOL", "BenchmarkSource", "open_benchmark"]
