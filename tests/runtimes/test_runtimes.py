"""Runtimes: the backbone exported once and cached, run by OpenVINO or ONNX Runtime, checked
against torch on the probe; auto records its choice; a failed export falls back to torch with
one warning; a cached start builds no network and imports no timm."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from imgfeat import Extractor, ModelConfig, extract, load_features
from imgfeat.errors import ConfigError, ImgfeatWarning
from imgfeat.runtimes import AUTO_ORDER, check_runtime, installed_runtimes
from imgfeat.runtimes import attach as attach_mod
from imgfeat.runtimes.cache import cache_dir, publish_dir
from tests.conftest import TINY, fresh_python, random_class_folder

EXPORTED = installed_runtimes()[1:]
pytestmark = pytest.mark.skipif(not EXPORTED, reason="no exported runtime installed")


def _speeds_in_auto_order(extractor, compiled, probe) -> dict[str, float]:
    """Measured speeds as auto's order has them (what the mechanics tests assume): the
    exported runtimes faster than torch, the first of AUTO_ORDER fastest."""
    return {"torch": 1.0, **{n: 10.0 - k for k, n in enumerate(AUTO_ORDER) if n in compiled}}


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache of this test's own; auto's speed measurement favours AUTO_ORDER."""
    monkeypatch.setenv("IMGFEAT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(attach_mod, "measure_speeds", _speeds_in_auto_order)
    return cache_dir()


def _cfg(**kw) -> ModelConfig:
    return ModelConfig(**{**TINY, **kw})


def _x(n: int = 3) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("runtime", EXPORTED)
def test_exported_once_then_started_from_the_cache(cache, runtime, monkeypatch):
    cfg = _cfg(layers="1,final")
    ref = Extractor(cfg).embed(_x())
    first = Extractor(cfg, runtime=runtime)
    assert first.runtime == runtime and first.backbone is not None
    assert len(list((cache / "models").iterdir())) == 1
    assert first.runtime_error <= 1e-4

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(attach_mod, "export_onnx", no_export)
    again = Extractor(cfg, runtime=runtime)
    assert again.backbone is None and again.runtime == runtime  # no network built
    assert again.layout == first.layout and again.metadata()["weights"] == \
        first.metadata()["weights"]
    for ex in (first, again):
        v = ex.embed(_x())
        assert np.abs(v - ref).max() <= 1e-4 * np.abs(ref).max()


def test_a_cached_start_does_not_import_timm(cache):
    Extractor(_cfg(), runtime="auto")  # exports, measures (favouring AUTO_ORDER) and caches
    code = ("import sys, torch\nfrom imgfeat import Extractor, ModelConfig\n"
            f"ex = Extractor(ModelConfig(**{TINY!r}), runtime='auto')\n"
            "ex.embed(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))\n"
            "print(ex.runtime, ex.backbone is None, 'timm' in sys.modules)")
    r = fresh_python(code, env={"IMGFEAT_CACHE_DIR": str(cache.parent)})
    assert r.returncode == 0, r.stderr
    expected = next(r for r in AUTO_ORDER if r in EXPORTED)
    assert r.stdout.split() == [expected, "True", "False"]


def test_auto_picks_the_first_installed_runtime_and_records_it(cache, tmp_path):
    folder = random_class_folder(tmp_path / "imgs", 6, 2, 32, seed=2)
    res = extract(folder, tmp_path / "auto", progress=False, **TINY)
    ref = extract(folder, tmp_path / "torch", progress=False, runtime="torch", **TINY)
    expected = next(r for r in AUTO_ORDER if r in EXPORTED)
    assert res.runtime == expected and ref.runtime == "torch"
    x, _, _, meta = load_features(tmp_path / "auto")
    assert meta["runtime"] == expected and meta["versions"][expected]
    y = load_features(tmp_path / "torch")[0]
    assert np.abs(x - y).max() <= 1e-4 * np.abs(y).max()


def test_a_failed_export_falls_back_to_torch_with_one_warning(cache, monkeypatch):
    def fails(*args, **kwargs):
        raise RuntimeError("Unsupported: ONNX export of operator foo")

    monkeypatch.setattr(attach_mod, "export_onnx", fails)
    for _ in range(2):  # the second start remembers the failure and does not export again
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ex = Extractor(_cfg(), runtime="auto")
        ours = [w for w in caught if issubclass(w.category, ImgfeatWarning)]
        assert len(ours) == 1 and "running torch" in str(ours[0].message)
        assert "operator foo" in str(ours[0].message)
        assert ex.runtime == "torch" and ex.compiled is None and ex.backbone is not None
        monkeypatch.setattr(attach_mod, "export_onnx", lambda *a, **k: pytest.fail("again"))


def test_a_runtime_whose_maps_differ_is_not_used(cache, monkeypatch):
    monkeypatch.setattr(attach_mod, "TOLERANCE", {"fp32": -1.0})
    with pytest.warns(ImgfeatWarning, match="differs from torch"):
        ex = Extractor(_cfg(), runtime="auto")
    assert ex.runtime == "torch"


def test_runtime_mistakes_are_one_clear_error():
    with pytest.raises(ConfigError, match="unknown runtime"):
        check_runtime("tensorrt")
    with pytest.raises(ConfigError, match="not on GPU Ray actors"):
        check_runtime(EXPORTED[0], gpus=1)
    with pytest.raises(ConfigError, match="not on --device cuda"):
        check_runtime(EXPORTED[0], device="cuda")
    assert check_runtime("auto", device="cuda") == "auto"
    if "onnxruntime" in EXPORTED:
        with pytest.raises(ConfigError, match="fp32"):
            Extractor(_cfg(precision="bf16"), runtime="onnxruntime")


def test_auto_keeps_bf16_in_torch(cache):
    ex = Extractor(_cfg(precision="bf16"), runtime="auto")
    assert ex.runtime == "torch" and not (cache / "models").exists()


def test_a_failed_cache_entry_leaves_nothing(tmp_path):
    def fill(folder: Path) -> None:
        (folder / "model.onnx").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        publish_dir(tmp_path / "entry", fill)
    assert list(tmp_path.iterdir()) == []


def test_a_transient_export_failure_is_not_remembered(cache, monkeypatch):
    real = attach_mod.export_onnx

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(attach_mod, "export_onnx", disk_full)
    with pytest.warns(ImgfeatWarning, match="No space left"):
        assert Extractor(_cfg(), runtime="auto").runtime == "torch"
    monkeypatch.setattr(attach_mod, "export_onnx", real)
    assert Extractor(_cfg(), runtime="auto").runtime in EXPORTED  # tried again, and exported


def test_a_remembered_fallback_is_tried_again_for_another_network(cache, monkeypatch):
    from imgfeat.backbones import timm as timm_kind

    real = attach_mod.export_onnx
    monkeypatch.setattr(attach_mod, "export_onnx",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("op foo")))
    with pytest.warns(ImgfeatWarning, match="op foo"):
        Extractor(_cfg(), runtime="auto")
    monkeypatch.setattr(attach_mod, "export_onnx", real)
    with pytest.warns(ImgfeatWarning, match="remembered"):  # the same network: not again
        assert Extractor(_cfg(), runtime="auto").runtime == "torch"
    # another network under the same configuration (here: other random weights)
    monkeypatch.setattr(timm_kind, "RANDOM_INIT_SEED", timm_kind.RANDOM_INIT_SEED + 1)
    assert Extractor(_cfg(), runtime="auto").runtime in EXPORTED


