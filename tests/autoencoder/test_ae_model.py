"""FeXT network shapes, metrics against scikit-image, and the typed config."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from imgfeat.autoencoder import AEConfig, AutoEncoder, describe_shapes
from imgfeat.autoencoder.metrics import image_metrics, reconstruction_loss, ssim
from imgfeat.errors import ConfigError


def test_default_is_vgg16_shaped_with_documented_latent():
    cfg = AEConfig()
    assert cfg.widths == [64, 128, 256, 512, 512]
    assert cfg.latent_shape == (512, 8, 8)  # 256×256, depth 5
    assert describe_shapes(cfg).endswith("(latent 512×8×8 = 32768 values)")
    model = AutoEncoder(cfg)
    units = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(units) == 13  # VGG16's 13 convolutions: 2 + 2 + 3 + 3 + 3


@pytest.mark.parametrize("h,w,depth,latent", [(32, 32, 3, (16, 4, 4)), (24, 40, 3, (16, 3, 5)),
                                              (33, 47, 2, (8, 9, 12)), (16, 64, 4, (32, 1, 4))])
def test_encoder_and_reconstruction_shapes_square_and_not(h, w, depth, latent):
    cfg = AEConfig(height=h, width=w, depth=depth, base_width=4, max_width=32, kernel_size=5)
    assert cfg.latent_shape == latent
    model = AutoEncoder(cfg).eval()
    x = torch.rand(2, 3, h, w)
    with torch.no_grad():
        z, y = model.encode(x), model(x)
    assert tuple(z.shape) == (2, *latent)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1


def test_metrics_match_scikit_image():
    rng = np.random.default_rng(0)
    a = rng.random((3, 3, 20, 28))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    b[1] = a[1] * 0.5 + 0.25  # a different kind of distortion
    got = image_metrics(torch.from_numpy(a), torch.from_numpy(b))
    for n in range(3):
        ia, ib = a[n].transpose(1, 2, 0), b[n].transpose(1, 2, 0)
        ref_ssim = structural_similarity(ia, ib, data_range=1.0, channel_axis=-1,
                                         gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False)
        assert got["ssim"][n].item() == pytest.approx(ref_ssim, abs=1e-9)
        assert got["psnr"][n].item() == pytest.approx(
            peak_signal_noise_ratio(ia, ib, data_range=1.0), abs=1e-9)
        assert got["mae"][n].item() == pytest.approx(np.abs(ia - ib).mean())
        cos = (ia * ib).sum() / np.linalg.norm(ia) / np.linalg.norm(ib)
        assert got["cosine"][n].item() == pytest.approx(cos)
    assert ssim(torch.from_numpy(a), torch.from_numpy(a)).tolist() == pytest.approx([1, 1, 1])


def test_loss_with_ssim_term_is_differentiable():
    x = torch.rand(2, 3, 16, 16)
    y = torch.rand(2, 3, 16, 16, requires_grad=True)
    loss = reconstruction_loss(y, x, "mae", ssim_weight=0.5)
    loss.backward()
    assert y.grad is not None and loss.item() > reconstruction_loss(y, x, "mae").item()


def test_config_toml_round_trip_and_checks(tmp_path):
    cfg = AEConfig(height=48, width=64, lr=3e-4, hflip=True, loss="mae", resize="crop")
    path = tmp_path / "c.toml"
    path.write_text(cfg.to_toml())
    assert AEConfig.load(path) == cfg
    (tmp_path / "t.toml").write_text("[ae]\nepochs = 3\nlr = 1\n")
    assert AEConfig.load(tmp_path / "t.toml").lr == 1.0  # an int is a fine float
    (tmp_path / "u.toml").write_text("epochs = 3\nlearning_rate = 0.1\n")
    with pytest.raises(ConfigError, match="unknown key 'learning_rate' in u.toml"):
        AEConfig.load(tmp_path / "u.toml")
    with pytest.raises(ConfigError, match="epochs in overrides must be int"):
        cfg.override(epochs="many")
    with pytest.raises(ConfigError, match="loss must be one of mse, mae"):
        cfg.override(loss="l3")
    with pytest.raises(ConfigError, match="at least 2\\*\\*depth"):
        AEConfig(height=16, width=16, depth=5)
    assert cfg.override(depth=2, height=8, width=8).latent_shape == (128, 2, 2)
