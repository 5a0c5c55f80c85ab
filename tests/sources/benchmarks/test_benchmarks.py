"""Every texture benchmark loader on a small generated replica of its distributed layout."""

from pathlib import Path

import pytest
from PIL import Image

from imgfeat import SourceError
from imgfeat.sources.benchmarks import DATASETS, open_benchmark
from tests.conftest import USPTEX


def img(path: Path, ext=".png"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (len(path.name) * 9 % 255, 40, 90)).save(path.with_suffix(ext))


def test_flat_name_datasets(tmp_path):
    for c in (1, 2):
        for k in (1, 2, 3):
            img(tmp_path / "usp" / f"{c}C{k:02d}")
            img(tmp_path / "leaves" / f"c{c:02d}_{k:03d}")
            img(tmp_path / "mbt" / f"{c}_{k}")
            img(tmp_path / "brodatz" / f"D{c}_{k:02d}")
    (tmp_path / "usp" / "README.md").write_text("not an image")
    for name, folder, labels in [("usptex", "usp", {"1", "2"}), ("leavestex1200", "leaves",
                                 {"01", "02"}), ("mbt", "mbt", {"1", "2"}),
                                 ("brodatz", "brodatz", {"D1", "D2"})]:
        src = open_benchmark(name, tmp_path / folder)
        assert len(src) == 6 and set(src.labels) == labels, name
        assert src.protocol == {"kind": "kfold", "folds": 10, "repeats": 10}


def test_class_folder_datasets(tmp_path):
    for c in ("fabric", "glass"):
        for k in range(3):
            img(tmp_path / "fmd" / "image" / c / f"{c}_moderate_{k:03d}_new", ".jpg")
            img(tmp_path / "kth" / c / f"{k}-scale_{k}_im_{k}_col")
            img(tmp_path / "uiuc" / c / f"T01_{k:02d}", ".jpg")
            img(tmp_path / "curet" / f"sample{c}" / f"{k:02d}-{k:03d}")
    img(tmp_path / "fmd" / "mask" / "fabric" / "m0")  # masks are not images of the set
    assert set(open_benchmark("fmd", tmp_path / "fmd").labels) == {"fabric", "glass"}
    assert len(open_benchmark("fmd", tmp_path / "fmd")) == 6
    for name, folder in [("kth-tips", "kth"), ("uiuc", "uiuc"), ("curet", "curet")]:
        assert len(open_benchmark(name, tmp_path / folder)) == 6


def test_dtd_official_splits(tmp_path):
    root = tmp_path / "dtd-r1.0.1" / "dtd"
    names = []
    for c in ("banded", "woven"):
        for k in range(4):
            img(root / "images" / c / f"{c}_{k:04d}", ".jpg")
            names.append(f"{c}/{c}_{k:04d}.jpg")
    for s in range(1, 11):
        (root / "labels").mkdir(parents=True, exist_ok=True)
        (root / "labels" / f"train{s}.txt").write_text("\n".join(names[0::4] + names[1::4]))
        (root / "labels" / f"val{s}.txt").write_text("\n".join(names[2::4]))
        (root / "labels" / f"test{s}.txt").write_text("\n".join(names[3::4]))
    src = open_benchmark("dtd", tmp_path / "dtd-r1.0.1")
    assert len(src) == 8 and len(src.protocol["splits"]) == 10
    sp = src.protocol["splits"][0]
    assert len(sp["train"]) == 6 and len(sp["test"]) == 2 and not set(sp["train"]) & set(
        sp["test"])
    assert set(sp["train"]) | set(sp["test"]) == {it.id for it in src.items}


def test_outex_suite(tmp_path):
    suite = tmp_path / "Outex_TC_00013"
    for k in range(6):
        img(suite / "images" / f"{k:06d}", ".bmp")
    (suite / "classes.txt").write_text("2\ncanvas001 0\ncarpet002 1\n")
    (suite / "000").mkdir()
    (suite / "000" / "train.txt").write_text("3\n000000.bmp 0\n000001.bmp 1\n000002.bmp 0\n")
    (suite / "000" / "test.txt").write_text("3\n000003.bmp 1\n000004.bmp 0\n000005.bmp 1\n")
    src = open_benchmark("outex13", tmp_path)
    assert len(src) == 6 and set(src.labels) == {"canvas001", "carpet002"}
    assert [it.split for it in src.items] == ["train"] * 3 + ["test"] * 3
    assert src.protocol["splits"][0]["test"] == ["000003.bmp", "000004.bmp", "000005.bmp"]


def test_kth_tips2b_groups(tmp_path):
    for c in ("cork", "wool"):
        for s in "abcd":
            for k in range(2):
                img(tmp_path / "KTH-TIPS2-b" / c / f"sample_{s}" / f"{k}")
    src = open_benchmark("kth-tips2-b", tmp_path)
    assert len(src) == 16 and set(src.protocol["groups"].values()) == {
        "sample_a", "sample_b", "sample_c", "sample_d"}


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_missing_dataset_says_where_files_go(tmp_path, name):
    with pytest.raises(SourceError, match="Expected layout"):
        open_benchmark(name, tmp_path / "nowhere")


@pytest.mark.skipif(not USPTEX.is_dir(), reason="USPtex is not in ../shared/data/usptex")
def test_real_usptex():
    src = open_benchmark("usptex", USPTEX)
    assert len(src) == 2292 and len(set(src.labels)) == 191
    assert src.items[0].id == "100C01.png" and src.items[0].label == "100"


def test_download_fails_cleanly_offline(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    from imgfeat.sources.benchmarks import download

    def offline(*a, **k):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(SourceError, match="cannot download dtd from .*unpack it under"):
        open_benchmark("dtd", tmp_path / "dtd", download=True)
    assert not (tmp_path / "dtd").exists() and not list(tmp_path.glob(".download-*"))
    with pytest.raises(SourceError, match="no public download address"):
        open_benchmark("usptex", tmp_path / "u", download=True)
    assert download.TIMEOUT_S <= 30


def test_download_unpacks_an_archive(tmp_path, monkeypatch):
    import io
    import tarfile
    import urllib.request

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for c in ("cork", "wool"):
            for s in "ab":
                data = io.BytesIO()
                Image.new("RGB", (4, 4)).save(data, format="PNG")
                info = tarfile.TarInfo(f"{c}/sample_{s}/0.png")
                info.size = len(data.getvalue())
                t.addfile(info, io.BytesIO(data.getvalue()))
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: io.BytesIO(buf.getvalue()))
    src = open_benchmark("kth-tips2-b", tmp_path / "kth", download=True)
    assert len(src) == 4 and set(src.labels) == {"cork", "wool"}