def test_an_export_of_another_network_is_made_again(cache, monkeypatch):
    import imgfeat.pipeline as pipeline

    Extractor(_cfg(), runtime="auto")
    real = pipeline.create_backbone

    def altered(*args, **kwargs):  # another network under the same name and description
        backbone = real(*args, **kwargs)
        with torch.no_grad():
            next(backbone.parameters()).mul_(1.5)
        return backbone

    monkeypatch.setattr(pipeline, "create_backbone", altered)
    # met by a configuration with no cached start of its own, whose export has the same name
    ref = Extractor(_cfg(resize="squash")).embed(_x())
    ex = Extractor(_cfg(resize="squash"), runtime="auto")
    assert ex.runtime in EXPORTED and ex.backbone is not None  # built, checked, exported again
    assert np.abs(ex.embed(_x()) - ref).max() <= 1e-4 * np.abs(ref).max()
    assert len(list((cache / "models").iterdir())) == 1  # the stale export is gone


@pytest.mark.parametrize("runtime", EXPORTED)
def test_a_compiled_model_loads_where_the_cache_is_not(cache, runtime, monkeypatch, tmp_path):
    """What a Ray node or a spawned process receives: the model's bytes, loaded from its own
    cache (written once), to the same vectors."""
    import pickle

    ex = Extractor(_cfg(), runtime=runtime)
    blob, ref = pickle.dumps(ex), ex.embed(_x())
    cache.parent.rename(tmp_path / "moved")  # the sender's files are not on the node
    monkeypatch.setenv("IMGFEAT_CACHE_DIR", str(tmp_path / "node"))
    other = pickle.loads(blob)
    assert str(other.compiled.path).startswith(str(tmp_path / "node"))
    np.testing.assert_array_equal(other.embed(_x()), ref)
    pickle.loads(blob)  # the second time, from the node's cache
    assert len(list((tmp_path / "node" / "runtimes" / "models").iterdir())) == 1


