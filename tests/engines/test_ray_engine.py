"""The ray engine (Ray Data, an actor pool) on a local Ray cluster shared by these tests gives the
local engine's vectors: from S3 to S3, with an actor killed mid-run, and after the driver is
SIGKILLed and the job resumed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from imgfeat import ConfigError, extract, load_features
from tests.conftest import TINY, random_class_folder

pytest.importorskip("ray", reason="the ray extra is not installed")

RUN = {**TINY, "shard_size": 4, "progress": False}


@pytest.fixture
def reference(image_folder, tmp_path):
    extract(image_folder, tmp_path / "ref", **RUN)
    return load_features(tmp_path / "ref")


def test_s3_to_s3_with_ray_equals_local_folder(ray_cluster, s3, image_folder, reference):
    src = s3.upload(image_folder, s3.prefix("imgs"))
    out = s3.prefix("ray-out")
    res = extract(src, out, **RUN, engine="ray", storage_options=s3.options)
    assert (res.ok, res.shards) == (15, 4)
    X, y, ids, meta = load_features(out, storage_options=s3.options)
    X0, y0, ids0, _ = reference
    assert ids == ids0 and list(y) == list(y0) and meta["complete"]
    np.testing.assert_allclose(X, X0, rtol=1e-5, atol=1e-6)


def test_actor_killed_once_mid_run(ray_cluster, image_folder, reference, tmp_path):
    from imgfeat.engines import unregister_engine
    from tests.ray_faults import register

    ray_cluster.fault_file.write_text("2")  # the actor that gets shard 2 dies, once
    try:
        res = extract(image_folder, tmp_path / "o", **RUN, engine=register())
    finally:
        unregister_engine("ray-dying")
    assert not ray_cluster.fault_file.exists()
    assert ray_cluster.fault_file.with_name("kill-one-actor.claimed").exists()
    assert (res.ok, res.shards, res.shards_skipped) == (15, 4, 0)
    X, _, ids, _ = load_features(tmp_path / "o")
    assert ids == reference[2]
    np.testing.assert_allclose(X, reference[0], rtol=1e-5, atol=1e-6)


def test_driver_sigkilled_then_resumed(ray_cluster, tmp_path):
    root = random_class_folder(tmp_path / "many", n=48, classes=3, side=32, seed=1)
    local = ["--model", "test_efficientnet", "--no-pretrained", "--img-size", "64",
             "--shard-size", "4", "--batch-size", "2", "-q"]
    args = [*local, "--engine", "ray", "--ray-address", ray_cluster.address]
    cli = [sys.executable, "-m", "imgfeat.cli", "extract", str(root), "-o"]
    out = tmp_path / "killed"
    proc = subprocess.Popen([*cli, str(out), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not list(
            (out / "_manifests").glob("*.json")):
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, _, ids, meta = load_features(out)
    assert 0 < len(ids) < 48 and not meta["complete"]
    resumed = subprocess.run([*cli, str(out), *args, "--resume"], capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    one = subprocess.run([*cli, str(tmp_path / "one"), *local], capture_output=True, text=True,
                         timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    X0, _, ids0, _ = load_features(tmp_path / "one")
    X, _, ids, meta = load_features(out)
    assert ids == ids0 and meta["complete"]
    np.testing.assert_allclose(X, X0, rtol=1e-5, atol=1e-6)
    assert not list(out.rglob(".tmp-*"))


def test_ray_options_need_the_ray_engine(image_folder, tmp_path):
    with pytest.raises(ConfigError, match="--engine ray"):
        extract(image_folder, tmp_path / "o", **RUN, gpus_per_worker=1)


def test_unreachable_cluster_is_one_error_and_leaves_no_output(image_folder, tmp_path):
    """Ray retries a wrong address for minutes; we check it first (in a fresh process: this one
    is connected to the shared test cluster)."""
    from imgfeat.engines.ray_cluster import unreachable

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "o"
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "imgfeat.cli", "extract", str(image_folder), "-o", str(out),
         "--model", "test_efficientnet", "--no-pretrained", "--img-size", "64",
         "--engine", "ray", "--ray-address", f"127.0.0.1:{port}", "-q"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and time.perf_counter() - t0 < 60, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [
        f"imgfeat: error: cannot reach the Ray cluster at 127.0.0.1:{port}: Connection refused"]
    assert not out.exists()
    assert unreachable("auto") is None and unreachable("ray://head:10001") is None
    assert unreachable("head") == "not HOST:PORT, auto or ray://HOST:PORT ('head')"


def test_cli_starts_and_stops_its_own_local_cluster(image_folder, reference, tmp_path):
    """Without an address the engine starts a local cluster in a background thread (while the
    driver lists the images and builds the network), runs on it, and stops it."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = tmp_path / "own"
    done = subprocess.run(
        [sys.executable, "-m", "imgfeat.cli", "extract", str(image_folder), "-o", str(out),
         "--model", "test_efficientnet", "--no-pretrained", "--img-size", "64",
         "--precision", "fp32", "--shard-size", "4", "--engine", "ray", "-q"],
        capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    X, _, ids, meta = load_features(out)
    assert ids == reference[2] and meta["complete"]
    np.testing.assert_allclose(X, reference[0], rtol=1e-5, atol=1e-6)


def test_small_clusters_run_one_thread_per_actor(ray_cluster, image_folder, reference, tmp_path,
                                                 monkeypatch):
    """On the 2-CPU test cluster the pool asks for 2 actors of 1 CPU (1 torch thread) each."""
    import ray.data

    seen = {}
    real = ray.data.Dataset.map_batches

    def spy(self, fn, **kw):
        seen.update(threads=kw["fn_constructor_kwargs"]["threads"], cpus=kw["num_cpus"],
                    max_size=kw["compute"].max_size)
        return real(self, fn, **kw)

    monkeypatch.setattr(ray.data.Dataset, "map_batches", spy)
    extract(image_folder, tmp_path / "o", **RUN, engine="ray")
    assert seen == {"threads": 1, "cpus": 1, "max_size": 2}
    np.testing.assert_allclose(load_features(tmp_path / "o")[0], reference[0], rtol=1e-5,
                               atol=1e-6)


def test_gpu_actors_on_a_cluster_without_gpus(image_folder, tmp_path, caplog):
    """A local cluster cannot grow: GPU actors it cannot place are one clear error (Ray would wait
    for them forever); a joined cluster may add GPU nodes, so it is a warning there."""
    from imgfeat.engines.ray_cluster import check_gpus

    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "CUDA_VISIBLE_DEVICES")}
    env["CUDA_VISIBLE_DEVICES"] = ""  # no GPU for the local cluster, even on a GPU machine
    out = tmp_path / "gpu"
    done = subprocess.run(
        [sys.executable, "-m", "imgfeat.cli", "extract", str(image_folder), "-o", str(out),
         "--model", "test_efficientnet", "--no-pretrained", "--img-size", "64",
         "--engine", "ray", "--gpus-per-worker", "1", "-q"],
        capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("imgfeat:")]
    assert lines == ["imgfeat: error: --gpus-per-worker 1: the Ray cluster has 0 GPU(s) "
                     "(a local cluster started here has the GPUs torch sees)"], done.stderr
    assert not out.exists()  # the run made the folder: nothing of it is left
    check_gpus({"CPU": 8, "GPU": 2}, 0.5, local=True)  # fits: nothing said
    with caplog.at_level("WARNING", logger="imgfeat.engines.ray_cluster"):
        check_gpus({"CPU": 8}, 1, local=False)
    assert "has 0 GPU(s) now; waiting for its autoscaler" in caplog.text


def test_actors_run_the_exported_runtime(ray_cluster, image_folder, tmp_path):
    from imgfeat.runtimes import installed_runtimes

    exported = installed_runtimes()[1:]
    if not exported:
        pytest.skip("no exported runtime installed")
    ref = extract(image_folder, tmp_path / "torch", **RUN, runtime="torch")
    res = extract(image_folder, tmp_path / "o", **RUN, engine="ray", runtime=exported[0])
    assert (ref.runtime, res.runtime, res.ok) == ("torch", exported[0], 15)
    X, _, ids, meta = load_features(tmp_path / "o")
    X0, _, ids0, _ = load_features(tmp_path / "torch")
    assert ids == ids0 and meta["runtime"] == exported[0]
    assert np.abs(X - X0).max() <= 1e-4 * np.abs(X0).max()
    with pytest.raises(ConfigError, match="not on GPU Ray actors"):
        extract(image_folder, tmp_path / "g", **RUN, engine="ray", runtime=exported[0],
                gpus_per_worker=1)
