"""RADAM equals the authors' algorithm (scabini/RADAM: models.py RADAM, RNN.py LCG,
make_orthogonal, positionalencoding2d), recomputed here step by step as their code does it: one
image at a time, one encoder at a time, ``torch.linalg.lstsq``, their stored LCG stream from x0 = 1,
their interleaved sine/cosine encoding, torchvision's Resize to the middle stage's size (no
antialiasing on tensors, as in their torchvision 0.13)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from imgfeat import Extractor
from imgfeat.config import ModelConfig
from imgfeat.pooling.elm import positional_encoding_2d
from imgfeat.pooling.radam import RadamPool, select_stages


def authors_stream(length: int = 2**18) -> torch.Tensor:
    """Their ``RAE_LCG_weights.pkl``: x0 = 1, x_{n+1} = (75 x_n + 74) mod 65537."""
    values = [1]
    for _ in range(length - 1):
        values.append((75 * values[-1] + 74) % 65537)
    return torch.tensor(values, dtype=torch.float64)


STREAM = authors_stream()


def authors_lcg(m: int, n: int, seed: int) -> torch.Tensor:
    if m * n == 1:
        return torch.ones((1, 1))
    v = STREAM[seed:seed + m * n]
    v = (v - v.mean()) / v.std()
    return v.reshape(m, n)


def authors_orthogonal(t: torch.Tensor) -> torch.Tensor:
    rows, cols = t.shape
    flat = t.clone()
    if rows < cols:
        flat = flat.t()
    q, r = torch.linalg.qr(flat)
    q = q * torch.diag(r).sign()
    return q.t() if rows < cols else q


def authors_encoding(d_model: int, height: int, width: int) -> torch.Tensor:
    orig = d_model
    if d_model % 4:
        d_model += 2
    pe = torch.zeros(d_model, height, width)
    half = d_model // 2
    div = torch.exp(torch.arange(0.0, half, 2) * -(math.log(10000.0) / half))
    for i, f in enumerate(div):
        for col in range(width):
            pe[2 * i, :, col] = math.sin(col * f)
            pe[2 * i + 1, :, col] = math.cos(col * f)
        for row in range(height):
            pe[half + 2 * i, row, :] = math.sin(row * f)
            pe[half + 2 * i + 1, row, :] = math.cos(row * f)
    return pe[:orig]


def authors_radam(fmaps: list[torch.Tensor], M: int = 4) -> torch.Tensor:
    """Their forward for square maps, per sample and per encoder (Q = 1)."""
    s = fmaps[int(np.round(len(fmaps) / 2))].shape[2]
    z = sum(f.shape[1] for f in fmaps)
    flat = []
    for f in fmaps:
        f = F.normalize(f.double(), p=2.0, dim=(2, 3), eps=1e-10)
        f = TF.resize(f, [s, s], antialias=False) if f.shape[-1] != s else f
        flat.append(f.flatten(2))
    pe = authors_encoding(z, s, s).reshape(z, s * s).double()
    alphas = [authors_orthogonal(authors_lcg(1, z, k * z)) for k in range(M)]
    out = []
    for b in range(fmaps[0].shape[0]):
        meta = torch.vstack([x[b] for x in flat]) + pe
        pooled = torch.zeros(1, z, dtype=torch.float64)
        for alpha in alphas:
            H = torch.sigmoid(alpha @ meta)
            pooled += torch.linalg.lstsq(H.t(), meta.t()).solution
        out.append(torch.nan_to_num(pooled))
    return torch.stack(out).flatten(1)


def test_stream_starts_as_their_file():
    from imgfeat.pooling.elm import lcg_stream

    assert list(lcg_stream(4)) == [1, 149, 11249, 57305]
    assert np.array_equal(lcg_stream(), STREAM.numpy().astype(np.int64))


@pytest.mark.parametrize("z", [8, 10, 14])
def test_encoding_and_weights_match_theirs(z):
    torch.testing.assert_close(positional_encoding_2d(z, 5, 5), authors_encoding(z, 5, 5),
                               rtol=0, atol=1e-6)
    w = RadamPool()._weights(z, "cpu")
    for k in range(4):
        ref = authors_orthogonal(authors_lcg(1, z, k * z)).float()
        torch.testing.assert_close(w[k], ref, rtol=0, atol=1e-6)


def test_odd_channel_counts_are_padded_to_a_multiple_of_four():
    """Their code fails for an odd channel count; ours pads to a multiple of 4 and cuts back."""
    pe = positional_encoding_2d(13, 4, 6)
    torch.testing.assert_close(pe, authors_encoding(16, 4, 6)[:13])


def test_pooling_equals_authors_on_random_maps():
    g = torch.Generator().manual_seed(0)
    maps = [torch.rand(3, 6, 16, 16, generator=g), torch.rand(3, 10, 8, 8, generator=g) - 0.3,
            torch.rand(3, 14, 8, 8, generator=g), torch.rand(3, 12, 4, 4, generator=g)]
    ours = RadamPool().pool_maps(maps)
    ref = authors_radam(maps).float()
    assert ours.shape == ref.shape == (3, 42)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())


@pytest.mark.parametrize("model", ["test_resnet", "test_efficientnet"])
def test_extraction_equals_authors_end_to_end(model):
    """Our batched extraction vs their per-image RADAM over a features_only model at output
    stride 8 (their fallback order), same random weights and images."""
    ex = Extractor(ModelConfig(model=model, pretrained=False, img_size=64, pool="radam",
                               precision="fp32"))
    x = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator()
                      .manual_seed(1))
    ours = torch.from_numpy(ex.embed(x))
    torch.manual_seed(0)
    try:
        net = timm.create_model(model, features_only=True, pretrained=False, output_stride=8)
    except Exception:  # noqa: BLE001 - their order: 8, then 32, then the default
        net = timm.create_model(model, features_only=True, pretrained=False)
    assert ex.output_stride in (8, 32, None)
    state = ex_state(ex)
    assert set(net.state_dict()) <= set(state)  # every weight of theirs comes from ours
    net.load_state_dict({k: v for k, v in state.items() if k in net.state_dict()})
    dc = ex.data_config
    xn = (x.float() / 255 - torch.tensor(dc["mean"]).view(1, 3, 1, 1)) / torch.tensor(
        dc["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        fmaps = net.eval()(xn)
    ref = authors_radam(list(fmaps)).float()
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())


def ex_state(ex: Extractor) -> dict:
    """The unfused weights of the extractor's network (fold_bn undone) under timm's names."""
    reference = Extractor(ModelConfig(**{**ex.cfg.__dict__, "fold_bn": False}))
    return {k.split("model.", 1)[1]: v for k, v in reference.backbone.state_dict().items()
            if k.startswith("model.")}


@pytest.mark.parametrize("n,expected", [(5, {"last": 4, "middle": 2, "quarter": 1,
                                              "top_quarter": 3}),
                                         (4, {"last": 3, "middle": 1, "quarter": 0,
                                              "top_quarter": 2})])
def test_single_stage_choice_is_theirs(n, expected):
    for name, index in expected.items():
        assert select_stages(n, name) == [index]
