"""FLIM tools end to end: auto markers, train, the model file in a fresh process, validate scores
what train saved, layer outputs, the LIDS source, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from imgfeat.cli import main
from imgfeat.errors import SourceError
from imgfeat.flim.automark import markers_from_labels
from imgfeat.flim.network import load_model, read_model_header
from imgfeat.flim.train import train_flim
from imgfeat.flim.validate import save_layer_outputs, validate_flim
from imgfeat.sources import open_source
from imgfeat.sources.lids import LidsSource

ARCH = {"features": {"type": "sequential", "layers": {
    "m-norm1": {"operation": "m_norm2d"},
    "conv1": {"operation": "conv2d", "params": {
        "kernel_size": 3, "padding": 1, "number_of_kernels_per_marker": 3, "out_channels": 6,
        "activation": {"operation": "relu"},
        "pool": {"operation": "max_pool2d", "params": {"kernel_size": 3, "stride": 2, "padding": 1}}}},
    "conv2": {"operation": "conv2d", "params": {
        "kernel_size": 3, "padding": 1, "number_of_kernels_per_marker": 2, "out_channels": 6, "bias": True,
        "activation": {"operation": "relu"},
        "pool": {"operation": "max_pool2d", "params": {"kernel_size": 2, "stride": 2}}}}}},
    "classifier": {"layers": {"linear1": {"operation": "linear",
                                          "params": {"in_features": -1, "out_features": 3}}}}}


@pytest.fixture(scope="module")
def lids(tmp_path_factory):
    """Three striped texture classes, 5 images each, 24 px, named <class>_<id>.png."""
    root = tmp_path_factory.mktemp("lids")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:24, 0:24]
    for c in (1, 2, 3):
        for i in range(1, 6):
            phase = rng.uniform(0, 6)
            wave = {1: np.sin(xx / 1.5 + phase), 2: np.sin(yy / 2.5 + phase),
                    3: np.sin((xx + yy) / 1.2 + phase)}[c]
            img = np.stack([wave * 90 + 128, np.full_like(wave, 50.0 * c), 128 - wave * 60], -1)
            img += rng.normal(0, 8, img.shape)
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / f"{c}_{i:03d}.png")
    (root / "train.txt").write_text("".join(f"{c}_{i:03d}.png\n" for c in (1, 2, 3) for i in (1, 2, 3)))
    return root


def test_lids_source(lids):
    src = open_source(f"lids:{lids}")
    assert len(src) == 15 and src.items[0].id == "1_001.png" and src.items[0].label == "1"
    split = open_source(f"lids:{lids},{lids / 'train.txt'}")
    assert [it.id for it in split.items][:2] == ["1_001.png", "1_002.png"] and len(split) == 9
    (lids / "train_bad.txt").write_text("cat.png\n")
    with pytest.raises(SourceError, match="'cat.png' is not named <class>_<id>"):
        LidsSource(lids, lids / "train_bad.txt")


def test_train_validate_round_trip_in_a_fresh_process(lids, tmp_path):
    items = LidsSource(lids).items
    files = markers_from_labels(items, tmp_path / "marks", images_per_class=1, strokes=3, length=6, seed=0)
    assert len(files) == 3
    model = tmp_path / "m.safetensors"
    r = train_flim(f"lids:{lids}", model, architecture=ARCH, markers=tmp_path / "marks", label_base=1,
                   svm=True, classifier=True, epochs=15, seed=0)
    assert r.marked_images == 3 and r.label_base == 1
    assert [layer.name for layer in r.learn.layers] == ["features.m-norm1", "features.conv1",
                                                        "features.conv2"]
    header = read_model_header(model)
    assert header["classes"] == ["1", "2", "3"] and header["provenance"]["marked_images"]
    assert header["provenance"]["train_accuracy"] == pytest.approx(r.train_accuracy)
    code = ("import json, sys; from imgfeat.flim.validate import validate_flim; "
            f"print(json.dumps({{h: validate_flim({str(model)!r}, 'lids:{lids}', head=h).accuracy "
            "for h in ('svm', 'classifier')}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    scored = json.loads(out.stdout.strip().splitlines()[-1])
    assert scored == pytest.approx(r.train_accuracy)
    # the reloaded network computes what the trained one computed
    x = torch.rand(2, 3, 24, 24)
    assert torch.allclose(load_model(model).forward_features(x), r.network.forward_features(x), atol=1e-6)
    rep = validate_flim(model, f"lids:{lids}", head="svm", output=tmp_path / "val")
    assert rep.n == 15 and len(rep.per_class) == 3 and rep.confusion.sum() == 15
    assert json.loads((tmp_path / "val" / "validation.json").read_text())["accuracy"] == rep.accuracy
    names = save_layer_outputs(model, f"lids:{lids}", tmp_path / "outs", layers=["conv1", "conv2_pool"])
    a = np.load(tmp_path / "outs" / "conv2_pool" / "2_003.npy")
    assert names == ["conv1", "conv2_pool"] and a.shape == (6, 6, 6) and a.dtype == np.float32


def test_cli_markers_train_validate(lids, tmp_path, capsys):
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps(ARCH))
    assert main(["flim", "markers", f"lids:{lids}", "-o", str(tmp_path / "mk"), "--images-per-class", "1",
                 "--length", "6", "--label-base", "0"]) == 0
    assert main(["flim", "train", f"lids:{lids}", "--markers", str(tmp_path / "mk"), "-a", str(arch),
                 "-o", str(tmp_path / "m.safetensors"), "--svm", "-q", "--label-base", "0"]) == 0
    out = capsys.readouterr().out
    assert "features.conv1: 6 channels" in out and "train accuracy svm" in out
    assert main(["flim", "validate", str(tmp_path / "m.safetensors"), f"lids:{lids}", "--split",
                 str(lids / "train.txt")]) == 0
    assert "(9 images, head svm)" in capsys.readouterr().out
    # errors: one line, exit 2
    assert main(["flim", "validate", str(tmp_path / "m.safetensors"), f"lids:{lids}", "--head",
                 "classifier"]) == 2
    assert "has no trained classifier" in capsys.readouterr().err
    (tmp_path / "mk" / "9_999.txt").write_text("1 24 24\n1 1 -1 0\n")
    assert main(["flim", "train", f"lids:{lids}", "--markers", str(tmp_path / "mk"), "-a", str(arch),
                 "-o", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "9_999.txt: no image named 9_999" in err and len(err.strip().splitlines()) == 1
