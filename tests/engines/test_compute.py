"""The local engine's compute processes (``compute_processes``): the same vectors, order and
failure records as the network in the main process, one clear line when a compute process
dies, and a resume that finishes the run."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from imgfeat import ConfigError, extract, load_features
from imgfeat.cli import main as cli_main
from tests.conftest import TINY, random_class_folder

RUN = {**TINY, "shard_size": 5, "batch_size": 3, "threads": 1, "progress": False}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """23 small images in 2 classes and one file that is no image."""
    root = random_class_folder(tmp_path_factory.mktemp("compute") / "imgs", 23, 2, 40, 3)
    (root / "c1" / "broken.png").write_bytes(b"not an image")
    return root


def _read(out):
    X, y, ids, meta = load_features(out)
    return X, list(y), list(ids), meta


@pytest.mark.parametrize(("runtime", "workers"),
                         [("torch", 0), ("torch", 1), ("onnxruntime", 0), ("openvino", 0)])
def test_processes_give_the_vectors_of_one(images, tmp_path, runtime, workers):
    """Byte-identical vectors, the same ids in the same order, the same failure record."""
    if runtime != "torch":
        pytest.importorskip(runtime)
    runs, failures = {}, {}
    for n in (1, 2):
        res = extract(images, tmp_path / f"out{n}", **RUN, runtime=runtime, num_workers=workers,
                      compute_processes=n)
        assert (res.runtime, res.compute_processes, res.ok, res.failed) == (runtime, n, 23, 1)
        runs[n] = _read(tmp_path / f"out{n}")
        assert runs[n][3]["compute_processes"] == n
        failures[n] = res.failures_path.read_text()
        rows = failures[n].splitlines()[1:]
        assert len(rows) == 1 and rows[0].startswith("c1/broken.png,")
    (x1, y1, ids1, _), (x2, y2, ids2, _) = runs[1], runs[2]
    assert ids1 == ids2 and y1 == y2 and x1.dtype == x2.dtype and failures[1] == failures[2]
    assert x1.tobytes() == x2.tobytes()


def test_processes_decode_arrays_and_lists_as_one_does(tmp_path, images):
    """The processes decode their own batches from any source: NumPy rows and a CSV list."""
    import numpy as np

    data = np.random.default_rng(0).integers(0, 256, (9, 30, 26, 3), dtype=np.uint8)
    np.save(tmp_path / "X.npy", data)
    np.save(tmp_path / "y.npy", np.arange(9) % 3)
    files = sorted(images.rglob("*.png"))[:7]
    (tmp_path / "list.csv").write_text("label,path\n" + "".join(
        f"{p.parent.name},{p}\n" for p in files))
    for name, kw in (("arrays", {"data_labels": tmp_path / "y.npy"}), ("list", {})):
        src = tmp_path / ("X.npy" if name == "arrays" else "list.csv")
        runs = [_read(extract(src, tmp_path / f"{name}{n}", **RUN, **kw, num_workers=0,
                              compute_processes=n).output) for n in (1, 2)]
        assert runs[0][2] == runs[1][2] and len(runs[0][2]) == (9 if name == "arrays" else 7)
        assert runs[0][1] == runs[1][1] and runs[0][0].tobytes() == runs[1][0].tobytes()


@pytest.mark.parametrize("kind", ["__main__", "unpicklable"])
def test_a_source_the_processes_cannot_receive_is_decoded_here(images, tmp_path, kind):
    """A source class of a script's ``__main__`` (not importable in a compute process) or one
    holding what does not pickle: the main process decodes and feeds the processes."""
    from imgfeat import Extractor, ModelConfig
    from imgfeat.engines.compute import ComputePool
    from imgfeat.sources import open_source

    src = open_source(images)
    if kind == "__main__":
        src.__class__ = type("ScriptSource", (type(src),), {"__module__": "__main__"})
    else:
        src.hook = lambda item: item  # a lambda does not pickle
    ref = open_source(images)
    extractor = Extractor(ModelConfig(**TINY))
    assert ComputePool(extractor, 1, source=ref).decodes  # nothing started until entered
    assert not ComputePool(extractor, 1, source=src).decodes
    runs = [_read(extract(s, tmp_path / f"o{n}", **RUN, num_workers=0,
                          compute_processes=n).output) for n, s in ((1, ref), (2, src))]
    assert runs[0][2] == runs[1][2] and runs[0][0].tobytes() == runs[1][0].tobytes()


def _kill_first_compute_process(stop: threading.Event) -> None:
    while not stop.is_set():
        procs = [p for p in multiprocessing.active_children()
                 if p.name.startswith("imgfeat-compute-")]
        if procs:
            procs[0].kill()
            return
        time.sleep(0.002)


def test_a_killed_compute_process_is_one_error_line_and_resume_finishes(images, tmp_path,
                                                                       capsys):
    argv = ["extract", str(images), "-o", str(tmp_path / "out"), "--model", TINY["model"],
            "--no-pretrained", "--img-size", "64", "--precision", "fp32", "--runtime",
            "torch", "--shard-size", "5", "--batch-size", "3", "--threads", "1", "-q",
            "--compute-processes", "2"]
    stop = threading.Event()
    killer = threading.Thread(target=_kill_first_compute_process, args=(stop,))
    killer.start()
    try:
        code = cli_main(argv)
    finally:
        stop.set()
        killer.join()
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and err[0].startswith("imgfeat: error: compute process ")
    assert "SIGKILL" in err[0] and "--resume" in err[0]
    assert not multiprocessing.active_children()  # the other one was stopped too
    assert cli_main(argv + ["--resume"]) == 1  # finished; 1: the broken image failed
    ref = extract(images, tmp_path / "ref", **RUN, runtime="torch", compute_processes=1)
    assert ref.ok == 23
    (x, _, ids, _), (xr, _, idsr, _) = _read(tmp_path / "out"), _read(tmp_path / "ref")
    assert ids == idsr and x.tobytes() == xr.tobytes()


def test_bad_values_are_refused(images, tmp_path):
    for bad in (0, -1, "two", 1.5, True):
        with pytest.raises(ConfigError, match="compute_processes"):
            extract(images, tmp_path / "o", **RUN, compute_processes=bad)
    with pytest.raises(ConfigError, match="--engine local only"):
        extract(images, tmp_path / "o", **RUN, engine="ray", compute_processes=2)
    assert cli_main(["extract", str(images), "-o", str(tmp_path / "o"),
                     "--compute-processes", "0"]) != 0


def test_a_mapped_array_file_is_mapped_again_not_copied(tmp_path):
    """A compute process is sent the array source without a mapped file's data: it maps the
    file itself (a large .npy is not copied into every process)."""
    import pickle

    import numpy as np

    from imgfeat.sources import open_source

    data = np.random.default_rng(1).integers(0, 256, (5, 3, 64, 60), dtype=np.uint8)  # NCHW
    np.save(tmp_path / "X.npy", data)
    src = open_source(tmp_path / "X.npy")
    blob = pickle.dumps(src.local_copy())
    assert len(blob) < data.nbytes and src.data is not None and len(src.items) == 5
    there = pickle.loads(blob)
    assert there.items == [] and there.data.shape == (5, 64, 60, 3)
    assert np.asarray(there.read(src.items[2])).tobytes() == np.asarray(
        src.read(src.items[2])).tobytes()
    kept = open_source(np.load(tmp_path / "X.npy"))  # in memory: sent whole
    assert pickle.loads(pickle.dumps(kept.local_copy())).data.shape == (5, 64, 60, 3)
