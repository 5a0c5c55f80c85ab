"""The contract every registered output format keeps (as scikit-learn checks every estimator):
a shard round-trips vectors, labels, ids and failures; a job in the format gives the Parquet
job's vectors through ``load_features``; a killed job resumes, a finished one resumes as nothing
to do; no file is ever visible half-written. A toy format defined here, registered by name and
touching no module of imgfeat, passes the same tests end to end through ``imgfeat.extract``."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

import imgfeat.storage as storage_mod
from imgfeat import extract, load_features
from imgfeat.batches import ShardData
from imgfeat.config import ExtractConfig
from imgfeat.errors import ConfigError
from imgfeat.sources import Item
from imgfeat.storage import TMP_PREFIX, Location
from imgfeat.store import JobStore, ShardFormat, format_names, get_format, register_format
from imgfeat.store import unregister_format as unregister
from tests.conftest import TINY, fresh_python

RUN = {**TINY, "shard_size": 4, "progress": False, "num_workers": 0}


class JsonLinesFormat(ShardFormat):
    """A toy format: shards as JSON lines under ``_parts/``, merged into one JSON-lines file."""

    name = "toy-jsonl"
    suffix = ".jsonl"
    merged_files = ("features.jsonl",)

    def shard_bytes(self, data, metadata):
        vecs = iter(data.vectors.tolist())
        rows = [{"id": it.id, "path": it.path, "label": it.label, "split": it.split,
                 "error": err, "vector": next(vecs) if ok else None}
                for it, ok, err in zip(data.items, data.ok.tolist(), data.errors, strict=True)]
        head = {"dim": int(data.vectors.shape[1]), "dtype": str(data.vectors.dtype)}
        return "\n".join(json.dumps(r) for r in [head, *rows]).encode()

    def read_shard(self, raw):
        head, *rows = [json.loads(line) for line in raw.decode().splitlines()]
        vectors = np.array([r["vector"] for r in rows if r["vector"] is not None],
                           dtype=head["dtype"]).reshape(-1, head["dim"])
        return {"ids": [r["id"] for r in rows], "paths": [r["path"] for r in rows],
                "labels": [r["label"] for r in rows], "splits": [r["split"] for r in rows],
                "errors": [r["error"] for r in rows],
                "ok": np.array([r["vector"] is not None for r in rows], bool), "vectors": vectors}

    def merge(self, out, shards):
        with out.open_write("features.jsonl") as fh:
            for name in shards:
                for line in out.read_bytes(name).decode().splitlines()[1:]:
                    if json.loads(line)["vector"] is not None:
                        fh.write(line.encode() + b"\n")

    def read_merged(self, out):
        rows = [json.loads(line) for line in out.read_bytes("features.jsonl").splitlines()]
        return {"ids": [r["id"] for r in rows], "paths": [r["path"] for r in rows],
                "labels": [r["label"] for r in rows], "splits": [r["split"] for r in rows],
                "vectors": np.array([r["vector"] for r in rows], np.float32)}


TOY = JsonLinesFormat.name
FORMATS = [*format_names(), TOY]


@pytest.fixture(autouse=True)
def toy_format():
    register_format(JsonLinesFormat())
    yield
    unregister(TOY)


@pytest.fixture
def folder(image_folder):
    """15 images in 3 classes and one file that is not an image: 4 shards of 4."""
    (image_folder / "owls" / "broken.png").write_bytes(b"not an image")
    return image_folder


@pytest.fixture
def reference(folder, tmp_path):
    extract(folder, tmp_path / "ref", **RUN)
    return load_features(tmp_path / "ref")


def _same(got, ref, rtol=1e-6):
    X, y, ids, meta = got
    X0, y0, ids0, meta0 = ref
    assert ids == ids0 and list(y) == list(y0)
    assert meta["paths"] == meta0["paths"] and meta["splits"] == meta0["splits"]
    assert [f["id"] for f in meta["failures"]] == [f["id"] for f in meta0["failures"]]
    np.testing.assert_allclose(X, X0, rtol=rtol, atol=1e-6)


def _visible(out) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, n), out) for d, _, names in os.walk(out)
                  for n in names if not n.startswith(TMP_PREFIX))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_shard_round_trips_every_column(fmt):
    items = [Item(id="a/1.png", path="/d/a/1.png", label="a", split="train"),
             Item(id="b/2.png", path="/d/b/2.png", label=None, split=None),
             Item(id="c/3.png", path="/d/c/3.png", label="007", split="test")]
    ok = np.array([True, False, True])
    vectors = np.random.default_rng(0).standard_normal((2, 5)).astype(np.float32)
    data = ShardData(7, items, vectors, ok, [None, "DecodeError: truncated", None])
    f = get_format(fmt)
    cols = f.read_shard(f.shard_bytes(data, {"dim": 5, "dtype": "float32"}))
    assert cols["ids"] == [it.id for it in items]
    assert cols["paths"] == [it.path for it in items]
    assert cols["labels"] == ["a", None, "007"]  # None stays None, "007" stays a string
    assert cols["splits"] == ["train", None, "test"]
    assert cols["errors"] == [None, "DecodeError: truncated", None]
    assert cols["ok"].tolist() == ok.tolist()
    np.testing.assert_array_equal(cols["vectors"], vectors)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_job_in_every_format_reads_back_as_parquet(fmt, folder, reference, tmp_path):
    res = extract(folder, tmp_path / "o", **RUN, format=fmt)
    assert (res.items, res.ok, res.failed, res.shards) == (16, 15, 1, 4)
    got = load_features(tmp_path / "o")
    _same(got, reference)
    assert got[3]["format"] == fmt and got[3]["complete"]
    merged = get_format(fmt).merged_files
    assert set(merged) <= set(_visible(tmp_path / "o"))
    if merged and get_format(fmt).file_endings:  # the merged file alone, where it can be read
        single = next(n for n in merged if n.endswith(get_format(fmt).file_endings))
        X, _, _, _ = load_features(tmp_path / "o" / single)
        np.testing.assert_allclose(X, reference[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_killed_job_resumes_and_a_finished_one_is_nothing_to_do(fmt, folder, reference,
                                                                  tmp_path, monkeypatch):
    real = JobStore.write_shard

    def dies_at_shard_2(self, data):
        if data.index == 2:
            raise KeyboardInterrupt
        real(self, data)

    monkeypatch.setattr(JobStore, "write_shard", dies_at_shard_2)
    with pytest.raises(KeyboardInterrupt):
        extract(folder, tmp_path / "o", **RUN, format=fmt)
    monkeypatch.setattr(JobStore, "write_shard", real)
    _, _, ids, meta = load_features(tmp_path / "o")  # the finished shards, readable already
    assert ids == reference[2][:len(ids)] and len(ids) == 8 and not meta["complete"]
    res = extract(folder, tmp_path / "o", **RUN, format=fmt, resume=True)
    assert (res.shards, res.shards_skipped, res.reused) == (4, 2, 8)
    _same(load_features(tmp_path / "o"), reference)

    def no_shard_runs(*args, **kwargs):
        raise AssertionError("a finished job ran a shard again")

    before = _visible(tmp_path / "o")
    monkeypatch.setattr(JobStore, "write_shard", no_shard_runs)
    t0 = time.perf_counter()
    res = extract(folder, tmp_path / "o", **RUN, format=fmt, resume=True)
    seconds = time.perf_counter() - t0
    assert (res.shards_skipped, res.reused, res.ok, res.failed) == (4, 16, 15, 1)
    assert seconds < 1.0, f"a finished {fmt} job took {seconds:.2f} s to resume"
    assert _visible(tmp_path / "o") == before
    _same(load_features(tmp_path / "o"), reference)


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_file_is_ever_visible_half_written(fmt, folder, reference, tmp_path, monkeypatch):
    """At every commit of a file of the job, the files already visible read whole; a run
    killed while its last data file is being committed leaves that file invisible, and its
    resume finishes the job."""
    f = get_format(fmt)
    out = tmp_path / "o"
    real_replace = storage_mod.os.replace
    committed: list[str] = []
    kill = {"at": None}

    def check_then_replace(src, dst):
        name = os.path.relpath(dst, out)
        for seen in _visible(out):  # everything visible now is whole
            raw = (out / seen).read_bytes()
            if os.path.basename(seen).startswith("part-") and seen.endswith(f.suffix):
                f.read_shard(raw)
            elif seen.endswith(".json"):
                json.loads(raw)
        if name == kill["at"]:
            raise KeyboardInterrupt  # killed after writing, before the rename
        committed.append(str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(storage_mod.os, "replace", check_then_replace)
    extract(folder, tmp_path / "clean", **RUN, format=fmt)  # the order files are committed in
    data_files = [os.path.relpath(n, tmp_path / "clean") for n in committed
                  if not n.endswith((".json", ".arrow", ".csv")) or n.endswith(f.merged_files)]
    committed.clear()
    kill["at"] = data_files[-1]
    with pytest.raises(KeyboardInterrupt):
        extract(folder, out, **RUN, format=fmt)
    assert kill["at"] not in _visible(out)
    _, _, ids, meta = load_features(out)  # the half-committed file is not read
    assert not meta["complete"] and ids == reference[2][:len(ids)]
    kill["at"] = None
    extract(folder, out, **RUN, format=fmt, resume=True)
    assert not [n for _, _, names in os.walk(out) for n in names if n.startswith(TMP_PREFIX)]
    _same(load_features(out), reference)


def test_the_format_registry_is_cheap_and_checks_names():
    code = ("import sys, imgfeat.config, imgfeat.store, imgfeat.cli.extract\n"
            "from imgfeat.store import format_names\n"
            "print(format_names())\n"
            "print(sorted(m for m in ('torch', 'pyarrow', 'numpy') if m in sys.modules))")
    r = fresh_python(code, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["('parquet', 'npy', 'csv', 'csv-plain')", "[]"]
    with pytest.raises(ConfigError, match="format must be one of parquet, npy, csv, csv-plain, toy-jsonl"):
        ExtractConfig(format="hdf5")
    assert ExtractConfig(format=TOY).format == TOY


def test_an_output_of_an_unknown_format_is_one_error(tmp_path):
    loc = Location(tmp_path / "o")
    loc.makedirs()
    loc.write_bytes("_imgfeat.json", json.dumps({
        "imgfeat_output": 1, "complete": True, "format": "zarr", "config_hash": "0",
        "config": {}, "metadata": {}}).encode())
    from imgfeat import StoreError

    with pytest.raises(StoreError, match="unknown output format 'zarr'"):
        load_features(tmp_path / "o")
