import subprocess
import sys

from imgfeat.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "imgfeat.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_demo_runs_offline_and_reports(tmp_path):
    r = run_cli("demo", "-o", str(tmp_path / "demo"), "-q")
    assert r.returncode == 0, r.stderr
    assert "ImageNet weights from packaged" in r.stdout
    acc = [float(line.split("%")[0].split()[-1]) for line in r.stdout.splitlines()
           if line.startswith("accuracy")]
    assert len(acc) == 2 and min(acc) > 80.0
    assert (tmp_path / "demo" / "features" / "_imgfeat.json").is_file()


def test_extract_cli_and_errors(tmp_path, image_folder, capsys):
    args = ["extract", str(image_folder), "-o", str(tmp_path / "o"), "--model",
            "test_efficientnet", "--no-pretrained", "--img-size", "64", "-q"]
    assert main(args) == 0
    assert "15 ok, 0 failed" in capsys.readouterr().out
    assert main(args) == 2
    assert "use --resume" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["extract", str(tmp_path / "nope"), "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("imgfeat: error: source not found") and err.count("\n") == 1
    assert not (tmp_path / "x").exists()
    assert main(["extract", str(image_folder), "-o", str(tmp_path / "y"), "--model", "resnt18"]) == 2
    assert "did you mean" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()


def test_failed_items_exit_code(tmp_path, image_folder, capsys):
    (image_folder / "cats" / "broken.png").write_bytes(b"\x89PNG garbage")
    args = ["extract", str(image_folder), "-o", str(tmp_path / "o"), "--model",
            "test_efficientnet", "--no-pretrained", "--img-size", "64", "-q"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "15 ok, 1 failed" in out and "failures.csv" in out
    assert main(args[:-1] + ["-o", str(tmp_path / "s"), "--strict"]) == 1
    assert "cats/broken.png" in capsys.readouterr().err


def test_models_and_info(capsys):
    assert main(["models", "efficientnet_lite"]) == 0
    out = capsys.readouterr().out
    assert "tf_efficientnet_lite0" in out and "packaged offline" in out
    assert main(["info", "test_efficientnet", "--img-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "stage" in out and "catavgmax" in out and "blocks.0" in out


def test_sample(tmp_path, image_folder, capsys):
    assert main(["sample", str(image_folder), "-n", "6", "-o", str(tmp_path / "s")]) == 0
    assert "wrote 6 images in 3 classes" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "s").iterdir() if not p.name.startswith(".")) == [
        "cats", "dogs", "owls"]


def test_slow_precision_is_one_warning_line(tmp_path, image_folder, capsys, monkeypatch):
    import torch

    import imgfeat.runner as runner

    # decide "native bf16" both ways, whatever this CPU has
    for native in (False, True):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda n=native: n)
        out = tmp_path / f"o{native}"
        assert main(["extract", str(image_folder), "-o", str(out), "--model", "test_efficientnet",
                     "--no-pretrained", "--img-size", "64", "--precision", "bf16", "-q"]) == 0
        err = capsys.readouterr().err
        warned = [line for line in err.splitlines() if line.startswith("imgfeat: warning:")]
        if native:
            assert not warned
        else:
            assert len(warned) == 1 and "bf16" in warned[0] and "--precision fp32" in warned[0]
            assert "Warning" not in err  # no Python traceback-style warning text
    assert runner.slow_precision("fp32", "cpu") is None
    assert runner.slow_precision("bf16", "cuda") is None
