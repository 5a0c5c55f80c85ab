"""FeXT training: it learns, it resumes to the bit, its files load safely, bad input is one line."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from imgfeat.autoencoder import AEConfig, train
from imgfeat.autoencoder.checkpoint import load_into, load_state, read_weights, state_path
from imgfeat.autoencoder.model import AutoEncoder
from imgfeat.errors import ConfigError, ModelError, SourceError, StoreError, WeightsError


def tiny_images(root: Path, n: int = 8, h: int = 16, w: int = 16, seed: int = 0) -> Path:
    """``n`` smooth colour images (gradients and a bright square) an autoencoder can learn."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:h, 0:w]
    for k in range(n):
        a = np.stack([(xx / w) * rng.uniform(50, 250), (yy / h) * rng.uniform(50, 250),
                      np.full((h, w), rng.uniform(0, 255))], -1)
        y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        a[y0:y0 + h // 3, x0:x0 + w // 3] = 255
        Image.fromarray(a.astype(np.uint8)).save(root / f"img{k:02d}.png")
    return root


#: a tiny network that trains in well under a second per epoch
TINY = dict(height=16, width=16, depth=2, base_width=4, batch_size=4, precision="fp32",
            progress=False)


def test_loss_falls_when_overfitting_a_few_images(tmp_path):
    data = tiny_images(tmp_path / "imgs", n=4)
    cfg = AEConfig(**TINY, epochs=25, lr=1e-2, val_fraction=0.0, test_fraction=0.0,
                   scheduler="none")
    res = train(data, tmp_path / "run", cfg)
    losses = [row["train_loss"] for row in res.history]
    assert res.stopped == "completed" and res.epochs_done == 25
    assert losses[-1] < 0.5 * losses[0]


class Interrupt:
    """An on_epoch_end callback that presses Ctrl-C after epoch ``k``."""

    def __init__(self, k: int):
        self.k = k

    def __call__(self, epoch: int, row: dict) -> None:
        if epoch == self.k:
            raise KeyboardInterrupt


def test_run_stopped_after_epoch_k_and_resumed_equals_uninterrupted(tmp_path):
    data = tiny_images(tmp_path / "imgs", n=10)
    cfg = AEConfig(**TINY, epochs=4, shift=0.2, hflip=True, vflip=True, seed=3)
    whole = train(data, tmp_path / "whole", cfg)
    cut = train(data, tmp_path / "cut", cfg, on_epoch_end=Interrupt(2))
    assert cut.stopped == "interrupted" and cut.epochs_done == 2
    assert load_state(state_path(tmp_path / "cut", "last"))["epoch"] == 2  # Ctrl-C kept it
    resumed = train(data, tmp_path / "cut", cfg, resume=True)
    assert resumed.stopped == "completed" and resumed.epochs_done == 4
    a, _ = read_weights(tmp_path / "whole" / "last.safetensors")
    b, _ = read_weights(tmp_path / "cut" / "last.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit for bit, BatchNorm buffers included
    sa = load_state(state_path(tmp_path / "whole", "last"))
    sb = load_state(state_path(tmp_path / "cut", "last"))
    for pa, pb in zip(sa["optimizer"]["state"].values(), sb["optimizer"]["state"].values(),
                      strict=True):
        assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert [r["train_loss"] for r in whole.history] == [r["train_loss"] for r in resumed.history]
    # and a different seed really gives different weights (the comparison can fail)
    other = train(data, tmp_path / "other", cfg.override(seed=4, epochs=1))
    c, _ = read_weights(other.run / "last.safetensors")
    assert not torch.equal(a["encoder.blocks.0.0.0.weight"], c["encoder.blocks.0.0.0.weight"])


def test_checkpoints_load_without_unrestricted_pickle(tmp_path):
    data = tiny_images(tmp_path / "imgs", n=6)
    run = train(data, tmp_path / "run", AEConfig(**TINY, epochs=1)).run
    for name in ("best", "last"):
        with safe_open(str(run / f"{name}.safetensors"), "pt") as fh:
            assert fh.metadata()["format"] == "imgfeat-ae"
        state = torch.load(run / f"{name}.state.pt", weights_only=True)
        assert {"optimizer", "scheduler", "epoch", "rng", "split"} <= set(state)
        assert sorted(state["split"]) == ["test", "train", "val"]

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    evil = tmp_path / "evil.state.pt"
    evil.write_bytes(pickle.dumps({"epoch": 1, "x": Evil()}, protocol=2))
    with pytest.raises(WeightsError, match="cannot read training state"):
        load_state(evil)


def test_split_is_deterministic_and_saved(tmp_path):
    import json

    data = tiny_images(tmp_path / "imgs", n=10)
    cfg = AEConfig(**TINY, epochs=1, val_fraction=0.2, test_fraction=0.2)
    s1 = json.loads((train(data, tmp_path / "a", cfg).run / "split.json").read_text())
    s2 = json.loads((train(data, tmp_path / "b", cfg).run / "split.json").read_text())
    assert s1 == s2 and [len(s1[k]) for k in ("train", "val", "test")] == [6, 2, 2]
    assert sorted(s1["train"] + s1["val"] + s1["test"]) == sorted(
        p.name for p in (tmp_path / "imgs").iterdir())


def test_early_stopping(tmp_path):
    data = tiny_images(tmp_path / "imgs", n=6)
    res = train(data, tmp_path / "run", AEConfig(**TINY, epochs=10, patience=2, min_delta=1.0))
    assert res.stopped == "early-stopped" and res.epochs_done == 3 and res.best_epoch == 1


def test_resume_with_a_changed_config_is_refused(tmp_path):
    data = tiny_images(tmp_path / "imgs", n=6)
    cfg = AEConfig(**TINY, epochs=2)
    train(data, tmp_path / "run", cfg)
    saved = (tmp_path / "run" / "config.toml").read_text()
    with pytest.raises(ConfigError, match="changed config: lr"):
        train(data, tmp_path / "run", cfg.override(lr=0.5), resume=True)
    with pytest.raises(StoreError, match="already holds a run"):
        train(data, tmp_path / "run", cfg)
    with pytest.raises(StoreError, match="nothing to resume"):
        train(data, tmp_path / "empty", cfg, resume=True)
    assert (tmp_path / "run" / "config.toml").read_text() == saved  # never overwritten
    # runtime settings may change on resume
    res = train(data, tmp_path / "run", cfg.override(workers=2), resume=True)
    assert res.epochs_done == 2


def test_corrupt_images_are_skipped_and_counted(tmp_path):
    data = tiny_images(tmp_path / "imgs", n=6)
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (data / "empty.jpg").write_bytes(b"")
    res = train(data, tmp_path / "run", AEConfig(**TINY, epochs=1, val_fraction=0.0,
                                                 test_fraction=0.0))
    assert res.n_failed == 2 and res.n_train == 6
    failures = (tmp_path / "run" / "failures.csv").read_text()
    assert "broken.png" in failures and "empty.jpg" in failures


def test_bad_inputs_give_one_clear_error(tmp_path):
    (tmp_path / "none").mkdir()
    with pytest.raises(SourceError, match="no images"):
        train(tmp_path / "none", tmp_path / "r1", AEConfig(**TINY))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"nope")
    with pytest.raises(SourceError, match="none of the 1 images could be read"):
        train(bad, tmp_path / "r2", AEConfig(**TINY, val_fraction=0, test_fraction=0))


def test_a_checkpoint_from_another_architecture_is_refused():
    small = AutoEncoder(AEConfig(**TINY))
    wider = AutoEncoder(AEConfig(**{**TINY, "base_width": 8}))
    with pytest.raises(ModelError, match="another architecture"):
        load_into(small, wider.state_dict(), "wider.safetensors")


def test_tensorboard_log_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    data = tiny_images(tmp_path / "imgs", n=6)
    run = train(data, tmp_path / "run", AEConfig(**TINY, epochs=2)).run
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    log = (run / "log.csv").read_text().splitlines()
    assert log[0] == "epoch,train_loss,val_loss,lr,seconds,images_per_s" and len(log) == 3


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_trains(tmp_path, precision):
    import warnings

    data = tiny_images(tmp_path / "imgs", n=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # emulated on CPUs without native support
        res = train(data, tmp_path / "run", AEConfig(**{**TINY, "precision": precision},
                                                     epochs=2))
    assert res.epochs_done == 2 and all(np.isfinite(r["train_loss"]) for r in res.history)
    state = load_state(state_path(res.run, "last"))
    assert bool(state["scaler"]) == (precision == "fp16")


def test_patch_training_crops_inside_each_image_and_encodes_whole_images(tmp_path):
    from imgfeat.autoencoder.data import augment, random_patches

    gen = torch.Generator().manual_seed(0)
    batch = torch.arange(2 * 3 * 32 * 24, dtype=torch.float32).reshape(2, 3, 32, 24)
    crops = random_patches(batch, 8, gen)
    assert crops.shape == (2, 3, 8, 8)
    for i in range(2):  # each crop is a window of its own image (found by its corner value)
        y, x = divmod(int(crops[i, 0, 0, 0].item()) - i * 3 * 32 * 24, 24)
        assert torch.equal(crops[i], batch[i, :, y:y + 8, x:x + 8])
    cfg = AEConfig(**{**TINY, "height": 32, "width": 24}, patch=8, hflip=True)
    assert augment(batch, cfg, gen).shape == (2, 3, 8, 8)
    with pytest.raises(ConfigError, match="patch must be"):
        AEConfig(**TINY, patch=2)  # below 2**depth
    with pytest.raises(ConfigError, match="patch must be"):
        AEConfig(**TINY, patch=17)
    # training on 8x8 patches of 16x16 images: the loss falls; validation and the encoder
    # take whole images (the latent of the documented 16x16 input)
    data = tiny_images(tmp_path / "imgs", n=6)
    res = train(data, tmp_path / "run", AEConfig(**TINY, patch=8, epochs=15, lr=1e-2,
                                                 scheduler="none"))
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    from imgfeat.backbones.registry import create_backbone
    from imgfeat.config import ModelConfig

    enc = create_backbone(ModelConfig(model=f"ae:{tmp_path / 'run'}")).select("all")
    with torch.no_grad():
        maps = enc(torch.rand(1, 3, 16, 16))
    assert list(maps.values())[-1].shape == (1, 8, 4, 4)
