"""URLs everywhere a path is accepted: S3 (a local moto server) in, S3 out, whole-object writes,
retries, the frozen listing."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from functools import partial

import numpy as np
import pytest

from imgfeat import StoreError, extract, load_features
from imgfeat import storage as storage_mod
from imgfeat.storage import StorageUnavailableError, is_url, join, resolve, with_retries
from imgfeat.store import JobStore
from tests.conftest import TINY

RUN = {**TINY, "shard_size": 4, "progress": False}


def test_urls_are_joined_and_resolved_without_collapsing():
    assert is_url("s3://b/x") and is_url("https://h/a.png") and not is_url("/tmp/x")
    assert not is_url("file:///tmp/x") and not is_url("relative/x")
    assert join("s3://b/pre/", "a/b.png") == "s3://b/pre/a/b.png"
    assert resolve("s3://b/lists", "../imgs/a.png") == "s3://b/imgs/a.png"
    assert resolve("s3://b/lists", "/top/a.png") == "s3://b/top/a.png"
    assert resolve("s3://b/lists", "http://127.0.0.1:8/a.png") == "http://127.0.0.1:8/a.png"


def test_local_paths_never_import_fsspec(tmp_path, image_folder):
    code = ("import sys, imgfeat.store, imgfeat.sources as s, imgfeat.storage as st; "
            f"src = s.open_source({str(image_folder)!r}); "
            f"loc = st.Location({str(tmp_path / 'o')!r}); loc.makedirs(); "
            "loc.write_bytes('a/b.bin', src.read(src.items[0]).tobytes()); "
            "assert loc.listdir('a') == ['b.bin'], loc.listdir('a'); "
            "assert 'fsspec' not in sys.modules, 'fsspec imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_retries_transient_errors_only():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("connection reset by peer")
        return "ok"

    assert with_retries(flaky, "x", backoff_s=0) == "ok" and len(calls) == 3
    def missing():
        calls.append(1)
        raise FileNotFoundError("no such key")

    calls.clear()
    with pytest.raises(FileNotFoundError):  # a permanent error is not retried
        with_retries(missing, "x", backoff_s=0)
    assert len(calls) == 1
    with pytest.raises(StorageUnavailableError, match="after 3 tries"):
        with_retries(lambda: (_ for _ in ()).throw(TimeoutError("slow")), "x", retries=2,
                     backoff_s=0)


def test_s3_folder_to_s3_output_equals_local(s3, image_folder, tmp_path):
    src = s3.upload(image_folder, s3.prefix("imgs"))
    out = s3.prefix("out") + "/"
    extract(image_folder, tmp_path / "local", **RUN)
    res = extract(src + "/", out, **RUN, storage_options=s3.options)
    assert (res.items, res.ok, res.shards) == (15, 15, 4) and res.output == out.rstrip("/")
    X0, y0, ids0, m0 = load_features(tmp_path / "local")
    X, y, ids, meta = load_features(out, storage_options=s3.options)
    assert ids == ids0 and list(y) == list(y0) and meta["complete"]
    assert meta["paths"][0] == f"{src}/{ids[0]}"
    np.testing.assert_allclose(X, X0, rtol=1e-6, atol=1e-6)
    X1, _, ids1, _ = load_features(out + "data/part-00001.parquet", storage_options=s3.options)
    assert ids1 == ids0[4:8] and np.allclose(X1, X0[4:8], atol=1e-6)
    written = {k: s3.fs.cat_file(k) for k in s3.fs.find(out[5:])}
    assert "_imgfeat.json" in {k.rsplit("/", 1)[-1] for k in written}
    assert "_items.arrow" in {k.rsplit("/", 1)[-1] for k in written}
    for blob in written.values():  # credentials never reach what we write
        assert b"testing-secret" not in blob and b"testing-key-id" not in blob


@pytest.fixture
def http_server(tmp_path):
    """A plain HTTP server on 127.0.0.1 serving the folder ``tmp_path / 'web'``."""
    root = tmp_path / "web"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_csv_on_s3_mixes_relative_keys_and_http_urls(s3, image_folder, tmp_path, http_server):
    base = s3.prefix("csv")
    s3.upload(image_folder, base + "/imgs")
    web, url = http_server
    (web / "owl.png").write_bytes((image_folder / "owls" / "img0.png").read_bytes())
    s3.fs.pipe_file(f"{base[5:]}/train.csv", (
        "label,path\ncats,imgs/cats/img0.png\ndogs,sub/missing.png\n"
        f"owls,{url}/owl.png\ncats,{base}/imgs/cats/img3.png\n").encode())
    res = extract(f"{base}/train.csv", tmp_path / "o", **RUN, storage_options=s3.options)
    assert (res.ok, res.failed) == (3, 1)
    X, y, ids, meta = load_features(tmp_path / "o")
    # ids: keys relative to the CSV's folder; a URL elsewhere is its own id
    assert ids == ["imgs/cats/img0.png", f"{url}/owl.png", "imgs/cats/img3.png"]
    assert list(y) == ["cats", "owls", "cats"]
    assert meta["failures"][0]["id"] == "sub/missing.png"
    assert meta["failures"][0]["error"] == "file not found"
    local = tmp_path / "local.csv"
    local.write_text("\n".join(f"x,{image_folder}/{p}" for p in
                               ("cats/img0.png", "owls/img0.png", "cats/img3.png")))
    extract(local, tmp_path / "ref", **RUN)
    np.testing.assert_allclose(X, load_features(tmp_path / "ref")[0], rtol=1e-6, atol=1e-6)


def test_crash_between_data_and_manifest_then_resume(s3, image_folder, tmp_path, monkeypatch):
    src = s3.upload(image_folder, s3.prefix("imgs"))
    out = s3.prefix("out")
    clean = s3.prefix("clean")
    extract(src, clean, **RUN, storage_options=s3.options)
    real = JobStore._write_json

    def crash(self, name, data):
        if name == "_manifests/part-00001.json":
            raise KeyboardInterrupt("killed between data and manifest")
        return real(self, name, data)

    monkeypatch.setattr(JobStore, "_write_json", crash)
    with pytest.raises(KeyboardInterrupt):
        extract(src, out, **RUN, storage_options=s3.options)
    monkeypatch.setattr(JobStore, "_write_json", real)
    assert s3.fs.exists(f"{out[5:]}/data/part-00001.parquet")  # data without its manifest…
    _, _, ids, meta = load_features(out, storage_options=s3.options)
    assert len(ids) == 4 and not meta["complete"]  # …is not visible
    with pytest.raises(StoreError, match="resume=True"):
        extract(src, out, **RUN, storage_options=s3.options)
    res = extract(src, out, **RUN, storage_options=s3.options, resume=True)
    assert res.shards_skipped == 1
    X, y, ids, meta = load_features(out, storage_options=s3.options)
    X0, y0, ids0, _ = load_features(clean, storage_options=s3.options)
    assert ids == ids0 and list(y) == list(y0) and meta["complete"]
    np.testing.assert_array_equal(X, X0)


@pytest.mark.parametrize("remote", [True, False])
def test_exception_mid_serialisation_leaves_no_object(s3, image_folder, tmp_path, monkeypatch,
                                                      remote):
    import imgfeat.store.parquet as parquet

    real = parquet.pq.write_table

    def half(table, where, **kw):
        if "vector" not in table.column_names:  # the listing, not a shard
            return real(table, where, **kw)
        where.write(b"PAR1 half a shard")
        raise RuntimeError("disk full mid-serialisation")

    out = s3.prefix("half") if remote else str(tmp_path / "half")
    monkeypatch.setattr(parquet.pq, "write_table", half)
    with pytest.raises(RuntimeError, match="mid-serialisation"):
        extract(image_folder, out, **RUN, storage_options=s3.options if remote else None)
    monkeypatch.setattr(parquet.pq, "write_table", real)
    if remote:
        names = sorted(k.rsplit("/", 1)[-1] for k in s3.fs.find(out[5:]))
    else:
        names = sorted(p.name for p in (tmp_path / "half").rglob("*"))
    assert names == ["_imgfeat.json", "_items.arrow"]


def test_unavailable_storage_leaves_shard_for_resume(s3, image_folder, tmp_path, monkeypatch):
    import imgfeat.sources.base as base

    src = s3.upload(image_folder, s3.prefix("imgs"))
    real = base.read_bytes
    monkeypatch.setattr(storage_mod, "BACKOFF_S", 0.0)

    def outage(url, options=None):
        if url.endswith("dogs/img3.png"):
            return storage_mod.with_retries(
                lambda: (_ for _ in ()).throw(ConnectionError("503 Slow Down")), url)
        return real(url, options)

    monkeypatch.setattr(base, "read_bytes", outage)
    with pytest.raises(StorageUnavailableError, match="1 shard.*--resume"):
        extract(src, tmp_path / "o", **RUN, storage_options=s3.options)
    _, _, ids, meta = load_features(tmp_path / "o")
    assert len(ids) == 11 and not meta["failures"]  # shard 2 not recorded as bad images
    monkeypatch.setattr(base, "read_bytes", real)
    res = extract(src, tmp_path / "o", **RUN, storage_options=s3.options, resume=True)
    assert (res.ok, res.failed, res.shards_skipped) == (15, 0, 3)


def test_changed_listing_is_refused_on_resume(s3, image_folder, tmp_path, monkeypatch):
    src = s3.upload(image_folder, s3.prefix("imgs"))
    real = JobStore._write_json

    def crash(self, name, data):
        if name == "_manifests/part-00002.json":
            raise KeyboardInterrupt
        return real(self, name, data)

    monkeypatch.setattr(JobStore, "_write_json", crash)
    with pytest.raises(KeyboardInterrupt):
        extract(src, tmp_path / "o", **RUN, storage_options=s3.options)
    monkeypatch.setattr(JobStore, "_write_json", real)
    s3.fs.pipe_file(f"{src[5:]}/cats/img00.png", (image_folder / "dogs/img0.png").read_bytes())
    with pytest.raises(StoreError, match=r"source changed since the job started \(1 new\)"):
        extract(src, tmp_path / "o", **RUN, storage_options=s3.options, resume=True)
    res = extract(src, tmp_path / "o", **RUN, storage_options=s3.options, resume=True,
                  keep_listing=True)
    assert (res.items, res.shards_skipped) == (15, 2)
    _, _, ids, _ = load_features(tmp_path / "o")
    assert "cats/img00.png" not in ids and len(ids) == 15
    listing = json.loads((tmp_path / "o" / "_imgfeat.json").read_text())["config"]["source"]
    assert listing["count"] == 15


class _Flaky(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; answers 503 for the paths in ``down`` (storage unavailable)."""

    down: set[str] = set()

    def do_GET(self):  # noqa: N802 - the standard library's name
        if self.path in self.down:
            self.send_error(503, "Slow Down")
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("engine", ["local-in-process", "local-workers", "local-compute", "ray"])
def test_unavailable_storage_fails_the_shard_in_every_engine(image_folder, tmp_path, monkeypatch,
                                                             request, engine):
    """An image behind storage that stays unavailable (HTTP 503 after every retry) fails its
    whole shard, which --resume runs again; a bad image next to it is still recorded as bad."""
    web = tmp_path / "web"
    web.mkdir()
    names = [f"{label}/img{k}.png" for label in ("cats", "dogs") for k in (0, 3)] + ["owls/img0.png"]
    for name in names:
        (web / name).parent.mkdir(parents=True, exist_ok=True)
        (web / name).write_bytes((image_folder / name).read_bytes())
    (web / "bad.png").write_bytes(b"not an image")
    handler = type("Flaky", (_Flaky,), {"down": {"/dogs/img3.png"}})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(web)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    rows = ["bad.png", *names]  # shard 0: bad + 3 images; shard 1: dogs/img3 (down), owls/img0
    (tmp_path / "list.csv").write_text("label,path\n" + "".join(
        f"{r.split('/')[0]},{url}/{r}\n" for r in rows))
    options = {"local-in-process": {"num_workers": 0}, "local-workers": {"num_workers": 1},
               "local-compute": {"num_workers": 0, "compute_processes": 2},
               "ray": {"engine": "ray"}}[engine]
    if engine == "ray":
        request.getfixturevalue("ray_cluster")  # its actors retry with the real backoff (~6 s)
    elif engine != "local-compute":  # compute processes decode with the real backoff (~6 s)
        monkeypatch.setattr(storage_mod, "BACKOFF_S", 0.0)
    try:
        with pytest.raises(StorageUnavailableError, match=r"1 shard\(s\).*shard 1.*--resume"):
            extract(tmp_path / "list.csv", tmp_path / "o", **RUN, **options)
        _, _, ids, meta = load_features(tmp_path / "o")
        assert ids == [f"{url}/{n}" for n in names[:3]] and not meta["complete"]
        assert [f["id"] for f in meta["failures"]] == [f"{url}/bad.png"]  # not dogs/img3
        handler.down = set()
        res = extract(tmp_path / "list.csv", tmp_path / "o", **RUN, **options, resume=True)
    finally:
        server.shutdown()
    assert (res.ok, res.failed, res.shards_skipped) == (5, 1, 1)
    _, _, ids, meta = load_features(tmp_path / "o")
    assert ids == [f"{url}/{n}" for n in names] and meta["complete"]


