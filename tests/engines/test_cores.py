"""``compute_processes="auto"`` follows the one rule of :mod:`imgfeat.engines.cores`."""

from __future__ import annotations

import pytest

import imgfeat.config
from imgfeat import extract
from imgfeat.engines import cores
from imgfeat.engines.cores import auto_compute_processes
from tests.conftest import TINY, random_class_folder


def test_the_rule(monkeypatch):
    monkeypatch.setattr(cores, "PER_CORE", {"onnxruntime": (2, 4), "torch": ()})
    assert auto_compute_processes("onnxruntime", 2) == 2
    assert auto_compute_processes("onnxruntime", 4) == 4
    assert auto_compute_processes("onnxruntime", 8) == 1  # not measured faster there
    assert auto_compute_processes("onnxruntime", 2, device="cuda") == 1
    assert auto_compute_processes("torch", 2) == 1
    assert auto_compute_processes("openvino", 2) == 1  # not in the table: never
    assert auto_compute_processes("onnxruntime", 1) == 1
    assert auto_compute_processes("onnxruntime", 2, images=cores.MIN_IMAGES) == 2
    assert auto_compute_processes("onnxruntime", 2, images=cores.MIN_IMAGES - 1) == 1  # short
    # measured with the processes decoding their own batches: not with decode workers
    assert auto_compute_processes("onnxruntime", 2, workers=1) == 1
    assert "onnxruntime: 2, 4 cores" in cores.describe_rule()


@pytest.mark.parametrize("table", [{"torch": (2,)}, {"torch": ()}])
def test_auto_follows_the_rule(tmp_path, monkeypatch, table):
    monkeypatch.setattr(cores, "PER_CORE", table)
    monkeypatch.setattr(cores, "MIN_IMAGES", 6)
    monkeypatch.setattr(imgfeat.config, "default_threads", lambda: 2)
    images = random_class_folder(tmp_path / "imgs", 6, 2, 32, 0)
    res = extract(images, tmp_path / "out", **TINY, runtime="torch", progress=False,
                  compute_processes="auto")
    assert res.compute_processes == auto_compute_processes("torch", 2) == (2 if table["torch"]
                                                                           else 1)
    assert res.ok == 6
