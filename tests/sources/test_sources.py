import numpy as np
import pytest
from PIL import Image

from imgfeat import ArraySource, CsvSource, FolderSource, SourceError, open_source


def test_folder_labels_ids_order(image_folder):
    src = FolderSource(image_folder)
    assert len(src) == 15
    ids = [it.id for it in src.items]
    assert ids == sorted(ids)
    assert "cats/nested/img4.bmp" in ids and "dogs/img1.JPG" in ids
    assert {it.label for it in src.items} == {"cats", "dogs", "owls"}
    assert all(it.id.startswith(it.label + "/") for it in src.items)


def test_folder_label_pattern_and_none(tmp_path):
    for name in ["12C01.png", "12C02.png", "7C01.png"]:
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    src = FolderSource(tmp_path, label_pattern=r"(\d+)C\d+")
    assert [it.label for it in src.items] == ["12", "12", "7"]
    assert [it.label for it in FolderSource(tmp_path).items] == [None] * 3


def test_folder_errors(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        FolderSource(tmp_path / "missing")
    with pytest.raises(SourceError, match="no images"):
        FolderSource(tmp_path)


def test_csv_headerless_header_and_bad_rows(tmp_path):
    for n in ["a.png", "b.png"]:
        Image.new("RGB", (8, 8)).save(tmp_path / n)
    (tmp_path / "plain.csv").write_text("x,a.png\ny,b.png\n")
    src = CsvSource(tmp_path / "plain.csv")
    assert [(it.id, it.label) for it in src.items] == [("a.png", "x"), ("b.png", "y")]
    (tmp_path / "head.csv").write_text("path,label,split\na.png,x,train\nb.png,y,test\n")
    src = CsvSource(tmp_path / "head.csv")
    assert [(it.label, it.split) for it in src.items] == [("x", "train"), ("y", "test")]
    (tmp_path / "bad.csv").write_text("x,a.png\ny,b.png,extra\nz,\n")
    items = CsvSource(tmp_path / "bad.csv").items
    assert items[0].error is None
    assert items[1].error == "line 2: expected 2 columns, found 3"
    assert items[2].error == "line 3: empty path"


def test_arrays_nhwc_and_flat():
    data = np.random.default_rng(0).integers(0, 256, (4, 10, 12, 3), dtype=np.uint8)
    src = ArraySource(data, labels=np.array([0, 1, 0, 1]))
    assert [it.label for it in src.items] == ["0", "1", "0", "1"]
    img = src.read(src.items[2])
    assert img.size == (12, 10) and np.array_equal(np.asarray(img), data[2])
    flat = data.reshape(4, -1)
    src2 = ArraySource(flat, height=10, width=12, channels=3)
    assert np.array_equal(np.asarray(src2.read(src2.items[1])), data[1])
    with pytest.raises(SourceError, match="need height and width"):
        ArraySource(flat)


def test_open_source_dispatch(tmp_path, image_folder):
    data = np.zeros((2, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "X.npy", data)
    np.save(tmp_path / "y.npy", np.array(["a", "b"]))
    assert open_source(image_folder).kind == "folder"
    src = open_source(tmp_path / "X.npy", data_labels=tmp_path / "y.npy")
    assert src.kind == "arrays" and src.labels == ["a", "b"]
    with pytest.raises(SourceError, match="not found"):
        open_source(tmp_path / "nope")
