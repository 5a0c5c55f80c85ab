"""The contract every backbone kind and every pooling keeps, checked over all of them (as timm
tests every model and scikit-learn every estimator): stages as announced, ``info`` sizes equal to
extracted ones, BatchNorm folding that never changes vectors, pooling parameters that round-trip,
rows independent of their batch. A new kind adds one entry to ``KINDS``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch

import imgfeat
from imgfeat import Extractor, FeatureExtractor, ModelConfig, create_pooling, list_poolings
from imgfeat.backbones import backbone_kinds, create_backbone
from imgfeat.backbones.registry import parse_model_name
from imgfeat.runtimes import installed_runtimes


def _timm(tmp_path: Path) -> str:
    return "test_efficientnet"


def _timm_tokens(tmp_path: Path) -> str:
    return "test_vit"


def _ae(tmp_path: Path) -> str:
    """A small autoencoder run whose BatchNorms hold real statistics (a few training-mode
    forwards), saved as FeXT saves its best checkpoint."""
    from imgfeat.autoencoder import AEConfig, AutoEncoder
    from imgfeat.autoencoder.checkpoint import save_weights

    torch.manual_seed(0)
    model = AutoEncoder(AEConfig(height=64, width=64, depth=3, base_width=4, max_width=16))
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(4, 3, 64, 64) * 2)
    save_weights(tmp_path / "best.safetensors", model.eval(), {"epoch": 3})
    return f"ae:{tmp_path}"


def _flim(tmp_path: Path) -> str:
    """A small FLIM network (m_norm, conv + ReLU + max pool, conv + BatchNorm, strided conv)
    learned from generated strokes on three images."""
    from imgfeat.flim.learn import learn_filters
    from imgfeat.flim.markers import markers_from_image_label
    from imgfeat.flim.network import FlimNetwork, save_model

    def conv(out, **extra):
        return {"operation": "conv2d", "params": {
            "kernel_size": 3, "padding": 1, "out_channels": out,
            "number_of_kernels_per_marker": 2, **extra}}

    arch = {"features": {"type": "sequential", "layers": {
        "m-norm1": {"operation": "m_norm2d"},
        "conv1": conv(4, activation={"operation": "relu"},
                      pool={"operation": "max_pool2d", "params": {"kernel_size": 2, "stride": 2}}),
        "conv2": conv(6), "bn2": {"operation": "batch_norm2d"}, "relu2": {"operation": "relu"},
        "conv3": conv(5, stride=2)}}}
    gen = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 64, 64, generator=gen) for _ in range(3)]
    marks = [markers_from_image_label(64, 64, i, strokes=3, length=12, seed=i) for i in range(3)]
    net = FlimNetwork(arch, (64, 64))
    learn_filters(net, images, marks)
    return f"flim:{save_model(tmp_path / 'm.safetensors', net)}"


#: kind -> a function that makes a small model of that kind and returns its model name
KINDS: dict[str, Callable[[Path], str]] = {"timm": _timm, "timm-vit": _timm_tokens, "ae": _ae,
                                            "flim": _flim}
OPTIONS = {"pretrained": False, "img_size": 64, "precision": "fp32"}


def test_every_registered_kind_is_covered():
    missing = set(backbone_kinds()) - {k.split("-")[0] for k in KINDS}
    assert not missing, f"kinds without a contract sample: {missing}"


@pytest.fixture(params=sorted(KINDS), scope="module")
def model_name(request, tmp_path_factory) -> str:
    return KINDS[request.param](tmp_path_factory.mktemp(request.param))


def _images(n: int = 3, size: int = 64) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(7))


def test_feature_info_matches_the_maps(model_name):
    backbone = create_backbone(ModelConfig(model=model_name, **OPTIONS))
    stages = backbone.feature_info
    if not stages:
        pytest.skip("this backbone has no stages")  # pragma: no cover - every kind has some now
    backbone.select("all,final,pooled")
    with torch.inference_mode():
        maps = backbone(torch.zeros(1, 3, 64, 64))
    for tap in stages:
        fmap = maps[tap.name]
        assert fmap.shape[1] == tap.channels, tap
        if tap.reduction and fmap.ndim == 4:
            assert fmap.shape[-1] in (64 // tap.reduction, -(-64 // tap.reduction)), tap
    assert maps["pooled"].shape == (1, backbone.num_features)
    assert set(backbone.data_config()) >= {"input_size", "interpolation", "mean", "std",
                                            "crop_pct"}
    assert backbone.describe()["kind"] == parse_model_name(model_name)[0]


def _layer_choices(pool: str) -> list[str | None]:
    multi = getattr(create_pooling(pool), "multi_layer", False)
    return [None] if multi else [None, "final", "all", "-1"]


@pytest.mark.parametrize("pool", list_poolings())
def test_info_sizes_equal_extracted_sizes(model_name, pool):
    info = imgfeat.model_info(model_name, img_size=64)
    for layers in _layer_choices(pool):
        ex = Extractor(ModelConfig(model=model_name, **OPTIONS, layers=layers, pool=pool))
        vec = ex.embed(_images(2))
        assert vec.shape == (2, ex.dim)
        key = {None: "pooled" if pool == "avg" else "final", "-1": str(len(info["stages"]) - 1)
               }.get(layers, layers)
        if getattr(ex.pooling, "multi_layer", False):
            key = "all"
        assert ex.dim == info["vector_sizes"][key][pool], (layers, pool)
        assert ex.metadata()["layers"] == ex.layer_spec


@pytest.mark.parametrize("pool", list_poolings())
def test_folding_kept_or_undone_gives_equal_vectors(model_name, pool):
    layers = _layer_choices(pool)[-1]
    folded = Extractor(ModelConfig(model=model_name, **OPTIONS, pool=pool, layers=layers))
    plain = Extractor(ModelConfig(model=model_name, **OPTIONS, pool=pool, layers=layers,
                                  fold_bn=False))
    assert plain.folded_bn == 0
    x = _images()
    a, b = folded.embed(x).astype(np.float64), plain.embed(x).astype(np.float64)
    scale = np.abs(b).max() + 1e-12
    assert np.abs(a - b).max() <= 2e-3 * scale, (pool, folded.folded_bn)


@pytest.mark.parametrize("pool", list_poolings())
def test_pooling_parameters_round_trip(pool):
    p = create_pooling(pool)
    params = p.get_params()
    again = create_pooling(pool, **params)
    assert again.get_params() == params
    assert repr(again) == repr(p)


@pytest.mark.parametrize("pool", list_poolings())
def test_rows_do_not_depend_on_their_batch(model_name, pool):
    ex = Extractor(ModelConfig(model=model_name, **OPTIONS, pool=pool,
                               layers=_layer_choices(pool)[-1]))
    x = _images(4)
    together = ex.embed(x).astype(np.float64)
    alone = np.concatenate([ex.embed(x[i:i + 1]) for i in range(4)]).astype(np.float64)
    tol = max(1e-4, 2 * float(np.finfo(ex.store_dtype).eps))  # float16 for pool none
    assert np.abs(together - alone).max() <= tol * (np.abs(alone).max() + 1e-12)


def _entry_points() -> dict:
    """Each function that takes the model options, with where it departs from ModelConfig."""
    from imgfeat.evaluate.bench import bench

    return {"extract": (imgfeat.extract, {}), "FeatureExtractor": (FeatureExtractor, {}),
            "bench": (bench, {"img_size": 224, "resize": "squash"})}


@pytest.mark.parametrize("entry", ["extract", "FeatureExtractor", "bench"])
def test_every_entry_point_takes_every_model_option(entry):
    """ModelConfig is the one definition: the explicit signatures of extract(), bench() and
    FeatureExtractor (kept for IDEs, type checkers, help() and scikit-learn's get_params) take
    every field by its name (bench: the plural grid name), annotated and defaulted as the field;
    pool_args is a dict (None: the pooling's own), bench has the texture papers' 224 squashed."""
    func, own_defaults = _entry_points()[entry]
    params = inspect.signature(func).parameters
    for f in fields(ModelConfig):
        name = f.metadata["plural"] if entry == "bench" and f.metadata["plural"] else f.name
        assert name in params, f"{entry} lacks {name}"
        param = params[name]
        first = entry == "FeatureExtractor" and f.name == "model"
        assert param.kind == (param.POSITIONAL_OR_KEYWORD if first else param.KEYWORD_ONLY), name
        if name != f.name:  # a grid: a sequence of the field's values
            assert param.default == (f.default,), name
            continue
        if f.name == "pool_args":
            assert (param.annotation, param.default) == ("dict | None", None), name
            continue
        assert param.annotation == f.type, (entry, name)
        assert param.default == own_defaults.get(f.name, f.default), (entry, name)
        assert f"``{name}``: {f.metadata['help'][:30]}" in " ".join(func.__doc__.split()), name


@pytest.mark.parametrize("argv,entry", [
    (["extract", "imgs", "-o", "out"], "extract"),
    (["bench", "--dataset", "usptex", "--data-path", "d", "--output", "out"], "bench"),
])
def test_the_command_line_defaults_are_the_python_defaults(argv, entry):
    """Flags made from the fields, parsed with nothing given, are the Python defaults."""
    from imgfeat.cli import build_parser
    from imgfeat.cli.options import model_kwargs

    kwargs = model_kwargs(build_parser().parse_args(argv))
    params = inspect.signature(_entry_points()[entry][0]).parameters
    grid = entry == "bench"
    assert set(kwargs) == {f.metadata["plural"] if grid and f.metadata["plural"] else f.name
                           for f in fields(ModelConfig)}
    for name, value in kwargs.items():
        expected = params[name].default
        assert (tuple(value) if isinstance(value, list) else value) == expected, name


def test_model_option_mistakes_name_the_keyword_or_the_flag(tmp_path, capsys):
    from imgfeat import ConfigError
    from imgfeat.cli import main

    for kwargs, words in [({"resize": "bogus"}, "resize='bogus': must be one of crop, squash"),
                          ({"img_size": "64"}, "img_size='64': must be int"),
                          ({"img_size": 4}, "img_size=4: must be at least 8"),
                          ({"output_stride": 7}, "output_stride=7: must be one of 8, 16, 32")]:
        with pytest.raises(ConfigError) as err:
            imgfeat.extract(tmp_path, tmp_path / "out", **kwargs)
        assert str(err.value) == words
        with pytest.raises(ConfigError, match=words.split(":")[0]):
            FeatureExtractor(**kwargs).model_config()
    assert not (tmp_path / "out").exists()
    assert main(["extract", str(tmp_path), "-o", str(tmp_path / "out"), "--img-size", "4"]) == 2
    assert capsys.readouterr().err.strip() == "imgfeat: error: --img-size 4: must be at least 8"


def test_feature_extractor_keeps_its_parameters_as_given():
    fe = FeatureExtractor("test_efficientnet", pretrained=False, img_size=64, pool="radam",
                          pool_args={"m": 2})
    assert fe.get_params()["pool_args"] == {"m": 2} and fe.get_params()["batch_size"] == 16
    assert fe.model_config().pool_args == (("m", 2),)
    assert fe.fit().extractor_.pooling.m == 2


RUNTIMES = installed_runtimes()[1:]  # the exported ones installed here (CI installs them all)


@pytest.mark.skipif(not RUNTIMES, reason="no exported runtime installed (extras onnx, openvino)")
@pytest.mark.parametrize("pool", list_poolings())
def test_every_runtime_gives_the_vectors_of_torch(model_name, pool, tmp_path, monkeypatch):
    """Every kind and pooling under every installed runtime: the network runs there (no
    fallback) and the vectors equal torch's, alone and in a batch, to 1e-4. An export cache of
    its own: a fallback another test caused (a network it broke on purpose) is not this one's."""
    monkeypatch.setenv("IMGFEAT_CACHE_DIR", str(tmp_path / "cache"))
    layers = _layer_choices(pool)[-1]
    cfg = ModelConfig(model=model_name, **OPTIONS, pool=pool, layers=layers)
    torch_ex = Extractor(cfg)
    x = _images(4)
    ref = torch_ex.embed(x).astype(np.float64)
    scale = np.abs(ref).max() + 1e-12
    tol = max(1e-4, 2 * float(np.finfo(torch_ex.store_dtype).eps))  # float16 for pool none
    for runtime in RUNTIMES:
        ex = Extractor(cfg, runtime=runtime)
        assert ex.runtime == runtime and ex.metadata()["runtime"] == runtime
        assert ex.dim == torch_ex.dim and ex.layout == torch_ex.layout
        assert np.abs(ex.embed(x) - ref).max() <= tol * scale, runtime
        assert np.abs(ex.embed(x[:1]) - ref[:1]).max() <= tol * scale, runtime
