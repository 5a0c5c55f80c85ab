"""Mean+std and bilinear (covariance) pooling: values against direct computations, options on
the command line and in ``imgfeat info``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from imgfeat import Extractor, ModelConfig, create_pooling
from imgfeat.errors import ConfigError


def test_meanstd_is_mean_then_population_std():
    x = torch.randn(3, 5, 4, 6, generator=torch.Generator().manual_seed(0))
    v = create_pooling("meanstd")(x)
    flat = x.flatten(2).double().numpy()
    expect = np.concatenate([flat.mean(-1), flat.std(-1)], axis=1)
    np.testing.assert_allclose(v.numpy(), expect, rtol=1e-5, atol=1e-6)
    assert create_pooling("meanstd").out_features(5, 4, 6) == 10


def _bilinear_by_hand(x: np.ndarray, center: bool) -> np.ndarray:
    """One image (z, N): the k×k average outer product, signed square root, whole matrix
    flattened and L2-normalised."""
    if center:
        x = x - x.mean(1, keepdims=True)
    m = x @ x.T / x.shape[1]
    m = np.sign(m) * np.sqrt(np.abs(m))
    flat = m.ravel()
    return flat / np.linalg.norm(flat)


@pytest.mark.parametrize("statistic", ["bilinear", "covariance"])
def test_bilinear_equals_the_whole_matrix_in_dot_products(statistic):
    """The upper triangle with off-diagonals × √2 has the dot products (and norms) of the
    whole signed-square-rooted, normalised matrix; z ≤ k: no reduction."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 6, 5, 5, generator=g) + 0.5
    pool = create_pooling("bilinear", k=8, statistic=statistic)
    v = pool.pool_maps([x]).double().numpy()
    assert v.shape == (3, 21) == (3, pool.out_features(6, 5, 5))
    ref = np.stack([_bilinear_by_hand(xi.flatten(1).double().numpy(), statistic == "covariance")
                    for xi in x])
    np.testing.assert_allclose(v @ v.T, ref @ ref.T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-6)
    diag = [i * 6 - i * (i - 1) // 2 for i in range(6)]  # triu positions of (i, i)
    np.testing.assert_allclose(v[:, diag], ref[:, [i * 7 for i in range(6)]], rtol=1e-5,
                               atol=1e-6)


def test_bilinear_reduces_channels_with_a_fixed_seeded_projection():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 40, 4, 4, generator=g)
    a = create_pooling("bilinear", k=5)
    v = a.pool_maps([x])
    assert v.shape == (2, 15)
    P = torch.randn(5, 40, generator=torch.Generator().manual_seed(0)) / math.sqrt(5)
    y = torch.einsum("kz,bzn->bkn", P, x.flatten(2)).double().numpy()
    ref = np.stack([_bilinear_by_hand(yi, False) for yi in y])
    np.testing.assert_allclose(v.double().numpy() @ v.double().numpy().T, ref @ ref.T,
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a.pool_maps([x]), v)  # the same projection every call
    other = create_pooling("bilinear", k=5, projection_seed=1).pool_maps([x])
    assert not torch.allclose(other, v)
    assert torch.allclose(a.pool_maps([x[:1]]), v[:1], atol=1e-6)  # batch independent


def test_bilinear_several_stages_are_aggregated_as_radam_does():
    from imgfeat.pooling.elm import aggregate_maps

    g = torch.Generator().manual_seed(3)
    maps = [torch.rand(2, 4, 8, 8, generator=g), torch.rand(2, 6, 4, 4, generator=g)]
    pool = create_pooling("bilinear", k=16, stages="all")
    torch.testing.assert_close(pool.pool_maps(maps), pool.pool_maps([aggregate_maps(maps)]))


def test_bilinear_stages_through_the_extractor():
    """Default: the last stage; ``stages='all'`` pools every stage; sizes as announced."""
    ex = Extractor(ModelConfig(model="test_efficientnet", pretrained=False, img_size=64,
                               pool="bilinear", pool_args=(("k", 8),), precision="fp32"))
    n = len(ex.backbone.feature_info)
    assert ex.layer_spec == str(n - 1)
    assert ex.dim == 36
    x = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    assert ex.embed(x).shape == (2, 36)
    every = Extractor(ModelConfig(model="test_efficientnet", pretrained=False, img_size=64,
                                  pool="bilinear", pool_args=(("stages", "all"),)))
    assert every.layer_spec == ",".join(str(i) for i in range(n))


def test_bad_options_are_one_clear_error():
    with pytest.raises(ConfigError, match="statistic"):
        create_pooling("bilinear", statistic="median")
    with pytest.raises(ConfigError, match="k must"):
        create_pooling("bilinear", k=0)


def test_cli_flags_and_info_table(tmp_path, capsys):
    from imgfeat.cli import main

    assert main(["info", "test_efficientnet", "--img-size", "64"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("layers"))
    for pool in ("meanstd", "vortex", "bilinear"):
        assert pool in header.split()
    from PIL import Image

    (tmp_path / "imgs" / "a").mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.full((40, 40, 3), 40 * i, np.uint8)).save(tmp_path / "imgs" / "a"
                                                                    / f"{i}.png")
    code = main(["extract", str(tmp_path / "imgs"), "-o", str(tmp_path / "f"), "--model",
                 "test_efficientnet", "--no-pretrained", "--img-size", "64", "--pool",
                 "bilinear", "--bilinear-k", "6", "--bilinear-statistic", "covariance",
                 "--bilinear-seed", "3", "--format", "npy", "-q"])
    assert code == 0
    import imgfeat

    X, _, _, meta = imgfeat.load_features(tmp_path / "f")
    assert X.shape == (2, 21)
    assert meta["pooling"]["params"] == {"k": 6, "statistic": "covariance", "stages": "last",
                                         "projection_seed": 3}
    assert main(["extract", str(tmp_path / "imgs"), "-o", str(tmp_path / "g"), "--model",
                 "test_efficientnet", "--no-pretrained", "--pool", "meanstd",
                 "--bilinear-k", "6", "-q"]) != 0
    assert "--bilinear-k applies to --pool bilinear" in capsys.readouterr().err
