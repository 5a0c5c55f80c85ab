"""FeXT evaluation (metrics per image, grid, worst images) and the image-set report."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from imgfeat.autoencoder import AEConfig, evaluate, report, train
from imgfeat.errors import SourceError
from tests.autoencoder.test_ae_train import TINY, tiny_images


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ae_eval")
    data = tiny_images(root / "imgs", n=10)
    cfg = AEConfig(**TINY, epochs=2, val_fraction=0.2, test_fraction=0.3)
    return data, train(data, root / "run", cfg).run


def test_evaluate_on_the_saved_test_split(trained):
    data, run = trained
    res = evaluate(run, worst=2, grid=3)
    test_ids = json.loads((run / "split.json").read_text())["test"]
    assert res.ids == test_ids and res.checkpoint.name == "best.safetensors"
    rows = list(csv.DictReader((run / "eval" / "per_image.csv").open()))
    assert [r["id"] for r in rows] == test_ids
    for r in rows:
        assert float(r["psnr"]) == pytest.approx(10 * np.log10(1 / float(r["mse"])), rel=1e-4)
        assert -1 <= float(r["ssim"]) <= 1 and 0 < float(r["cosine"]) <= 1
    mses = [float(r["mse"]) for r in rows]
    assert [m for _, m in res.worst] == pytest.approx(sorted(mses, reverse=True)[:2], rel=1e-5)
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["metrics"]["mse"]["mean"] == pytest.approx(np.mean(mses), rel=1e-5)
    grid = Image.open(run / "eval" / "reconstructions.png")
    assert grid.size == (3 * (16 + 2), 2 * 16 + 4)  # 3 originals over their reconstructions


def test_evaluate_on_other_data_and_a_checkpoint_file(trained, tmp_path):
    data, run = trained
    other = tiny_images(tmp_path / "other", n=3, h=20, w=30, seed=5)
    (other / "bad.png").write_bytes(b"broken")
    res = evaluate(run / "last.safetensors", other, tmp_path / "out")
    assert len(res.ids) == 3 and res.n_failed == 1
    assert (tmp_path / "out" / "per_image.csv").exists()
    alone = tmp_path / "alone.safetensors"  # a checkpoint outside its run: no split to use
    shutil.copy(run / "last.safetensors", alone)
    with pytest.raises(SourceError, match="no saved split"):
        evaluate(alone)


def test_report_of_an_image_set(tmp_path):
    root = tmp_path / "set"
    root.mkdir()
    rgb = np.zeros((10, 20, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(root / "a.png")
    Image.fromarray(np.full((30, 15), 100, np.uint8), "L").save(root / "b.png")
    (root / "c.jpg").write_bytes(b"not a jpeg")
    rep = report(root, tmp_path / "rep")
    assert rep.count == 3 and rep.readable == 2 and rep.unreadable[0][0] == "c.jpg"
    assert sorted(rep.sizes) == [(15, 30), (20, 10)] and rep.modes == {"RGB": 1, "L": 1}
    n1, n2 = 200, 450
    assert rep.channel_mean[0] == pytest.approx((n1 * 200 + n2 * 100) / (n1 + n2) / 255)
    assert rep.channel_mean[1] == pytest.approx(n2 * 100 / (n1 + n2) / 255)
    assert rep.histogram[0, 200] == n1 and rep.histogram[2, 0] == n1
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "3 (2 readable, 1 unreadable)" in md and "| c.jpg |" in md
    for fig in ("sizes.png", "aspect.png", "histogram.png"):
        assert Image.open(tmp_path / "rep" / fig).size[0] > 100
