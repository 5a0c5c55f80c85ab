"""VORTEX equals the authors' algorithm (scabini/VORTEX: models.py VORTEX, RNN.py RAE and LCG),
recomputed here step by step as their code does it: the ViT's ``forward_intermediates`` over
every block with timm's fused attention off (their ``set_fused_attn(False)``), the maps stacked
so every token of every block is a row of d channels, ``normalize(dim=1)`` over those rows, then
one image at a time and one encoder at a time: a Linear layer with their LCG weights
(orthonormalised) and bias 1, a sigmoid, and ``torch.linalg.lstsq``; summed over encoders."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
import torch.nn.functional as F

from imgfeat import Extractor, create_pooling
from imgfeat.backbones.timm import TimmBackbone
from imgfeat.config import ModelConfig
from imgfeat.pooling.vortex import VortexPool
from tests.pooling.test_radam_reference import authors_encoding, authors_lcg, authors_orthogonal


def unfused(net: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``net`` that computes attention as their code asks (no fused kernel)."""
    net = copy.deepcopy(net).float().eval()
    for module in net.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    return net


def authors_tokens(net: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Their feature call: ``_, x = forward_intermediates(x, indices=None)``: every block."""
    with torch.no_grad():
        _, maps = net.forward_intermediates(x, indices=None)
    return list(maps)


def authors_vortex(maps: list[torch.Tensor], M: int = 16, Q: int = 1,
                   pos_encoding: bool = False) -> torch.Tensor:
    """Their VORTEX forward, one image and one encoder at a time, in float64."""
    x = torch.stack(maps, dim=1).double()  # b l d h w
    b, depth, d, h, w = x.shape
    x = x.permute(0, 1, 3, 4, 2).reshape(b, depth * h * w, d)  # 'b l d w h -> b (l w h) d'
    x = F.normalize(x, p=2.0, dim=1, eps=1e-10)
    if pos_encoding:  # their RAE's encoding: the same grid encoding stacked for every block
        enc = authors_encoding(d, h, w).reshape(d, h * w).T.double()
        x = x + torch.vstack([enc for _ in range(depth)])[None]
    out = []
    for image in x:
        total = torch.zeros(Q * d, dtype=torch.float64)
        for i in range(M):
            hidden = torch.nn.Linear(d, Q, bias=True).double()
            with torch.no_grad():
                hidden.weight.copy_(authors_orthogonal(authors_lcg(Q, d, i * Q * d)))
                hidden.bias.fill_(1.0)
                H = torch.sigmoid(hidden(image))  # (N, Q)
            total += torch.linalg.lstsq(H, image).solution.reshape(Q * d)
        out.append(total)
    return torch.stack(out)


def _images(n: int, size: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


def _close(ours: torch.Tensor, ref: torch.Tensor) -> None:
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours.double(), ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())


def test_extraction_equals_authors_on_test_vit():
    """The whole pipeline (decode-free: uint8 batch -> vectors) against their per-image code
    on test_vit (a class token, dropped by forward_intermediates as in theirs), 6 blocks."""
    ex = Extractor(ModelConfig(model="test_vit", pretrained=False, img_size=64, pool="vortex",
                               precision="fp32"))
    x = _images(3, 64)
    ours = torch.from_numpy(ex.embed(x))
    dc = ex.data_config
    xn = (x.float() / 255 - torch.tensor(dc["mean"]).view(1, 3, 1, 1)) / torch.tensor(
        dc["std"]).view(1, 3, 1, 1)
    maps = authors_tokens(unfused(ex.backbone.model), xn)
    assert len(maps) == 6 and ex.layer_spec == "0,1,2,3,4,5"
    _close(ours, authors_vortex(maps))
    assert ours.shape == (3, 64)


@pytest.mark.parametrize("kwargs", [{"reg_tokens": 4}, {"class_token": False, "reg_tokens": 2,
                                                        "global_pool": "avg"}])
def test_backbone_and_pooling_equal_authors_with_prefix_tokens(kwargs):
    """A ViT with a class token and 4 register tokens, and one with registers only: the
    prefix tokens are dropped (timm's default, theirs), only patch tokens are samples."""
    torch.manual_seed(0)
    net = timm.create_model("test_vit", pretrained=False, img_size=64, **kwargs).eval()
    assert net.num_prefix_tokens == (2 if "class_token" in kwargs else 5)
    backbone = TimmBackbone(net).select("all")
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        maps = backbone(x)
    pool = VortexPool()
    ours = pool.pool_maps([maps[t.name] for t in backbone.layers.taps])
    _close(ours, authors_vortex(authors_tokens(unfused(net), x)))


@pytest.mark.parametrize("m,hidden_units", [(4, 1), (3, 2)])
def test_pooling_equals_authors_for_other_m_and_q(m, hidden_units):
    """Other M, and Q = 2 (their lstsq; ours a float64 solve with a vanishing ridge)."""
    g = torch.Generator().manual_seed(0)
    maps = [torch.randn(2, 12, 5, 5, generator=g) + 0.2 * i for i in range(4)]
    ours = VortexPool(m=m, hidden=hidden_units, ridge=1e-12).pool_maps(maps)
    _close(ours, authors_vortex(maps, M=m, Q=hidden_units))


def test_positional_option_adds_their_grid_encoding_once():
    """Their ``pos_encoding=True`` adds the grid encoding to every block's tokens. (Their RAE
    adds it in place to the tensor all encoders share, so encoder k sees it k + 1 times; ours
    adds it once, for every encoder, as the paper describes.)"""
    g = torch.Generator().manual_seed(0)
    maps = [torch.randn(2, 12, 3, 5, generator=g) for _ in range(3)]
    ours = VortexPool(positional=True).pool_maps(maps)
    _close(ours, authors_vortex(maps, pos_encoding=True))
    assert not torch.allclose(ours, VortexPool().pool_maps(maps))


def test_rows_do_not_depend_on_the_batch_and_weights_are_the_lcg_stream():
    g = torch.Generator().manual_seed(0)
    maps = [torch.randn(5, 16, 4, 4, generator=g) for _ in range(3)]
    pool = VortexPool(m=5)
    together = pool.pool_maps(maps)
    alone = torch.cat([pool.pool_maps([m[i:i + 1] for m in maps]) for i in range(5)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)
    for k in range(5):
        ref = authors_orthogonal(authors_lcg(1, 16, k * 16)).float()
        torch.testing.assert_close(pool._weights(16, "cpu")[k], ref, rtol=0, atol=1e-6)


def test_cnn_stages_are_aggregated_as_radam_does():
    """Stages of different shapes cannot be rows of one width: they are resized to the middle
    stage and their channels stacked (RADAM's aggregation), then encoded as VORTEX does."""
    from imgfeat.pooling.elm import aggregate_maps

    g = torch.Generator().manual_seed(0)
    maps = [torch.rand(2, 6, 16, 16, generator=g), torch.rand(2, 10, 8, 8, generator=g),
            torch.rand(2, 14, 4, 4, generator=g)]
    ours = VortexPool(m=4).pool_maps(maps)
    assert ours.shape == (2, 30)
    _close(ours, authors_vortex([aggregate_maps(maps)], M=4))
    ex = Extractor(ModelConfig(model="test_efficientnet", pretrained=False, img_size=64,
                               pool="vortex", precision="fp32"))
    assert ex.embed(_images(2, 64)).shape == (2, sum(t.channels for t in ex.layers.taps))


def test_parameters_and_cli(tmp_path):
    p = create_pooling("vortex", m=8, stages="last")
    assert p.get_params() == {"m": 8, "hidden": 1, "weights": "lcg", "seed": 0,
                              "positional": False, "ridge": 1e-3, "stages": "last"}
    assert create_pooling("vortex").m == 16  # their class's default
    from imgfeat.cli import main

    out = tmp_path / "f"
    img = tmp_path / "imgs" / "a"
    img.mkdir(parents=True)
    from PIL import Image

    for i in range(2):
        Image.fromarray(_images(1, 48, seed=i)[0].permute(1, 2, 0).numpy()).save(img / f"{i}.png")
    code = main(["extract", str(tmp_path / "imgs"), "-o", str(out), "--model", "test_vit",
                 "--no-pretrained", "--img-size", "64", "--pool", "vortex", "--m", "4",
                 "--format", "npy", "--precision", "fp32", "-q"])
    assert code == 0
    import imgfeat

    X, _, _, meta = imgfeat.load_features(out)
    assert X.shape == (2, 64)
    assert meta["pooling"] == {"name": "vortex", "params": {
        "m": 4, "hidden": 1, "weights": "lcg", "seed": 0, "positional": False, "ridge": 1e-3,
        "stages": "all"}}
