import numpy as np
import pytest
import torch

from imgfeat import ConfigError, Extractor, create_pooling, model_info
from imgfeat.config import ModelConfig
from imgfeat.pooling.elm import (
    aggregate_maps,
    elm_decoder,
    encoder_weights,
    lcg_stream,
    positional_encoding_2d,
)
from imgfeat.pooling.radam import select_stages
from tests.conftest import TINY


def test_closed_form_equals_lstsq():
    torch.manual_seed(0)
    X = torch.randn(3, 10, 25, dtype=torch.float64)
    W = encoder_weights(4, 1, 10).double()
    beta = elm_decoder(X, W)  # (B, m, 1, z)
    for b in range(3):
        for k in range(4):
            g = torch.sigmoid(W[k] @ X[b])  # (1, N)
            ref = torch.linalg.lstsq(g.T, X[b].T).solution  # (1, z)
            torch.testing.assert_close(beta[b, k], ref, rtol=1e-8, atol=1e-10)


def test_ridge_solve_for_several_hidden_units():
    torch.manual_seed(1)
    X = torch.randn(2, 12, 40, dtype=torch.float64)
    W = encoder_weights(2, 3, 12, "torch", seed=3).double()
    beta = elm_decoder(X, W, ridge=1e-3)
    for b in range(2):
        for k in range(2):
            G = torch.sigmoid(W[k] @ X[b])  # (q, N)
            ref = torch.linalg.solve(G @ G.T + 1e-3 * torch.eye(3, dtype=G.dtype), G @ X[b].T)
            torch.testing.assert_close(beta[b, k], ref)
    # with no ridge it is the least-squares solution
    beta0 = elm_decoder(X, W, ridge=0.0)
    ref0 = torch.linalg.lstsq(torch.sigmoid(W[0] @ X[0]).T, X[0].T).solution
    torch.testing.assert_close(beta0[0, 0], ref0, rtol=1e-6, atol=1e-8)


def test_lcg_stream_and_weights():
    s = lcg_stream(5)
    assert s[0] == 1 and s[1] == (75 * 1 + 74) % 65537 and s[2] == (75 * s[1] + 74) % 65537
    w = encoder_weights(4, 1, 16)
    torch.testing.assert_close(w.norm(dim=-1), torch.ones(4, 1))
    assert torch.equal(w, encoder_weights(4, 1, 16))  # reproducible
    assert not torch.equal(encoder_weights(2, 1, 16, "torch", 1), encoder_weights(2, 1, 16,
                                                                                "torch", 2))


def test_aggregation_normalises_resizes_and_handles_non_square():
    maps = [torch.rand(2, 3, 16, 24), torch.rand(2, 5, 8, 12), torch.rand(2, 7, 4, 6)]
    X = aggregate_maps(maps)
    assert X.shape == (2, 15, 4, 6)  # stage round(3 / 2) = 2 sets the size
    torch.testing.assert_close(X[:, 8:].flatten(2).norm(dim=-1), torch.ones(2, 7))  # not resized
    pe = positional_encoding_2d(15, 8, 12)
    assert pe.shape == (15, 8, 12) and pe.abs().max() <= 1
    v = create_pooling("radam").pool_maps(maps)
    assert v.shape == (2, 15) and torch.isfinite(v).all()


def test_stage_selection():
    assert select_stages(5, "all") == [0, 1, 2, 3, 4]
    assert select_stages(5, "last") == [4] and select_stages(4, "middle") == [1]
    assert select_stages(8, "quarter") == [1] and select_stages(8, "top_quarter") == [5]
    assert select_stages(2, "quarter") == [1]  # the authors' index -1
    with pytest.raises(ConfigError):
        create_pooling("radam", stages="bottom")


