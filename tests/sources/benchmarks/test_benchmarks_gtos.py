"""GTOS and GTOS-Mobile on small generated replicas of their distributed layouts."""

from __future__ import annotations

import numpy as np
import pytest

from imgfeat import SourceError
from imgfeat.sources.benchmarks import DEFAULT_PROTOCOL, open_benchmark
from tests.sources.benchmarks.test_benchmarks import img


def _gtos(root):
    """3 classes × 2 capture sequences × 3 images; split k tests on sequence k % 2 of each
    class; labels as the release writes them, plus a sequence folder no split lists."""
    seqs = {}
    for c, cls in enumerate(("asphalt", "grass", "sand")):
        for s in range(2):
            seq = f"{c}{s}-sub-{cls}"
            seqs[seq] = (cls, c + 1, s)
            for k in range(3):
                img(root / "color_imgs" / seq / f"{seq}_{k:03d}", ".jpg")
                img(root / "diff_imgs" / seq / f"{seq}_{k:03d}", ".jpg")
    img(root / "color_imgs" / "unlisted" / "x", ".jpg")
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "classInd.txt").write_text("1 asphalt\n2 grass\n3 sand\n")
    for k in range(1, 6):
        for part, keep in (("train", 1 - k % 2), ("test", k % 2)):
            (root / "labels" / f"{part}{k}.txt").write_text("".join(
                f"{cls}/{seq} {label}\n" for seq, (cls, label, s) in seqs.items() if s == keep))
    return seqs


def test_gtos_official_splits_by_sequence(tmp_path):
    seqs = _gtos(tmp_path / "gtos")
    src = open_benchmark("gtos", tmp_path)  # the folder above gtos/ is found too
    assert len(src) == 18 and set(src.labels) == {"asphalt", "grass", "sand"}
    assert all(it.id.split("/")[0] in seqs for it in src.items)  # no diff_imgs, no unlisted
    assert len(src.protocol["splits"]) == 5 and DEFAULT_PROTOCOL["gtos"] == "official"
    ids = {it.id for it in src.items}
    for k, sp in enumerate(src.protocol["splits"], start=1):
        assert len(sp["train"]) == len(sp["test"]) == 9
        assert set(sp["train"]) | set(sp["test"]) == ids and not set(sp["train"]) & set(sp["test"])
        tested = {i.split("/")[0] for i in sp["test"]}
        assert tested == {q for q, (_, _, s) in seqs.items() if s == k % 2}


def test_gtos_mobile_one_split(tmp_path):
    root = tmp_path / "gtos-mobile"
    for part, n in (("train", 3), ("test", 2)):
        for cls in ("brick", "moss"):
            for k in range(n):
                img(root / part / cls / f"{cls}_{part}_{k}", ".jpg")
    src = open_benchmark("gtos-mobile", tmp_path)
    assert len(src) == 10 and set(src.labels) == {"brick", "moss"}
    (sp,) = src.protocol["splits"]
    assert len(sp["train"]) == 6 and len(sp["test"]) == 4
    assert [it.split for it in src.items].count("test") == 4


def test_gtos_classify_uses_the_splits(tmp_path):
    """Features of a GTOS replica, classified under its official protocol: 5 folds whose
    train and test images are the split's."""
    import imgfeat

    _gtos(tmp_path / "gtos")
    src = open_benchmark("gtos", tmp_path / "gtos")
    res = imgfeat.extract(src, tmp_path / "f", model="test_efficientnet", pretrained=False,
                          img_size=32, format="npy", progress=False)
    report = imgfeat.classify(res.output, classifiers=["knn"], protocol="official")
    folds = report.results[0].folds
    assert len(folds) == 5 and all(f["n_train"] == f["n_test"] == 9 for f in folds)
    assert np.isfinite(report.results[0].summary()["accuracy"])


@pytest.mark.parametrize("name", ["gtos", "gtos-mobile"])
def test_missing_layout_says_where_files_go(tmp_path, name):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="Expected layout"):
        open_benchmark(name, tmp_path / "empty")
