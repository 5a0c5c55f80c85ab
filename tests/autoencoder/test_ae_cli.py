"""``imgfeat ae train|evaluate|report`` from the command line."""

from __future__ import annotations

import pytest

from imgfeat.cli import main
from tests.autoencoder.test_ae_train import tiny_images

SMALL = ["--height", "16", "--width", "24", "--depth", "2", "--base-width", "4", "--epochs", "2",
         "--batch-size", "4", "--precision", "fp32", "--no-progress"]


def test_train_evaluate_report(tmp_path, capsys):
    data = tiny_images(tmp_path / "imgs", n=10)
    cfg = tmp_path / "c.toml"
    cfg.write_text("lr = 0.005\nhflip = true\n")
    run = tmp_path / "run"
    assert main(["ae", "train", str(data), "-o", str(run), "--config", str(cfg), *SMALL]) == 0
    out, err = capsys.readouterr()
    assert "completed: 2 epochs" in out and "latent 8×4×6" in err
    saved = (run / "config.toml").read_text()
    assert "lr = 0.005" in saved and "hflip = true" in saved and "width = 24" in saved
    assert main(["ae", "evaluate", str(run), "--worst", "1"]) == 0
    out, _ = capsys.readouterr()
    assert "psnr" in out and "worst 1:" in out
    assert main(["ae", "report", str(data), "-o", str(tmp_path / "rep")]) == 0
    assert "10 images, 10 readable" in capsys.readouterr().out
    # a resume that changes a setting is refused with one line; the same settings are accepted
    assert main(["ae", "train", str(data), "-o", str(run), "--resume", "--lr", "0.1"]) == 2
    assert "changed config: lr" in capsys.readouterr().err
    assert main(["ae", "train", str(data), "-o", str(run), "--resume", "--workers", "1"]) == 0


@pytest.mark.parametrize("setup,args,message", [
    ("unknown", ["--config", "{cfg}"], "unknown key 'colour'"),
    ("empty", [], "no images found"),
    ("plain", ["--loss", "l3"], "invalid choice"),
])
def test_bad_input_is_one_line(tmp_path, capsys, setup, args, message):
    data = tmp_path / "imgs"
    if setup == "empty":
        data.mkdir()
    else:
        tiny_images(data, n=4)
    cfg = tmp_path / "c.toml"
    cfg.write_text("colour = 'red'\n")
    argv = ["ae", "train", str(data), "-o", str(tmp_path / "run"),
            *[a.format(cfg=cfg) for a in args], *SMALL]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run" / "last.safetensors").exists()


def test_help_shows_settings_with_defaults(capsys):
    assert main(["ae", "train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--base-width" in out and "(default: 64)" in out and "--hflip, --no-hflip" in out
