"""Datasets distributed as one flat folder with the class in the file name, or one folder per
class, evaluated with 10 × stratified 10-fold CV: USPtex, LeavesTex1200, MBT, FMD, KTH-TIPS,
UIUC, Brodatz, CUReT."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..folder import scan_images
from .base import BenchmarkSource, Item, KFOLD_10x10


class PatternDataset(BenchmarkSource):
    """Images whose class is the first group of ``pattern`` on the file name (recursive)."""

    pattern = r"^(.+)$"

    def __init__(self, root: str | os.PathLike):
        root = Path(root)
        if not root.is_dir():
            raise self.missing(root, "folder not found")
        regex = re.compile(self.pattern)
        items = []
        for p in scan_images(root):
            m = regex.search(p.name)
            if m:
                items.append(Item(id=p.relative_to(root).as_posix(), path=str(p),
                                  label=m.group(1)))
        if not items:
            raise self.missing(root, "no images")
        super().__init__(root, items, KFOLD_10x10)


class ClassFolderDataset(BenchmarkSource):
    """One folder per class (images anywhere below it)."""

    def __init__(self, root: str | os.PathLike):
        root = Path(root)
        if not root.is_dir():
            raise self.missing(root, "folder not found")
        items = [Item(id=p.relative_to(root).as_posix(), path=str(p),
                      label=p.relative_to(root).parts[0])
                 for p in scan_images(root) if len(p.relative_to(root).parts) > 1]
        if not items:
            raise self.missing(root, "no class folders with images")
        super().__init__(root, items, KFOLD_10x10)


class USPtex(PatternDataset):
    name = "usptex"
    pattern = r"^(\d+)C\d+\."
    layout_help = "flat folder of <class>C<index>.png, e.g. 100C01.png (191 classes x 12)"


class LeavesTex1200(PatternDataset):
    name = "leavestex1200"
    pattern = r"^c?(\d+)_"
    layout_help = "flat folder of c<class>_<index>.png, e.g. c01_001.png (20 classes x 60)"


class MBT(PatternDataset):
    name = "mbt"
    pattern = r"^(\d+)_"
    layout_help = "flat folder of <class>_<index>.png (154 classes x 16 crops)"


class FMD(ClassFolderDataset):
    name = "fmd"
    layout_help = "image/<class>/<name>.jpg (10 classes x 100), masks/ ignored"
    url = "https://people.csail.mit.edu/celiu/CVPR2010/FMD/FMD.zip"

    def __init__(self, root: str | os.PathLike):
        root = Path(root)
        super().__init__(root / "image" if (root / "image").is_dir() else root)


class KTHTIPS(ClassFolderDataset):
    name = "kth-tips"
    layout_help = "<class>/<image>.png (10 classes x 81)"


class UIUC(ClassFolderDataset):
    name = "uiuc"
    layout_help = "<class>/<image>.jpg (25 classes x 40)"


class Brodatz(PatternDataset):
    name = "brodatz"
    pattern = r"^(D\d+)"
    layout_help = "flat folder of D<n>[_<crop>].<ext>, e.g. D1_01.png (class = D number)"


class CUReT(ClassFolderDataset):
    name = "curet"
    layout_help = "sample<NN>/<image>.png (61 classes)"
