import json
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

import imgfeat
from imgfeat import ItemsFailedError, StoreError, extract, load_features
from tests.conftest import TINY, random_class_folder


@pytest.fixture
def reference(image_folder, tmp_path):
    extract(image_folder, tmp_path / "ref", **TINY, shard_size=4, progress=False, num_workers=0)
    return load_features(tmp_path / "ref")


@pytest.mark.parametrize("fmt", ["parquet", "npy", "csv"])
def test_every_format_round_trips(image_folder, tmp_path, reference, fmt):
    out = tmp_path / fmt
    res = extract(image_folder, out, **TINY, format=fmt, shard_size=4, progress=False)
    assert (res.items, res.ok, res.failed, res.shards) == (15, 15, 0, 4)
    X, y, ids, meta = load_features(out)
    X0, y0, ids0, _ = reference
    assert ids == ids0 and list(y) == list(y0)
    np.testing.assert_allclose(X, X0, rtol=1e-6, atol=1e-6)
    assert meta["model"] == "test_efficientnet" and meta["weights"]["source"] == "random"
    assert meta["data_config"]["input_size"] == [3, 64, 64]
    assert len(meta["config_hash"]) == 16
    assert meta["versions"]["torch"]


def test_parquet_schema_and_metadata(image_folder, tmp_path):
    extract(image_folder, tmp_path / "o", **TINY, progress=False)
    table = pq.read_table(tmp_path / "o" / "data" / "part-00000.parquet")
    assert table.column_names == ["id", "path", "label", "split", "vector"]
    vtype = table.schema.field("vector").type
    assert vtype.list_size == 256 and str(vtype.value_type) == "float"
    meta = json.loads(table.schema.metadata[b"imgfeat"])
    assert meta["pooling"]["name"] == "avg" and meta["layout"][0]["layer"] == "pooled"
    # the folder itself is a Parquet dataset that other tools read
    assert pq.read_table(tmp_path / "o").num_rows == 15


