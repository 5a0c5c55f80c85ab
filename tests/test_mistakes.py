"""Every mistake a user can make ends in one line and exit 2 (1 for a strict stop), with
nothing half-written: one test per mistake, each running the command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from imgfeat.cli import main
from tests.conftest import TINY

TINY_ARGS = ["--model", TINY["model"], "--no-pretrained", "--img-size", str(TINY["img_size"]),
             "-q"]


def one_line(capsys, argv: list[str], code: int = 2) -> str:
    """Run ``imgfeat ARGV``; check the exit code and that stderr is one ``imgfeat: error:``
    line; return it."""
    rc = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == code, err
    assert len(lines) == 1 and lines[0].startswith("imgfeat: error: "), err
    return lines[0]


def features_csv(path, n_per_class: int = 6, classes=("a", "b", "c"), dim: int = 5, seed=0):
    """An Orange-format features CSV (what ``extract --format csv`` writes)."""
    rng = np.random.default_rng(seed)
    rows = ["Class," + ",".join(f"n{i}" for i in range(dim))]
    for k, c in enumerate(classes):
        for _ in range(n_per_class):
            rows.append(c + "," + ",".join(f"{v:.4f}" for v in rng.normal(k, 1, dim)))
    path.write_text("\n".join(rows) + "\n")
    return path


# --- classify ------------------------------------------------------------------------------

@pytest.mark.parametrize("flags,expect", [
    (["--pca", "500"], "--pca 500: more components than a fold has training images"),
    (["--pca", "-1"], "--pca -1: give a whole number of components"),
    (["--pca", "2.5"], "--pca 2.5: give a whole number of components"),
    (["--folds", "1"], "--folds 1: must be a whole number, at least 2"),
    (["--protocol", "fewshot", "--shots", "0"], "--shots 0: must be a whole number, at least 1"),
    (["--repeats", "0"], "--repeats 0: must be a whole number, at least 1"),
    (["--jobs", "0"], "--jobs 0: must be at least 1"),
])
def test_classify_bad_settings(tmp_path, capsys, flags, expect):
    feats = features_csv(tmp_path / "f.csv")
    line = one_line(capsys, ["classify", str(feats), "--folds", "3", "--repeats", "2",
                             *flags, "-o", str(tmp_path / "res")])
    assert expect in line
    assert not (tmp_path / "res").exists()


def test_classify_from_python_names_the_keyword():
    from imgfeat import ConfigError, classify

    X, y = np.random.default_rng(0).normal(size=(12, 4)), np.repeat([0, 1], 6)
    with pytest.raises(ConfigError, match=r"^folds=1: must be"):
        classify(X, y, folds=1)
    with pytest.raises(ConfigError, match=r"labels must be 1-D"):
        classify(X, np.eye(12), folds=2)


def test_classify_one_class(tmp_path, capsys):
    feats = features_csv(tmp_path / "f.csv", classes=("only",))
    line = one_line(capsys, ["classify", str(feats)])
    assert "at least 2 classes" in line and "'only'" in line


def test_classify_csv_without_class_header(tmp_path, capsys):
    bad = tmp_path / "f.csv"
    bad.write_text("label,x,y\na,1,2\nb,3,4\n")
    line = one_line(capsys, ["classify", str(bad)])
    assert "Class,n0,n1" in line and "label,x,y" in line


@pytest.mark.parametrize("method", ["tsne", "umap"])
def test_plot_on_two_points(tmp_path, capsys, method):
    feats = features_csv(tmp_path / "f.csv", n_per_class=1, classes=("a", "b"))
    line = one_line(capsys, ["plot", str(feats), "--method", method, "-o",
                             str(tmp_path / "m.png")])
    assert f"--method {method} needs at least" in line and "2 x 5" in line
    assert not (tmp_path / "m.png").exists()


# --- extract: settings, sources, outputs -----------------------------------------------------

@pytest.mark.parametrize("flags,expect", [
    (["--threads", "-2"], "--threads -2: must be a whole number, at least 1"),
    (["--batch-size", "0"], "--batch-size 0: must be a whole number, at least 1"),
    (["--workers", "-1"], "--workers -1: must be a whole number, at least 0"),
    (["--gem-p", "3"], "--gem-p applies to --pool gem, not --pool avg"),
])
def test_extract_bad_settings(tmp_path, image_folder, capsys, flags, expect):
    out = tmp_path / "o"
    line = one_line(capsys, ["extract", str(image_folder), "-o", str(out), *TINY_ARGS, *flags])
    assert expect in line
    assert not out.exists()


def test_extract_from_python_names_keywords(tmp_path, image_folder):
    from imgfeat import ConfigError, extract

    with pytest.raises(ConfigError, match=r"^batch_size=0: must be"):
        extract(image_folder, tmp_path / "o", batch_size=0, **TINY)
    assert not (tmp_path / "o").exists()


def test_label_pattern_is_quoted_as_typed(tmp_path, image_folder, capsys):
    line = one_line(capsys, ["extract", str(image_folder), "-o", str(tmp_path / "o"),
                             "--label-pattern", r"(\d+", *TINY_ARGS])
    assert r"'(\d+'" in line and r"\\d" not in line


@pytest.mark.parametrize("rows,expect", [
    ("cats/img0.png\ndogs/img0.png\n", "has one column"),
    ("cats/img0.png,cats\ndogs/img0.png,dogs\n", "columns look swapped"),
])
def test_csv_list_of_the_wrong_shape(tmp_path, image_folder, capsys, rows, expect):
    lst = image_folder / "list.csv"
    lst.write_text(rows)
    line = one_line(capsys, ["extract", str(lst), "-o", str(tmp_path / "o"), *TINY_ARGS])
    assert expect in line and "rows of label,path" in line
    assert not (tmp_path / "o").exists()


def test_one_hot_labels_for_arrays(tmp_path, capsys):
    np.save(tmp_path / "X.npy", np.zeros((6, 8, 8, 3), dtype=np.uint8))
    np.save(tmp_path / "y.npy", np.eye(6, 3))
    line = one_line(capsys, ["extract", "--data", str(tmp_path / "X.npy"), "--labels",
                             str(tmp_path / "y.npy"), "-o", str(tmp_path / "o"), *TINY_ARGS])
    assert "labels must be 1-D" in line and "(6, 3)" in line and "argmax" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("flags,expect", [
    (["--height", "8", "--width", "8"], "RGB rows? add --channels 3"),
    ([], "square images? --height 8 --width 8 --channels 3"),
])
def test_rgb_rows_without_channels(tmp_path, capsys, flags, expect):
    np.save(tmp_path / "X.npy", np.zeros((4, 8 * 8 * 3), dtype=np.uint8))
    line = one_line(capsys, ["extract", "--data", str(tmp_path / "X.npy"), *flags,
                             "-o", str(tmp_path / "o"), *TINY_ARGS])
    assert expect in line
    assert not (tmp_path / "o").exists()


def test_all_failed_then_classify_and_plot(tmp_path, capsys):
    src = tmp_path / "bad"
    src.mkdir()
    for k in range(3):
        (src / f"{k}.png").write_bytes(b"not a png")
    out = tmp_path / "o"
    assert main(["extract", str(src), "-o", str(out), *TINY_ARGS]) == 1
    capsys.readouterr()
    for argv in (["classify", str(out)], ["plot", str(out), "-o", str(tmp_path / "m.png")]):
        line = one_line(capsys, argv)
        assert "no features" in line and "all 3 images failed" in line and "_failures.csv" in line
    assert not (tmp_path / "m.png").exists()


@pytest.fixture
def finished(tmp_path, image_folder, capsys):
    """A finished output of the image folder in 3 shards; returns its argv."""
    argv = ["extract", str(image_folder), "-o", str(tmp_path / "o"), "--shard-size", "5",
            *TINY_ARGS]
    assert main(argv) == 0
    capsys.readouterr()
    return argv


def test_corrupt_metadata(tmp_path, finished, capsys):
    meta = tmp_path / "o" / "_imgfeat.json"
    meta.write_text(meta.read_text()[:40])
    for argv in (["classify", str(tmp_path / "o")], finished + ["--resume"]):
        line = one_line(capsys, argv)
        assert "_imgfeat.json is damaged" in line and "--overwrite" in line


def test_corrupt_manifest(tmp_path, finished, capsys):
    meta = tmp_path / "o" / "_imgfeat.json"
    job = json.loads(meta.read_text())
    meta.write_text(json.dumps({**job, "complete": False}))
    (tmp_path / "o" / "data" / "part-00002.parquet").unlink()  # the run stopped before the last shard
    (tmp_path / "o" / "_manifests" / "part-00000.json").write_text("{")
    line = one_line(capsys, finished + ["--resume"])
    assert "part-00000.json is damaged" in line


def test_resume_refusal_names_only_what_differs(tmp_path, finished, capsys):
    line = one_line(capsys, finished[:-3] + ["--img-size", "48", "-q", "--resume"])
    assert "differs in model.img_size)" in line and "pool_args" not in line


def test_existing_output_from_python_names_keywords(tmp_path, image_folder):
    from imgfeat import StoreError, extract

    extract(image_folder, tmp_path / "o", progress=False, **TINY)
    with pytest.raises(StoreError, match=r"use resume=True to finish it or overwrite=True"):
        extract(image_folder, tmp_path / "o", progress=False, **TINY)


def test_strict_stop_does_not_block_the_same_command(tmp_path, image_folder, capsys):
    bad = image_folder / "cats" / "zz_broken.png"
    bad.write_bytes(b"\x89PNG garbage")
    argv = ["extract", str(image_folder), "-o", str(tmp_path / "o"), "--strict", *TINY_ARGS]
    line = one_line(capsys, argv, code=1)
    assert "cats/zz_broken.png" in line
    Image.new("RGB", (20, 20), "red").save(bad)  # the user fixes the file
    assert main(argv) == 0, capsys.readouterr().err


# --- the command line itself -----------------------------------------------------------------

def test_interrupt_during_start_up(monkeypatch, capsys):
    import imgfeat.cli as cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert main(["classify", "x"]) == 130
    err = capsys.readouterr().err
    assert err == "imgfeat: interrupted\n"


@pytest.mark.parametrize("command,says", [("classify", "imgfeat: interrupted\n"),
                                          ("extract", "--resume")])
def test_interrupt_message_fits_the_command(tmp_path, monkeypatch, capsys, command, says):
    import imgfeat.cli.classify
    import imgfeat.cli.extract

    def interrupted(args):
        raise KeyboardInterrupt

    module = {"classify": imgfeat.cli.classify, "extract": imgfeat.cli.extract}[command]
    monkeypatch.setattr(module, "run", interrupted)
    argv = [command, str(tmp_path)] + (["-o", str(tmp_path / "o")] if command == "extract" else [])
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1
    if command == "classify":
        assert "--resume" not in err


def test_unknown_model_pattern_suggests_close_names(capsys):
    line = one_line(capsys, ["models", "efficentnet_lite0"])
    assert "no model matches 'efficentnet_lite0'" in line and "efficientnet_lite0" in line
