"""The trained FeXT encoder through the Backbone protocol (``ae:RUN`` / ``ae:CHECKPOINT``)."""

from __future__ import annotations

import math

import pytest
import torch

from imgfeat.autoencoder import AEConfig, AutoEncoder
from imgfeat.autoencoder.backbone import AEBackbone
from imgfeat.autoencoder.checkpoint import save_weights
from imgfeat.backbones.base import DATA_CONFIG_KEYS
from imgfeat.backbones.fuse import fold_batchnorm
from imgfeat.backbones.registry import StrideNotSupported, create_backbone
from imgfeat.backbones.weights import file_sha256
from imgfeat.config import ModelConfig
from imgfeat.errors import WeightsError


def fake_run(folder, h=24, w=40, depth=3, name="best"):
    """A run folder whose checkpoint has non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    model = AutoEncoder(AEConfig(height=h, width=w, depth=depth, base_width=4, max_width=16))
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(4, 3, h, w) * 2)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(folder / f"{name}.safetensors", model.eval(), {"epoch": 3})
    return folder, model


@pytest.mark.parametrize("h,w", [(32, 32), (24, 40)])
def test_contract_shapes_match_feature_info(tmp_path, h, w):
    run, model = fake_run(tmp_path / "run", h, w)
    bb = create_backbone(ModelConfig(model=f"ae:{run}"))
    assert isinstance(bb, AEBackbone) and bb.kind == "ae" and not bb.training
    info = bb.feature_info
    assert [t.channels for t in info] == [4, 8, 16] and bb.num_features == 16
    dc = bb.data_config()
    assert set(DATA_CONFIG_KEYS) <= set(dc) and dc["input_size"] == (3, h, w)
    assert dc["mean"] == (0, 0, 0) and dc["std"] == (1, 1, 1) and dc["crop_pct"] == 1.0
    x = torch.rand(2, 3, h, w)
    with torch.no_grad():
        out = bb.select("all,final,pooled")(x)
        latent = model.encode(x)
    for tap in info:
        t = out[tap.name]
        assert t.shape == (2, tap.channels, math.ceil(h / tap.reduction),
                           math.ceil(w / tap.reduction))
    assert torch.equal(out["final"], latent) and torch.equal(out["stage2"], latent)
    assert torch.allclose(out["pooled"], latent.mean(dim=(2, 3)))
    d = bb.describe()
    assert d["weights"]["sha256"] == file_sha256(run / "best.safetensors")
    assert d["latent_shape"] == [16, math.ceil(h / 8), math.ceil(w / 8)]


def test_only_the_stages_asked_for_are_computed(tmp_path):
    run, _ = fake_run(tmp_path / "run")
    bb = create_backbone(ModelConfig(model=f"ae:{run}"))
    final, maps = bb.forward_intermediates(torch.rand(1, 3, 24, 40), [0], final=False)
    assert final is None and len(maps) == 1 and maps[0].shape[1] == 4


def test_batchnorm_folding_keeps_outputs(tmp_path):
    run, _ = fake_run(tmp_path / "run")
    bb = create_backbone(ModelConfig(model=f"ae:{run}")).select("all")
    x = torch.rand(2, 3, 24, 40)
    with torch.no_grad():
        ref = bb(x)
        folded = fold_batchnorm(bb)
        got = bb(x)
    assert len(folded) == 7  # 2 + 2 + 3 conv units
    for name in ref:
        assert torch.allclose(ref[name], got[name], atol=1e-5, rtol=1e-4)


def test_locations_sizes_and_refusals(tmp_path):
    run, _ = fake_run(tmp_path / "run", name="last")  # no best: last is used
    assert create_backbone(ModelConfig(model=f"ae:{run}")).weights.name.endswith(
        "last.safetensors")
    bb = create_backbone(ModelConfig(model=f"ae:{run / 'last.safetensors'}", img_size=48))
    assert bb.data_config()["input_size"] == (3, 48, 48)
    with pytest.raises(StrideNotSupported):
        create_backbone(ModelConfig(model=f"ae:{run}", output_stride=16))
    # a multi-stage pooling asks for stride 8: this depth-3 encoder's own stride, so it is kept
    assert create_backbone(ModelConfig(model=f"ae:{run}"), multi_stage=True).output_stride == 8
    deeper, _ = fake_run(tmp_path / "deep", 32, 32, depth=4)
    assert create_backbone(ModelConfig(model=f"ae:{deeper}"), multi_stage=True).output_stride is None
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="no checkpoint in"):
        create_backbone(ModelConfig(model=f"ae:{tmp_path / 'empty'}"))
    (tmp_path / "x.safetensors").write_bytes(b"junk")
    with pytest.raises(WeightsError, match="not a safetensors file"):
        create_backbone(ModelConfig(model=f"ae:{tmp_path / 'x.safetensors'}"))
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(WeightsError, match="not an imgfeat autoencoder checkpoint"):
        create_backbone(ModelConfig(model=f"ae:{tmp_path / 'other.safetensors'}"))