@pytest.mark.parametrize("fmt", ["npy", "csv"])
def test_npy_and_csv_merged_on_s3_whole_or_not_at_all(s3, image_folder, tmp_path, monkeypatch,
                                                      fmt):
    """The final merge of an npy/csv job on S3 is spooled to a local file and sent as one
    object: a merge that fails half-way leaves no final file, and a resume completes it."""
    from imgfeat.store import get_format
    from imgfeat.store.npz import NpzShards

    extract(image_folder, tmp_path / "ref", **RUN)
    X0, y0, ids0, _ = load_features(tmp_path / "ref")
    out = s3.prefix(f"merge-{fmt}")
    real, calls = NpzShards.read_shard, []

    def failing_mid_merge(self, raw):
        calls.append(1)
        if len(calls) == 6:  # 4 shards listed, then the second one being written out
            raise OSError("connection lost mid-merge")
        return real(self, raw)

    monkeypatch.setattr(NpzShards, "read_shard", failing_mid_merge)
    with pytest.raises(StoreError, match="mid-merge.*--resume|mid-merge.*resume=True"):
        extract(image_folder, out, **RUN, format=fmt, storage_options=s3.options)
    final = get_format(fmt).merged_files[0]
    assert not s3.fs.exists(f"{out[5:]}/{final}")
    monkeypatch.setattr(NpzShards, "read_shard", real)
    res = extract(image_folder, out, **RUN, format=fmt, storage_options=s3.options, resume=True)
    assert (res.ok, res.shards_skipped) == (15, 4)
    X, y, ids, meta = load_features(out, storage_options=s3.options)
    assert ids == ids0 and list(y) == list(y0) and meta["complete"]
    np.testing.assert_allclose(X, X0, rtol=1e-6, atol=1e-6)
