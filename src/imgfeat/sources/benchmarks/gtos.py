"""The Ground Terrain in Outdoor Scenes sets (Xue et al., CVPR 2017 and 2018): GTOS with its
5 official splits of whole capture sequences, GTOS-Mobile with its one train/test split."""

from __future__ import annotations

import os
from pathlib import Path

from ..folder import scan_images
from .base import BenchmarkSource, Item


class GTOS(BenchmarkSource):
    """``color_imgs/<sequence>/<image>.jpg`` and ``labels/train<k>.txt``, ``test<k>.txt``
    (k = 1…5), lines ``<class>/<sequence> <label>``: a split trains on every image of its
    train sequences and tests on those of its test sequences (``diff_imgs/`` is not used)."""

    name = "gtos"
    layout_help = ("gtos/color_imgs/<sequence>/<image>.jpg and gtos/labels/train1.txt … "
                   "test5.txt with lines '<class>/<sequence> <label>' (40 classes)")
    url = None

    def __init__(self, root: str | os.PathLike):
        root = Path(root)
        if (root / "gtos" / "labels").is_dir():
            root = root / "gtos"
        images, labels = root / "color_imgs", root / "labels"
        if not images.is_dir() or not labels.is_dir():
            raise self.missing(root, "no color_imgs/ and labels/ folders")
        classes: dict[str, str] = {}  # sequence -> class
        splits = []
        for k in range(1, 6):
            files = [labels / f"{part}{k}.txt" for part in ("train", "test")]
            if not all(f.is_file() for f in files):
                break
            split = {}
            for part, f in zip(("train", "test"), files, strict=True):
                sequences = []
                for line in f.read_text().splitlines():
                    fields = line.split()
                    if not fields:
                        continue
                    cls, _, seq = fields[0].strip("/").rpartition("/")
                    classes[seq] = cls.split("/")[0] if cls else fields[1] if len(fields) > 1 else seq
                    sequences.append(seq)
                split[part] = sequences
            splits.append(split)
        if not splits:
            raise self.missing(root, "no labels/train1.txt and test1.txt")
        by_sequence: dict[str, list[str]] = {}
        items = []
        for p in scan_images(images):
            rel = p.relative_to(images)
            if len(rel.parts) == 2 and rel.parts[0] in classes:
                items.append(Item(id=rel.as_posix(), path=str(p), label=classes[rel.parts[0]]))
                by_sequence.setdefault(rel.parts[0], []).append(rel.as_posix())
        if not items:
            raise self.missing(root, "no images of the listed sequences in color_imgs/")
        protocol = {"kind": "splits", "splits": [
            {part: [i for seq in sp[part] for i in by_sequence.get(seq, [])]
             for part in ("train", "test")} for sp in splits]}
        super().__init__(root, items, protocol)


class GTOSMobile(BenchmarkSource):
    """``train/<class>/<image>.jpg`` and ``test/<class>/<image>.jpg``: 31 classes, the one
    official split (images taken with a phone; train and test from different scenes)."""

    name = "gtos-mobile"
    layout_help = "gtos-mobile/train/<class>/<image>.jpg and gtos-mobile/test/<class>/<image>.jpg"
    url = None

    def __init__(self, root: str | os.PathLike):
        root = Path(root)
        for sub in ("gtos-mobile", "gtos_mobile", "GTOS-Mobile", "GTOS_Mobile"):
            if (root / sub / "train").is_dir():
                root = root / sub
                break
        if not (root / "train").is_dir() or not (root / "test").is_dir():
            raise self.missing(root, "no train/ and test/ folders")
        items = []
        split: dict[str, list[str]] = {"train": [], "test": []}
        for part in ("train", "test"):
            for p in scan_images(root / part):
                rel = p.relative_to(root)
                if len(rel.parts) == 3:
                    items.append(Item(id=rel.as_posix(), path=str(p), label=rel.parts[1],
                                      split=part))
                    split[part].append(rel.as_posix())
        if not split["train"] or not split["test"]:
            raise self.missing(root, "no <class>/ images in train/ and test/")
        super().__init__(root, items, {"kind": "splits", "splits": [split]})