def test_batch_independence_and_seeds():
    ex = Extractor(ModelConfig(**TINY, pool="radam"))
    x = torch.randint(0, 256, (5, 3, 64, 64), dtype=torch.uint8)
    together = ex.embed(x)
    alone = np.concatenate([ex.embed(x[i:i + 1]) for i in range(5)])
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-5)
    again = Extractor(ModelConfig(**TINY, pool="radam")).embed(x)
    np.testing.assert_array_equal(together, again)
    t1 = Extractor(ModelConfig(**TINY, pool="radam", pool_args=(("seed", 1), ("weights", "torch"))))
    t2 = Extractor(ModelConfig(**TINY, pool="radam", pool_args=(("seed", 2), ("weights", "torch"))))
    assert not np.allclose(t1.embed(x), t2.embed(x))
    assert ex.metadata()["pooling"]["params"]["weights"] == "lcg"
    assert ex.output_stride == 8


@pytest.mark.parametrize("model, size", [("resnet50", 3904), ("convnext_nano", 1200)])
def test_descriptor_size_is_the_sum_of_stage_channels(model, size):
    assert sum(s["channels"] for s in model_info(model)["stages"]) == size
    ex = Extractor(ModelConfig(model=model, pretrained=False, img_size=64, pool="radam"))
    assert ex.dim == size
    assert ex.embed(torch.zeros(2, 3, 64, 64, dtype=torch.uint8)).shape == (2, size)


def test_hidden_units_multiply_the_size():
    ex = Extractor(ModelConfig(**TINY, pool="radam", pool_args=(("hidden", 3),)))
    assert ex.dim == 3 * 184


def test_spectral_is_one_autoencoder_with_bias_and_flattened_decoder():
    torch.manual_seed(2)
    maps = [torch.rand(2, 6, 8, 10), torch.rand(2, 4, 4, 5)]
    pool = create_pooling("spectral", hidden=3, ridge=0.0)
    v = pool.pool_maps(maps).double()
    assert v.shape == (2, 3 * 10)
    X = aggregate_maps(maps).flatten(2).double()
    Wb = encoder_weights(1, 3, 11).double()[0]  # (q, z + 1): weights, then the bias column
    for b in range(2):
        G = torch.sigmoid(Wb[:, :-1] @ X[b] + Wb[:, -1:])  # (q, N)
        ref = torch.linalg.lstsq(G.T, X[b].T).solution  # (q, z)
        torch.testing.assert_close(v[b], ref.flatten(), rtol=2e-3, atol=2e-3)
    # not RADAM under another name: no positional encoding, no sum over encoders
    radam = create_pooling("radam", m=1, hidden=3, ridge=0.0).pool_maps(maps)
    assert not torch.allclose(radam.double(), v, atol=1e-2)


def test_spectral_through_the_extractor_and_cli(tmp_path):
    import imgfeat
    from imgfeat.cli import main

    ex = Extractor(ModelConfig(**TINY, pool="spectral", pool_args=(("hidden", 2),)))
    assert ex.dim == 2 * 184 and ex.output_stride == 8
    x = torch.randint(0, 256, (4, 3, 48, 80), dtype=torch.uint8)  # non-square
    together = ex.embed(x)
    alone = np.concatenate([ex.embed(x[i:i + 1]) for i in range(4)])
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-5)
    arr = np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    np.save(tmp_path / "X.npy", arr)
    assert main(["extract", "--data", str(tmp_path / "X.npy"), "-o", str(tmp_path / "f"),
                 "--model", "test_efficientnet", "--no-pretrained", "--img-size", "64",
                 "--pool", "spectral", "--hidden", "2", "--stages", "last", "-q"]) == 0
    X, _, _, meta = imgfeat.load_features(tmp_path / "f")
    assert X.shape == (3, 2 * ex.layout[0]["map_shape"][-1][0])
    assert meta["pooling"]["name"] == "spectral" and meta["pooling"]["params"]["hidden"] == 2
    assert main(["extract", "--data", str(tmp_path / "X.npy"), "-o", str(tmp_path / "g"),
                 "--model", "test_efficientnet", "--no-pretrained", "--pool", "spectral",
                 "--m", "3", "-q"]) == 2  # --m belongs to radam only
