"""Datasets with official splits or folds: DTD, Outex_TC_00013/00014, KTH-TIPS2-b."""

from __future__ import annotations

import os
from pathlib import Path

from ..folder import scan_images
from .base import BenchmarkSource, Item


class DTD(BenchmarkSource):
    """The DTD archive: ``images/<class>/<name>.jpg`` and ``labels/{train,val,test}<k>.txt``.
    Protocol: 10 official splits, train+val vs test."""

    name = "dtd"
    layout_help = "dtd/images/<class>/<name>.jpg and dtd/labels/train1.txt … test10.txt"
    url = "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz"

    def __init__(self, root: str | os.PathLike):
        root = Path(root)
        if (root / "dtd" / "images").is_dir():
            root = root / "dtd"
        images, labels = root / "images", root / "labels"
        if not images.is_dir() or not labels.is_dir():
            raise self.missing(root, "no images/ and labels/ folders")
        items = [Item(id=p.relative_to(images).as_posix(), path=str(p),
                      label=p.relative_to(images).parts[0])
                 for p in scan_images(images)]
        splits = []
        for k in range(1, 11):
            files = [labels / f"{part}{k}.txt" for part in ("train", "val", "test")]
            if not all(f.is_file() for f in files):
                break
            read = [[ln.strip() for ln in f.read_text().splitlines() if ln.strip()] for f in files]
            splits.append({"train": read[0] + read[1], "test": read[2]})
        if not splits:
            raise self.missing(root, "no labels/train1.txt, val1.txt, test1.txt")
        super().__init__(root, items, {"kind": "splits", "splits": splits})


class Outex(BenchmarkSource):
    """An Outex test suite folder: ``images/`` (or ``../images``), ``classes.txt`` and
    ``000/train.txt``, ``000/test.txt`` (lines ``<image> <class index>`` after a count line)."""

    name = "outex"
    suite = ""
    layout_help = ("Outex_TC_000XX/images/<nnnnnn>.bmp, classes.txt, 000/train.txt, "
                   "000/test.txt")
    url = None

    def __init__(self, root: str | os.PathLike):
        root = Path(root)
        if self.suite and (root / self.suite).is_dir():
            root = root / self.suite
        problem = root / "000"
        images = root / "images" if (root / "images").is_dir() else root.parent / "images"
        if not (problem / "train.txt").is_file() or not (problem / "test.txt").is_file():
            raise self.missing(root, "no 000/train.txt and 000/test.txt")
        if not images.is_dir():
            raise self.missing(root, "no images/ folder")
        names = _outex_classes(root / "classes.txt")
        listed: dict[str, str] = {}
        split = {"train": [], "test": []}
        for part in ("train", "test"):
            for line in (problem / f"{part}.txt").read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) >= 2:
                    cls = names.get(fields[1], fields[1])
                    listed[fields[0]] = cls
                    split[part].append(fields[0])
        items = [Item(id=name, path=str(images / name), label=listed[name],
                      split="train" if name in set(split["train"]) else "test")
                 for name in sorted(listed)]
        super().__init__(root, items, {"kind": "splits", "splits": [split]})


def _outex_classes(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 2:
            out[fields[1]] = fields[0]
    return out


class Outex13(Outex):
    name = "outex13"
    suite = "Outex_TC_00013"


class Outex14(Outex):
    name = "outex14"
    suite = "Outex_TC_00014"


class KTHTIPS2b(BenchmarkSource):
    """``<class>/sample_<x>/<image>``: 11 classes × 4 samples; 4 folds, train on 3 samples,
    test on the 4th."""

    name = "kth-tips2-b"
    layout_help = "<class>/sample_a … sample_d/<image>.png (11 classes)"
    url = "https://www.csc.kth.se/cvap/databases/kth-tips/kth-tips2-b_col_200x200.tar"

    def __init__(self, root: str | os.PathLike):
        root = Path(root)
        if (root / "KTH-TIPS2-b").is_dir():
            root = root / "KTH-TIPS2-b"
        if not root.is_dir():
            raise self.missing(root, "folder not found")
        items, groups = [], {}
        for p in scan_images(root):
            parts = p.relative_to(root).parts
            if len(parts) >= 3 and parts[1].lower().startswith("sample"):
                rid = p.relative_to(root).as_posix()
                items.append(Item(id=rid, path=str(p), label=parts[0], split=parts[1]))
                groups[rid] = parts[1].lower()
        if not items:
            raise self.missing(root, "no <class>/sample_<x>/ images")
        super().__init__(root, items, {"kind": "groups", "groups": groups})