def test_auto_runs_what_measures_fastest_torch_included(cache, monkeypatch, tmp_path):
    if len(EXPORTED) < 2:
        pytest.skip("needs both exported runtimes")
    monkeypatch.setattr(attach_mod, "measure_speeds", lambda ex, compiled, probe: {
        "torch": 5.0, "openvino": 2.0, "onnxruntime": 7.0})
    ex = Extractor(_cfg(), runtime="auto")
    assert ex.runtime == "onnxruntime" and ex.metadata()["runtime_speeds"]["onnxruntime"] == 7.0
    assert Extractor(_cfg(), runtime="auto").backbone is None  # the choice is cached


def test_auto_keeps_torch_without_a_warning_when_torch_is_fastest(cache, monkeypatch):
    monkeypatch.setattr(attach_mod, "measure_speeds", lambda ex, compiled, probe: {
        "torch": 9.0, **{n: 3.0 for n in compiled}})
    with warnings.catch_warnings():
        warnings.simplefilter("error", ImgfeatWarning)
        ex = Extractor(_cfg(), runtime="auto")
        assert ex.runtime == "torch" and ex.runtime_speeds["torch"] == 9.0
        monkeypatch.setattr(attach_mod, "export_onnx", lambda *a, **k: pytest.fail("again"))
        monkeypatch.setattr(attach_mod, "measure_speeds", lambda *a: pytest.fail("again"))
        again = Extractor(_cfg(), runtime="auto")  # remembered: not exported nor measured
    assert again.runtime == "torch" and again.metadata()["runtime_speeds"]["torch"] == 9.0


def test_the_speed_measurement_times_torch_and_each_runtime(cache):
    ex = Extractor(_cfg(), runtime=EXPORTED[0])
    probe = torch.randn(1, 3, 64, 64)
    speeds = attach_mod.measure_speeds(ex, {EXPORTED[0]: ex.compiled},
                                       probe) if ex.compiled else {}
    assert set(speeds) == {"torch", EXPORTED[0]} and min(speeds.values()) > 0


def test_a_start_cached_from_another_export_format_is_not_reused(cache, monkeypatch):
    """A start chosen from an export made the old way (or measured another way) is made
    again: its key holds the export format and the measurement's settings."""
    ex = Extractor(_cfg(), runtime="auto")
    key = attach_mod._start_key(ex, "auto")
    fmt = attach_mod.EXPORT_FORMAT
    monkeypatch.setattr(attach_mod, "EXPORT_FORMAT", fmt + 1)
    assert attach_mod._start_key(ex, "auto") != key
    monkeypatch.setattr(attach_mod, "EXPORT_FORMAT", fmt)
    assert attach_mod._start_key(ex, "auto") == key
    monkeypatch.setattr(attach_mod, "SPEED_ROUNDS", attach_mod.SPEED_ROUNDS + 1)
    assert attach_mod._start_key(ex, "auto") != key
