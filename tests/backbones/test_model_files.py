"""Model files (backbones/modelfile.py): one reader and writer for ``ae:``, ``flim:`` and
``--weights``; a hostile or impossible header is one line (exit 2), never a traceback or an
allocation of terabytes; the output stride of a fixed-stride kind is known without rebuilding."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from imgfeat.autoencoder.checkpoint import save_weights
from imgfeat.autoencoder.config import AEConfig
from imgfeat.autoencoder.model import AutoEncoder
from imgfeat.backbones.modelfile import (
    MAX_PARAMETERS,
    Footprint,
    ModelFileKind,
    check_footprint,
    measure,
    read_model_file,
    write_model_file,
)
from imgfeat.backbones.registry import StrideNotSupported, create_backbone
from imgfeat.cli import main
from imgfeat.config import ModelConfig
from imgfeat.errors import ModelError, WeightsError
from imgfeat.flim.network import FORMAT as FLIM_FORMAT
from imgfeat.flim.network import FlimNetwork, load_model, save_model

ARCH = {"features": {"type": "sequential", "layers": {
    "conv1": {"operation": "conv2d", "params": {
        "kernel_size": 3, "padding": 1, "number_of_kernels_per_marker": 2, "out_channels": 4,
        "activation": {"operation": "relu"}}}}}}
KIND = ModelFileKind("test-kind/1", "a test model file", "test model")


def flim_file(path, **header) -> str:
    """A file tagged as a FLIM model with the given raw header strings."""
    meta = {"format": FLIM_FORMAT, "architecture": json.dumps(ARCH),
            "input": json.dumps({"size": [16, 16], "color": "rgb"})}
    meta.update(header)
    save_file({"x": torch.zeros(1)}, str(path), metadata=meta)
    return str(path)


def one_error_line(argv, capsys) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


def test_write_read_round_trip_and_refusals(tmp_path):
    net = nn.Conv2d(3, 2, 1)
    digest = write_model_file(tmp_path / "m.safetensors", net, KIND,
                              {"architecture": {"k": 1}, "provenance": {"n": [1, 2]}})
    tensors, header = read_model_file(tmp_path / "m.safetensors", KIND)
    assert header == {"architecture": {"k": 1}, "provenance": {"n": [1, 2]}}
    assert torch.equal(tensors["weight"], net.weight) and len(digest) == 64
    assert read_model_file(tmp_path / "m.safetensors", KIND, header_only=True)[0] == {}
    with pytest.raises(ModelError, match="test model not found"):
        read_model_file(tmp_path / "none.safetensors", KIND)
    (tmp_path / "junk").write_bytes(b"junk")
    with pytest.raises(ModelError, match="junk is not a test model file: not a safetensors"):
        read_model_file(tmp_path / "junk", KIND)
    other = ModelFileKind("other/1", "another file", "other", WeightsError)
    with pytest.raises(WeightsError, match="format 'test-kind/1', expected 'other/1'"):
        read_model_file(tmp_path / "m.safetensors", other)


def test_measure_counts_without_allocating_and_the_limits():
    fp = measure(lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()),
                 lambda m, x: m(x), (3, 10, 20), "toy")
    assert fp == Footprint(parameters=3 * 4 * 9 + 4, activations=2 * 4 * 10 * 20)
    # a terabyte network is measured in a blink: the meta device holds shapes, not values
    huge = measure(lambda: nn.Conv2d(3, 64, 3, padding=1), lambda m, x: m(x),
                   (3, 200_000, 200_000), "huge")
    assert huge.activations == 64 * 200_000 ** 2
    with pytest.raises(ModelError, match=r"huge: its architecture needs about .* GiB for one "
                                         r"image .* more than this machine's 16.0 GiB"):
        check_footprint(huge, "huge", memory=16 * 2 ** 30)
    with pytest.raises(ModelError, match="over the limit"):
        check_footprint(Footprint(MAX_PARAMETERS + 1, 0), "big", memory=2 ** 60)
    check_footprint(fp, "toy", memory=2 ** 30)
    with pytest.raises(ModelError, match="bad: its architecture cannot be built"):
        measure(lambda: nn.Conv2d(3, 4, 9), lambda m, x: m(x), (3, 4, 4), "bad")


def test_flim_header_that_is_not_json_is_one_line(tmp_path, capsys, image_folder):
    bad = flim_file(tmp_path / "bad.safetensors", architecture="{not json")
    with pytest.raises(ModelError, match="header field 'architecture' is not valid JSON"):
        load_model(bad)
    line = one_error_line(["extract", str(image_folder), "-o", str(tmp_path / "o"), "--model",
                           f"flim:{bad}", "-q"], capsys)
    assert "not valid JSON" in line
    line = one_error_line(["flim", "validate", bad, str(image_folder)], capsys)
    assert "not valid JSON" in line
    odd = flim_file(tmp_path / "odd.safetensors", input=json.dumps({"size": "big"}))
    with pytest.raises(ModelError, match="input.size"):
        load_model(odd)


def test_flim_architecture_asking_for_terabytes_is_one_line(tmp_path, capsys, image_folder):
    wide = {"features": {"type": "sequential", "layers": {"conv1": {
        "operation": "conv2d", "params": {"kernel_size": 3, "padding": 1,
                                          "number_of_kernels_per_marker": 1,
                                          "out_channels": 4096}}}}}
    path = flim_file(tmp_path / "tb.safetensors", architecture=json.dumps(wide),
                     input=json.dumps({"size": [100_000, 100_000], "color": "lab"}))
    with pytest.raises(ModelError, match="tb.safetensors: its architecture needs about"):
        load_model(path)
    line = one_error_line(["extract", str(image_folder), "-o", str(tmp_path / "o"), "--model",
                           f"flim:{path}", "-q"], capsys)
    assert "more than this machine's" in line and not (tmp_path / "o").exists()
    # a sane model asked for at a size that cannot fit is refused the same way
    ok = save_model(tmp_path / "ok.safetensors", FlimNetwork(ARCH, (16, 16), "rgb"))
    with pytest.raises(ModelError, match="more than this machine's"):
        create_backbone(ModelConfig(model=f"flim:{ok}", img_size=3_000_000))


def test_ae_architecture_asking_for_terabytes_is_one_line(tmp_path, capsys, image_folder):
    model = AutoEncoder(AEConfig(height=16, width=16, depth=2, base_width=4, max_width=8))
    run = tmp_path / "run"
    run.mkdir()
    save_weights(run / "best.safetensors", model)
    # the same tensors under a header claiming a 1,000,000-pixel-square input
    from imgfeat.backbones.modelfile import read_tensors

    tensors, meta = read_tensors(run / "best.safetensors")
    arch = json.loads(meta["architecture"])
    meta["architecture"] = json.dumps({**arch, "height": 1_000_000, "width": 1_000_000})
    save_file(tensors, str(run / "best.safetensors"), metadata=meta)
    line = one_error_line(["extract", str(image_folder), "-o", str(tmp_path / "o"), "--model",
                           f"ae:{run}", "-q"], capsys)
    assert "best.safetensors: its architecture needs about" in line, line
    line = one_error_line(["ae", "evaluate", str(run), str(image_folder)], capsys)
    assert "best.safetensors: its architecture needs about" in line, line
    meta["architecture"] = json.dumps({**arch, "base_width": 2_000_000, "max_width": 2_000_000})
    save_file(tensors, str(run / "best.safetensors"), metadata=meta)
    line = one_error_line(["info", f"ae:{run}"], capsys)
    assert "over the limit of 2,000,000,000" in line, line


def test_weights_file_of_another_shape_is_one_line(tmp_path):
    import timm

    from imgfeat.backbones.timm import create_timm_model

    state = timm.create_model("test_efficientnet", pretrained=False).state_dict()
    key = next(k for k, v in state.items() if v.ndim == 4)
    state[key] = torch.zeros(1, 1, 1, 1)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    with pytest.raises(WeightsError, match=rf"does not fit the model: {key} is \(1, 1, 1, 1\)"):
        create_timm_model(ModelConfig(model="test_efficientnet", weights=str(tmp_path / "w.safetensors")))


def test_fixed_stride_kinds_are_built_once(tmp_path, monkeypatch):
    """ae:/flim: declare a fixed stride at registration: a multi-stage pooling builds them once
    (not once per stride tried), and another stride is refused before a second build."""
    import imgfeat.autoencoder.backbone as aeb

    model = AutoEncoder(AEConfig(height=32, width=32, depth=4, base_width=4, max_width=8))
    save_weights(tmp_path / "best.safetensors", model)
    calls = []
    real = aeb.read_weights
    monkeypatch.setattr(aeb, "read_weights", lambda p: calls.append(p) or real(p))
    bb = create_backbone(ModelConfig(model=f"ae:{tmp_path}"), multi_stage=True)
    assert bb.output_stride is None and len(calls) == 1  # its stride is 16: neither 8 nor 32
    with pytest.raises(StrideNotSupported, match="fixed output stride \\(16\\)"):
        create_backbone(ModelConfig(model=f"ae:{tmp_path}", output_stride=8))
    assert len(calls) == 2
    assert create_backbone(ModelConfig(model=f"ae:{tmp_path}", output_stride=16)).output_stride == 16