def test_orange_csv_header(image_folder, tmp_path):
    extract(image_folder, tmp_path / "o", **TINY, format="csv", progress=False)
    header = (tmp_path / "o" / "features.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["cD#Class", "C#n0", "C#n1"] and header[257:] == ["mS#id", "mS#path"]
    X, y, _, _ = load_features(tmp_path / "o" / "features.csv")
    assert X.shape == (15, 256) and y[0] == "cats"


def test_npy_files(image_folder, tmp_path):
    extract(image_folder, tmp_path / "o", **TINY, format="npy", progress=False)
    X = np.load(tmp_path / "o" / "features_data.npy")
    y = np.load(tmp_path / "o" / "features_labels.npy")
    assert X.shape == (15, 256) and list(np.unique(y)) == ["cats", "dogs", "owls"]
    assert not (tmp_path / "o" / "_parts").exists()


def test_arrays_and_csv_sources(tmp_path, image_folder):
    data = np.random.default_rng(0).integers(0, 256, (6, 20, 20, 3), dtype=np.uint8)
    np.save(tmp_path / "X.npy", data)
    np.save(tmp_path / "y.npy", np.array([0, 1, 2, 0, 1, 2]))
    extract(tmp_path / "X.npy", tmp_path / "a", data_labels=tmp_path / "y.npy", **TINY,
            progress=False)
    X, y, ids, _ = load_features(tmp_path / "a")
    assert X.shape == (6, 256) and list(y) == [0, 1, 2, 0, 1, 2] and ids[0] == "0"
    (tmp_path / "list.csv").write_text(f"cats,{image_folder}/cats/img0.png\ndogs,missing.png\n")
    res = extract(tmp_path / "list.csv", tmp_path / "c", **TINY, progress=False)
    assert (res.ok, res.failed) == (1, 1)
    X, y, ids, meta = load_features(tmp_path / "c")
    assert list(y) == ["cats"] and meta["failures"][0]["error"] == "file not found"


def test_existing_output_needs_resume_and_same_config(image_folder, tmp_path):
    out = tmp_path / "o"
    extract(image_folder, out, **TINY, progress=False)
    with pytest.raises(StoreError, match="resume=True"):
        extract(image_folder, out, **TINY, progress=False)
    res = extract(image_folder, out, **TINY, progress=False, resume=True)
    assert res.shards_skipped == res.shards  # finished job: nothing to do
    with pytest.raises(StoreError, match="another configuration.*pool"):
        extract(image_folder, out, **TINY, pool="max", layers="final", progress=False,
                resume=True)
    res = extract(image_folder, out, **TINY, pool="max", layers="final", progress=False,
                  overwrite=True)
    assert res.ok == 15


def test_same_vectors_for_any_worker_count(image_folder, tmp_path, reference):
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        extract(image_folder, out, **TINY, shard_size=4, num_workers=workers, progress=False)
        X, _, ids, _ = load_features(out)
        assert ids == reference[2]
        np.testing.assert_array_equal(X, reference[0])


def test_killed_run_resumes_to_the_one_shot_result(tmp_path):
    """SIGKILL a CLI run at several points, resume it, and compare with a one-shot run."""
    root = random_class_folder(tmp_path / "many", n=120, classes=3, side=40, seed=0)
    args = ["--model", "test_efficientnet", "--no-pretrained", "--img-size", "160",
            "--shard-size", "10", "--batch-size", "2", "--workers", "1", "-q",
            "--runtime", "torch"]  # slow enough to be killed part-way
    cli = [sys.executable, "-m", "imgfeat.cli", "extract", str(root)]
    one = subprocess.run(cli + ["-o", str(tmp_path / "one"), *args], capture_output=True,
                         text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    X0, _, ids0, _ = load_features(tmp_path / "one")
    out = tmp_path / "killed"
    kills = 0
    for target in (1, 4, 8):  # kill after this many finished shards, then resume
        proc = subprocess.Popen(cli + ["-o", str(out), *args] + (["--resume"] if kills else []),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and len(
                list((out / "_manifests").glob("*.json"))) < target:
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        X, _, ids, meta = load_features(out)  # only finished shards are ever visible
        assert len(ids) == len(set(ids)) and ids == ids0[:len(ids)]
    assert kills >= 2, "the run must have been killed part-way"
    assert not meta["complete"] or kills < 3
    resumed = subprocess.run(cli + ["-o", str(out), *args, "--resume"], capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    X, y, ids, meta = load_features(out)
    assert ids == ids0 and meta["complete"]
    np.testing.assert_allclose(X, X0, rtol=1e-5, atol=1e-6)
    assert not list(out.rglob(".tmp-*"))


def test_public_api_is_explicit():
    assert sorted(imgfeat.__all__) == sorted(set(imgfeat.__all__))
    for name in imgfeat.__all__:
        assert hasattr(imgfeat, name), name
    assert callable(imgfeat.extract) and callable(imgfeat.load_features)


@pytest.mark.parametrize("cores,device,expected", [
    (1, "cpu", (1, 0)), (2, "cpu", (2, 0)),          # small machines: decode between batches
    (4, "cpu", (3, 1)), (16, "cpu", (14, 2)),        # threads + workers = cores
    (16, "cuda", (1, 15)), (2, "mps", (1, 1)),       # accelerators: the host decodes
])
def test_default_threads_and_workers(monkeypatch, cores, device, expected):
    import imgfeat.config as config

    monkeypatch.setattr(config, "default_threads", lambda: cores)
    threads, workers = config.RunConfig(device=device).resolved_threads_workers()
    assert (threads, workers) == expected and threads + workers <= cores
    # the thread count never follows the worker count, so vectors do not either
    for workers in (0, 1, 5):
        threads, w = config.RunConfig(device=device, num_workers=workers).resolved_threads_workers()
        assert (threads, w) == (expected[0], workers)
    assert config.RunConfig(threads=7).resolved_threads_workers()[0] == 7


def test_a_run_with_decode_workers_leaves_the_sigchld_handler_as_it_was(tmp_path):
    """torch's loader leaves its SIGCHLD handler behind; a later child's exit in a process that
    has loaded OpenVINO crashed it. The local engine puts the previous handler back."""
    import signal

    from tests.conftest import TINY, random_class_folder

    folder = random_class_folder(tmp_path / "imgs", 6, 2, 32, seed=4)
    before = signal.getsignal(signal.SIGCHLD)
    extract(folder, tmp_path / "o", progress=False, num_workers=1, runtime="torch", **TINY)
    assert signal.getsignal(signal.SIGCHLD) == before
    extract(folder, tmp_path / "o2", progress=False, num_workers=1, runtime="torch", **TINY)
    assert signal.getsignal(signal.SIGCHLD) == before  # and again after a second loader
    (folder / "broken.png").write_bytes(b"not an image")
    with pytest.raises(ItemsFailedError) as stopped:  # a run stopped part-way, its traceback
        extract(folder, tmp_path / "o3", progress=False, num_workers=1, runtime="torch",
                strict=True, shard_size=2, **TINY)
    assert stopped.value and signal.getsignal(signal.SIGCHLD) == before  # kept alive here
