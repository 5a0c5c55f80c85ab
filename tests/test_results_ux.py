"""Honest, readable results: the Parquet data folder is a dataset every reader opens (failed
images listed beside it, not inside), split folders are splits, labels sort and come back as
they were given, results record what they evaluated, resume and sample say what they did."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

import imgfeat
from imgfeat.cli import main
from tests.conftest import TINY, random_class_folder


@pytest.fixture(scope="module")
def with_failure(tmp_path_factory):
    """A finished Parquet output in 3 shards: 9 good images and one that failed."""
    root = tmp_path_factory.mktemp("failed")
    folder = random_class_folder(root / "imgs", 9, 3, 32, seed=0)
    (folder / "c0" / "bad.png").write_bytes(b"not a png")
    result = imgfeat.extract(folder, root / "feats", shard_size=4, progress=False, **TINY)
    assert (result.ok, result.failed) == (9, 1)
    return root / "feats"


def check_rows(ids, vectors_present) -> None:
    assert len(ids) == 9 and "c0/bad.png" not in list(ids) and all(vectors_present)


def test_the_folder_is_a_parquet_dataset_for_four_readers(with_failure):
    pd = pytest.importorskip("pandas")
    pl = pytest.importorskip("polars")
    duckdb = pytest.importorskip("duckdb")
    import pyarrow.parquet as pq

    data = str(with_failure / "data")
    for folder in (data, str(with_failure)):  # pyarrow skips the _-files beside data/
        df = pd.read_parquet(folder)
        check_rows(df["id"], df["vector"].notna().tolist())
        table = pq.read_table(folder)
        check_rows(table["id"].to_pylist(), [v is not None for v in table["vector"].to_pylist()])
    rows = duckdb.sql(f"SELECT id, vector IS NOT NULL FROM read_parquet('{data}/*.parquet')"
                      ).fetchall()
    check_rows(*zip(*rows, strict=True))
    frame = pl.read_parquet(data)  # data/ holds Parquet files alone
    check_rows(frame["id"].to_list(), frame["vector"].is_not_null().to_list())
    assert (with_failure / "_failures.csv").read_text().splitlines()[1].startswith("c0/bad.png,")


def test_split_folders_are_splits(tmp_path):
    for split, n in (("train", 4), ("val", 2), ("test", 3)):
        for c in ("cats", "dogs"):
            (tmp_path / split / c).mkdir(parents=True)
            for k in range(n):
                Image.new("RGB", (16, 16), (40 * k, 0, 0)).save(tmp_path / split / c / f"{k}.png")
    src = imgfeat.open_source(tmp_path)
    assert {(it.split, it.label) for it in src.items} == {
        (s, c) for s in ("train", "val", "test") for c in ("cats", "dogs")}
    from imgfeat.evaluate import build_folds

    y = np.array(src.labels)
    (fold,) = build_folds("official", y, [it.id for it in src.items],
                          {"splits": [it.split for it in src.items]})
    assert len(fold.train) == 12 and len(fold.test) == 6


def test_numeric_labels_sort_numerically_and_come_back_as_integers(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat([10, 2, 1], 8)
    X = rng.normal(labels[:, None], 0.1, (24, 4)).astype(np.float32)
    report = imgfeat.classify(X, labels, classifiers=["knn"], folds=2, repeats=1)
    assert report.results[0].labels == ["1", "2", "10"]
    images = np.repeat(np.linspace(0, 255, 24).astype(np.uint8), 16 * 16 * 3).reshape(
        24, 16, 16, 3)
    imgfeat.extract(images, tmp_path / "o", data_labels=labels, progress=False, **TINY)
    _, y, _, _ = imgfeat.load_features(tmp_path / "o")
    assert y.dtype.kind == "i" and y.tolist() == labels.tolist()


def test_summary_records_the_features_and_print_is_readable(with_failure, tmp_path):
    report = imgfeat.classify(with_failure, classifiers=["knn"], folds=3, repeats=2)
    text = str(report)
    assert text.splitlines()[0] == ("9 samples, 256 features, 3 classes; 2x stratified 3-fold "
                                    "CV; mean ± std over repetitions (%)")
    assert text.splitlines()[2].startswith("knn")
    assert repr(report).startswith("<ClassifyReport kfold: knn=")
    report.write(tmp_path / "res", plots=False)
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    made = json.loads((with_failure / "_imgfeat.json").read_text())
    assert summary["settings"]["features"]["path"] == str(with_failure.resolve())
    assert summary["settings"]["features"]["config_hash"] == made["config_hash"]


def test_small_tables_classify_in_process(monkeypatch):
    import importlib

    module = importlib.import_module("imgfeat.evaluate.classify")

    def no_workers(self, tasks):
        raise AssertionError("a small table started worker processes")

    monkeypatch.setattr(module._Workers, "map", no_workers)
    X = np.random.default_rng(0).normal(size=(40, 8))
    report = imgfeat.classify(X, np.repeat([0, 1], 20), folds=4, repeats=3, n_jobs=2)
    assert report.settings["workers_startup_seconds"] == 0
    assert all(r.seconds < 5 for r in report.results)


def test_resume_says_what_it_reused(tmp_path, image_folder, capsys):
    argv = ["extract", str(image_folder), "-o", str(tmp_path / "o"), "--shard-size", "5",
            "--model", TINY["model"], "--no-pretrained", "--img-size", "64", "-q"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "extracted 15 images: 15 ok" in out
    precision = json.loads((tmp_path / "o" / "_imgfeat.json").read_text())["metadata"][
        "precision"]
    assert precision in ("fp32", "bf16") and f", {precision}, " in out  # auto, resolved
    (tmp_path / "o" / "data" / "part-00001.parquet").unlink()
    (tmp_path / "o" / "_manifests" / "part-00001.json").unlink()
    assert main(argv + ["--resume"]) == 0
    assert "extracted 15 images (10 of them already done, reused): 15 ok" in \
        capsys.readouterr().out


def test_auto_precision_follows_the_device(monkeypatch):
    import torch

    from imgfeat.precision import resolve_precision

    for native, expect in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda n=native: n)
        assert resolve_precision("auto", "cpu") == expect
    assert resolve_precision("fp16", "cpu") == "fp16"


def test_sample_options(tmp_path, capsys):
    images = np.arange(12 * 8 * 8 * 3, dtype=np.uint8).reshape(12, 8 * 8 * 3)
    np.save(tmp_path / "X.npy", images)
    np.save(tmp_path / "y.npy", np.repeat([1, 2, 10], 4))
    argv = ["sample", "--data", str(tmp_path / "X.npy"), "--labels", str(tmp_path / "y.npy"),
            "--height", "8", "--width", "8", "--channels", "3", "-n", "2", "-o",
            str(tmp_path / "s")]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "imgfeat: warning: -n 2 adjusted to 3: at least one image for each of the 3 " \
           "classes" in captured.err
    assert "wrote 3 images in 3 classes" in captured.out
    names = sorted(p.relative_to(tmp_path / "s").as_posix()
                   for p in (tmp_path / "s").rglob("*.png"))
    assert len(names) == 3 and all(n.split("/")[1].endswith(".png") and "__" not in n
                                   for n in names)
    assert main(argv) == 2 and "--overwrite" in capsys.readouterr().err
    assert main(argv[:-4] + ["-n", "6", "-o", str(tmp_path / "s"), "--overwrite"]) == 0
    assert "wrote 6 images" in capsys.readouterr().out
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x")
    assert main(argv[:-2] + ["-o", str(tmp_path / "mine"), "--overwrite"]) == 2
    assert (tmp_path / "mine" / "keep.txt").is_file()


def test_sample_keeps_file_names(tmp_path, image_folder):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = imgfeat.sample(image_folder, 6, tmp_path / "s")
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()
                   and not p.name.startswith("."))
    assert len(names) == 6 and all(n.split("/")[1].startswith("img") for n in names)


def test_slow_folds_go_to_workers_with_the_same_scores(monkeypatch):
    import importlib

    module = importlib.import_module("imgfeat.evaluate.classify")
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(60, 6)), np.repeat([0, 1, 2], 20)
    here = imgfeat.classify(X, y, classifiers=["knn", "lda"], folds=3, repeats=2, n_jobs=2)
    monkeypatch.setattr(module, "IN_PROCESS_SECONDS", 0.0)  # every fold now counts as slow
    there = imgfeat.classify(X, y, classifiers=["knn", "lda"], folds=3, repeats=2, n_jobs=2)
    assert there.settings["workers_startup_seconds"] > 0
    for a, b in zip(here.results, there.results, strict=True):
        assert a.folds == b.folds and (a.confusion == b.confusion).all()
