"""A learned FLIM network is an imgfeat backbone: ``flim:MODEL`` through the one factory."""

from __future__ import annotations

import pytest
import torch

from imgfeat.backbones.fuse import fold_batchnorm
from imgfeat.backbones.registry import StrideNotSupported, create_backbone
from imgfeat.config import ModelConfig
from imgfeat.errors import ModelError
from imgfeat.flim.learn import learn_filters
from imgfeat.flim.markers import markers_from_image_label
from imgfeat.flim.network import FlimNetwork, save_model


def _conv(out, **extra):
    return {"operation": "conv2d", "params": {"kernel_size": 3, "padding": 1, "out_channels": out,
                                              "number_of_kernels_per_marker": 2, **extra}}


ARCH = {"features": {"type": "sequential", "layers": {
    "m-norm1": {"operation": "m_norm2d"},
    "conv1": _conv(4, activation={"operation": "relu"},
                   pool={"operation": "max_pool2d", "params": {"kernel_size": 2, "stride": 2}}),
    "m-norm2": {"operation": "m_norm2d"},
    "conv2": _conv(6),
    "bn2": {"operation": "batch_norm2d"},
    "relu2": {"operation": "relu"},
    "pool2": {"operation": "avg_pool2d", "params": {"kernel_size": 2, "stride": 2}},
    "conv3": _conv(5, stride=2)}}}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    gen = torch.Generator().manual_seed(0)
    imgs = [torch.rand(3, 32, 32, generator=gen) for _ in range(3)]
    marks = [markers_from_image_label(32, 32, i, strokes=3, length=10, seed=i) for i in range(3)]
    net = FlimNetwork(ARCH, (32, 32))
    learn_filters(net, imgs, marks)
    return save_model(tmp_path_factory.mktemp("flim") / "m.safetensors", net)


def test_backbone_contract(model):
    bb = create_backbone(ModelConfig(model=f"flim:{model}")).select("all")
    info = bb.feature_info
    assert [(t.name, t.channels, t.reduction) for t in info] == [
        ("stage0", 4, 2), ("stage1", 6, 4), ("stage2", 5, 8)]
    assert bb.num_features == 5 and bb.kind == "flim"
    dc = bb.data_config()
    assert dc["input_size"] == (3, 32, 32) and dc["mean"] == (0.0, 0.0, 0.0) and dc["std"] == (1.0, 1.0, 1.0)
    x = torch.rand(2, 3, 32, 32)
    out = bb(x)
    for tap in info:
        assert out[tap.name].shape == (2, tap.channels, 32 // tap.reduction, 32 // tap.reduction)
    bb.select("pooled,final")
    both = bb(x)
    assert torch.allclose(both["final"], out["stage2"]) and both["pooled"].shape == (2, 5)
    d = bb.describe()
    assert d["weights"]["source"] == "file" and len(d["weights"]["sha256"]) == 64
    assert bb.architecture == "flim-lab-4-6-5"


def test_fold_batchnorm_keeps_outputs(model):
    bb = create_backbone(ModelConfig(model=f"flim:{model}")).select("all")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        before = bb(x)
        folded = fold_batchnorm(bb)
        after = bb(x)
    assert len(folded) == 1  # conv2 -> bn2
    for k in before:
        assert torch.allclose(before[k], after[k], atol=1e-5)


def test_options_and_errors(model, tmp_path):
    bb = create_backbone(ModelConfig(model=f"flim:{model}", img_size=48)).select("final")
    assert bb.data_config()["input_size"] == (3, 48, 48)
    assert bb(torch.rand(1, 3, 48, 48))["final"].shape == (1, 5, 6, 6)
    with pytest.raises(StrideNotSupported):
        create_backbone(ModelConfig(model=f"flim:{model}", output_stride=16))
    with pytest.raises(ModelError, match="FLIM model not found"):
        create_backbone(ModelConfig(model=f"flim:{tmp_path / 'nope.safetensors'}"))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a FLIM model file"):
        create_backbone(ModelConfig(model=f"flim:{bad}"))
