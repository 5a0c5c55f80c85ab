"""Model names pick the backbone kind: plain names are timm, ``ae:``/``flim:`` our own kinds,
``hf-hub:``/``local-dir:`` timm's schemes, a Windows path is not a scheme."""

from __future__ import annotations

import json

import pytest
import timm
import torch

from imgfeat import ModelConfig, ModelError, extract
from imgfeat.backbones import create_backbone, parse_model_name, register_backbone_kind
from imgfeat.backbones.registry import StrideNotSupported
from imgfeat.cli import main


@pytest.mark.parametrize("name,expected", [
    ("resnet50.a1_in1k", ("timm", "resnet50.a1_in1k")),
    ("ae:runs/texture", ("ae", "runs/texture")),
    ("ae:C:\\runs\\x", ("ae", "C:\\runs\\x")),
    ("flim:model.flim", ("flim", "model.flim")),
    ("hf-hub:timm/resnet18.a1_in1k", ("timm", "hf-hub:timm/resnet18.a1_in1k")),
    ("local-dir:/models/x", ("timm", "local-dir:/models/x")),
    ("C:\\models\\x", ("timm", "C:\\models\\x")),
])
def test_names_pick_their_kind(name, expected):
    assert parse_model_name(name) == expected


def test_unknown_scheme_and_empty_location_are_one_line():
    with pytest.raises(ModelError, match="unknown model scheme 'foo:'.*ae:.*flim:"):
        parse_model_name("foo:bar")
    with pytest.raises(ModelError, match="give a location after 'ae:'"):
        parse_model_name("ae:")


def test_registering_a_kind_and_refusing_twice():
    with pytest.raises(ValueError, match="registered twice"):
        register_backbone_kind("ae", lambda location, cfg: None)
    with pytest.raises(ValueError, match="bad backbone scheme"):
        register_backbone_kind("hf-hub", lambda location, cfg: None)


def test_local_dir_goes_to_timm_and_is_hashed(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(5)
    model = timm.create_model("test_efficientnet", pretrained=False)
    (tmp_path / "config.json").write_text(json.dumps({
        "architecture": "test_efficientnet", "num_classes": model.num_classes,
        "pretrained_cfg": model.pretrained_cfg}, default=str))
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))
    backbone = create_backbone(ModelConfig(model=f"local-dir:{tmp_path}"))
    assert torch.equal(backbone.model.conv_stem.weight, model.conv_stem.weight)
    assert backbone.weights.source == "local-dir" and len(backbone.weights.sha256) == 64


def test_stride_fallback_catches_only_unsupported_strides(tmp_path):
    """RADAM on a model without output_stride falls back; a mistyped model is reported as such."""
    vit = create_backbone(ModelConfig(model="test_vit", pretrained=False), multi_stage=True)
    assert vit.output_stride is None
    with pytest.raises(StrideNotSupported):
        create_backbone(ModelConfig(model="test_vit", pretrained=False, output_stride=8))
    with pytest.raises(ModelError, match="did you mean.*test_efficientnet"):
        create_backbone(ModelConfig(model="test_eficientnet", pool="radam"), multi_stage=True)


@pytest.mark.parametrize("argv,message", [
    (["info", "test_vit", "--output-stride", "8"], "does not support output_stride 8"),
    (["info", "tf_efficientnet_lite0.wrongtag"], "unknown weights tag 'wrongtag'"),
    (["info", "nosuch:thing"], "unknown model scheme"),
])
def test_info_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_radam_with_a_mistyped_model_says_did_you_mean(tmp_path, capsys, image_folder):
    code = main(["extract", str(image_folder), "-o", str(tmp_path / "o"), "--model",
                 "test_efficientnt", "--pool", "radam", "--no-pretrained", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "did you mean" in err[0], err
    assert not (tmp_path / "o").exists()


def test_gem_on_the_pooled_vector_is_refused_and_applied_on_the_final_map(tmp_path, image_folder):
    with pytest.raises(Exception, match="does not apply to layers 'pooled'"):
        extract(image_folder, tmp_path / "a", model="test_efficientnet", pretrained=False,
                img_size=64, layers="pooled", pool="gem", progress=False)
    from imgfeat import load_features

    avg = extract(image_folder, tmp_path / "avg", model="test_efficientnet", pretrained=False,
                  img_size=64, precision="fp32", pool="avg", layers="final", progress=False)
    gem = extract(image_folder, tmp_path / "gem", model="test_efficientnet", pretrained=False,
                  img_size=64, precision="fp32", pool="gem", progress=False)
    Xa, *_ = load_features(avg.output)
    Xg, _, _, meta = load_features(gem.output)
    assert meta["layers"] == "final" and meta["pooling"]["name"] == "gem"
    assert Xa.shape == Xg.shape and not (abs(Xa - Xg) < 1e-6).all()


@pytest.mark.parametrize("kind", ["ae", "flim"])
def test_our_kinds_extract_show_info_and_refuse_resume_after_the_file_changed(
        kind, tmp_path, image_folder, capsys):
    """``--model ae:RUN`` / ``flim:MODEL`` through the CLI; the file's hash guards resume."""
    from imgfeat.store import StoreError
    from tests.test_contract import KINDS

    name = KINDS[kind](tmp_path)
    out = tmp_path / "feats"
    assert main(["extract", str(image_folder), "-o", str(out), "--model", name,
                 "--layers", "all", "--pool", "avg", "--precision", "fp32", "-q"]) == 0
    assert main(["info", name]) == 0
    assert "stage" in capsys.readouterr().out
    path = next(p for p in (tmp_path.glob("*.safetensors")))
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        header = fh.metadata()
    key = next(iter(tensors))
    tensors[key] = tensors[key] + 1
    save_file(tensors, str(path), metadata=header)
    with pytest.raises(StoreError, match="another configuration"):
        extract(image_folder, out, model=name, layers="all", pool="avg", precision="fp32",
                resume=True, progress=False)
