"""Bad inputs never stop a run, never mix up vectors, never leave half-written output."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from imgfeat import ItemsFailedError, extract, load_features
from imgfeat.cli import main
from tests.conftest import TINY, random_class_folder


@pytest.fixture
def messy_folder(image_folder):
    """The good images plus every kind of bad file, and names that trip naive code."""
    good = Image.open(image_folder / "cats" / "img0.png")
    bad = image_folder / "bad"
    bad.mkdir()
    (bad / "zero.jpg").write_bytes(b"")
    (bad / "text.jpg").write_text("just some text")
    jpeg = bad / "trunc.jpg"
    good.save(jpeg, quality=95)
    jpeg.write_bytes(jpeg.read_bytes()[:300])
    (image_folder / "dogs" / "img0.png").write_bytes((image_folder / "dogs" / "img0.png")
                                                     .read_bytes())
    uni = image_folder / "owls" / "ünï cödé with spaces"
    uni.mkdir()
    good.save(uni / "img0.png")  # same file name as cats/img0.png, other folder
    good.save(image_folder / "owls" / "UPPER.JPEG")
    Image.new("RGB", (1, 1), (10, 200, 10)).save(image_folder / "owls" / "dot.png")
    Image.new("RGB", (10000, 10), (10, 10, 200)).save(image_folder / "owls" / "strip.png")
    return image_folder


def test_bad_files_are_recorded_and_the_rest_unaffected(messy_folder, tmp_path):
    res = extract(messy_folder, tmp_path / "o", **TINY, shard_size=5, batch_size=3,
                  progress=False)
    assert (res.items, res.failed, res.ok) == (22, 3, 19)
    X, y, ids, meta = load_features(tmp_path / "o")
    reasons = {f["id"]: f["error"] for f in meta["failures"]}
    assert reasons["bad/zero.jpg"] == "empty file (0 bytes)"
    assert reasons["bad/text.jpg"] == "not an image or an unsupported format"
    assert reasons["bad/trunc.jpg"].startswith("corrupt or truncated image")
    assert "owls/ünï cödé with spaces/img0.png" in ids and "owls/UPPER.JPEG" in ids
    assert "owls/dot.png" in ids and "owls/strip.png" in ids
    assert np.isfinite(X).all()
    # the copy of cats/img0.png in another folder gets the same vector: no neighbour mix-up
    np.testing.assert_allclose(X[ids.index("owls/ünï cödé with spaces/img0.png")],
                               X[ids.index("cats/img0.png")], rtol=1e-5, atol=1e-6)
    clean = tmp_path / "clean"
    extract(messy_folder / "cats", clean, **TINY, progress=False)
    Xc, _, idc, _ = load_features(clean)
    np.testing.assert_allclose(Xc[idc.index("img0.png")], X[ids.index("cats/img0.png")],
                               rtol=1e-5, atol=1e-6)
    assert (tmp_path / "o" / "_failures.csv").read_text().count("\n") == 4


def test_a_batch_of_only_bad_images(tmp_path):
    (tmp_path / "src").mkdir()
    for k in range(4):
        (tmp_path / "src" / f"{k}.png").write_bytes(b"nope")
    Image.new("RGB", (9, 9), (200, 10, 10)).save(tmp_path / "src" / "z.png")
    res = extract(tmp_path / "src", tmp_path / "o", **TINY, batch_size=2, progress=False)
    assert (res.ok, res.failed) == (1, 4)
    X, _, ids, _ = load_features(tmp_path / "o")
    assert ids == ["z.png"] and X.shape == (1, 256)


def test_vectors_do_not_depend_on_batch_size(image_folder, tmp_path):
    outs = []
    for bs in (1, 4, 15):
        extract(image_folder, tmp_path / f"b{bs}", **TINY, batch_size=bs, progress=False)
        outs.append(load_features(tmp_path / f"b{bs}")[0])
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(outs[0], outs[2], rtol=1e-4, atol=1e-5)


def test_bad_csv_rows_name_the_line_and_strict(tmp_path, image_folder, capsys):
    lst = tmp_path / "list.csv"
    lst.write_text(f"cats,{image_folder}/cats/img0.png\ndogs\nowls,\n")
    res = extract(lst, tmp_path / "o", **TINY, progress=False)
    assert (res.ok, res.failed) == (1, 2)
    errors = [f["error"] for f in load_features(tmp_path / "o")[3]["failures"]]
    assert errors == ["line 2: expected 2 columns, found 1", "line 3: empty path"]
    with pytest.raises(ItemsFailedError, match="line 2"):
        extract(lst, tmp_path / "s", **TINY, progress=False, strict=True)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("case", ["empty", "nomatch", "unwritable", "model"])
def test_user_errors_are_one_line_and_write_nothing(tmp_path, image_folder, case, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = {
        "empty": [str(empty), "-o", str(tmp_path / "o")],
        "nomatch": [str(image_folder), "-o", str(tmp_path / "o"), "--label-pattern", r"^x(\d+)"],
        "unwritable": [str(image_folder), "-o", "/proc/version/out"],
        "model": [str(image_folder), "-o", str(tmp_path / "o"), "--model", "efficientnet_b99"],
    }[case]
    tiny = ["--model", "test_efficientnet", "--no-pretrained", "--img-size", "64", "-q"]
    assert main(["extract", *args, *(tiny if case != "model" else ["-q"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("imgfeat: error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def test_ctrl_c_keeps_finished_shards_and_resume_completes(tmp_path):
    root = random_class_folder(tmp_path / "many", n=100, classes=2, side=32, seed=1)
    cmd = [sys.executable, "-m", "imgfeat.cli", "extract", str(root), "-o", str(tmp_path / "o"),
           "--model", "test_efficientnet", "--no-pretrained", "--img-size", "160",
           "--shard-size", "10", "--batch-size", "2", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not list(
            (tmp_path / "o" / "_manifests").glob("*.json")):
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    kept = len(load_features(tmp_path / "o")[2])
    assert 10 <= kept < 100
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and len(load_features(tmp_path / "o")[2]) == 100
    again = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "nothing to do" in again.stdout
