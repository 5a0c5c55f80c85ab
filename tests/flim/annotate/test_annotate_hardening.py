"""The marker server under concurrency and hostile requests: parallel saves of one image, symlinks
at temporary names, malformed bodies, a fuzzed API; and marker files that do not fit their image."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imgfeat.flim.annotate import session as session_module
from imgfeat.flim.annotate.schema import MAX_BODY
from imgfeat.flim.annotate.session import AnnotationSession
from imgfeat.flim.markers import Markers, read_markers, write_markers
from tests.flim.annotate.conftest import send as _send

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

W, H = 24, 16


@pytest.fixture
def images(tmp_path) -> Path:
    root = tmp_path / "img"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name, (w, h) in {"a.png": (W, H), "b.png": (20, 18)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / name)
    return root


def _oversized(url: str, declared: bool) -> tuple[int, bytes]:
    """PUT a body over the limit: only its Content-Length and a first part, or chunked."""
    import http.client
    import urllib.parse

    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        conn.putrequest("PUT", u.path)
        conn.putheader("X-Imgfeat", "1")
        conn.putheader("Content-Type", "application/json")
        if declared:
            conn.putheader("Content-Length", str(MAX_BODY + 1))
            conn.endheaders(b"[")
        else:
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            part = b" " * 2**20
            try:
                for _ in range(MAX_BODY // len(part) + 2):
                    conn.send(b"%x\r\n%s\r\n" % (len(part), part))
                conn.send(b"0\r\n\r\n")
            except OSError:  # the server stopped reading: its answer is waiting
                pass
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def _put(url: str, body: dict) -> tuple[int, dict]:
    status, raw = _send(url + "api/images/0/markers", "PUT", json.dumps(body).encode())
    return status, json.loads(raw)


def _version(url: str) -> str:
    return json.loads(_send(url + "api/images/0/markers")[1])["version"]


def _mask_matches(mk: Path, stem: str = "a") -> bool:
    m = read_markers(mk / f"{stem}.txt", label_base=1)
    mask = np.asarray(Image.open(mk / f"{stem}.mask.png"))
    return np.array_equal(mask, m.to_label_image(fill=-1) + 1)


# ---------------------------------------------------------------------------------------------
# concurrency


def test_parallel_saves_of_one_image_leave_the_accepted_body_and_its_mask(images, tmp_path):
    from imgfeat.flim.annotate import serve_in_thread

    mk = tmp_path / "mk"
    rng = np.random.default_rng(3)
    with serve_in_thread(images, mk, labels="egg,bg", mask_png=True) as url:
        for _ in range(30):
            base = _version(url)
            bodies = []
            for _ in range(20):
                n = int(rng.integers(1, 60))
                pixels = rng.choice(W * H, n, replace=False).tolist()
                bodies.append({"pixels": pixels, "labels": rng.integers(0, 2, n).tolist(), "version": base})
            results: list = [None] * 20
            go = threading.Barrier(20)

            def send(k: int, go=go, results=results, bodies=bodies) -> None:
                go.wait()
                results[k] = _put(url, bodies[k])

            threads = [threading.Thread(target=send, args=(k,)) for k in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            statuses = sorted(s for s, _ in results)
            assert statuses == [200] + [409] * 19, statuses  # one wins, the stale ones are told so
            won = next(k for k, (s, _) in enumerate(results) if s == 200)
            current = results[won][1]["version"]
            assert all(r["version"] == current for s, r in results if s == 409)
            m = read_markers(mk / "a.txt", label_base=1)
            body = bodies[won]
            want = sorted(zip(body["pixels"], body["labels"], strict=True))
            assert sorted(zip((m.y * W + m.x).tolist(), m.label.tolist(), strict=True)) == want
            assert _mask_matches(mk)
            assert _version(url) == current
        # no temporaries left
        assert sorted(p.name for p in mk.iterdir()) == ["a.mask.png", "a.txt", "flim-markers.json"]


def test_a_stale_save_is_refused_and_a_chain_of_saves_is_kept_in_order(images, tmp_path):
    from imgfeat.flim.annotate import serve_in_thread

    mk = tmp_path / "mk"
    with serve_in_thread(images, mk, labels="egg,bg") as url:
        first = _version(url)
        assert first == ""  # no marker file yet
        status, tab1 = _put(url, {"pixels": [1, 2], "labels": [0, 0], "version": first})
        assert status == 200
        status, tab2 = _put(url, {"pixels": [5], "labels": [1], "version": first})  # a second tab
        assert status == 409 and tab2["version"] == tab1["version"] and "reload" in tab2["error"]
        assert read_markers(mk / "a.txt", label_base=1).x.tolist() == [1, 2]
        version = tab1["version"]
        for k in range(10):  # one page saving in order: each save names the version it got back
            status, r = _put(url, {"pixels": list(range(k + 1)), "labels": [1] * (k + 1), "version": version})
            assert status == 200
            version = r["version"]
        assert len(read_markers(mk / "a.txt", label_base=1)) == 10
        status, r = _put(url, {"pixels": [], "labels": [], "version": version})  # nothing marked: no file
        assert status == 200 and r["version"] == "" and not (mk / "a.txt").exists()


def test_symlinks_at_the_temporary_names_write_nothing_outside(images, tmp_path, monkeypatch):
    from imgfeat.flim.annotate import serve_in_thread

    mk = tmp_path / "mk"
    mk.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    names = [f"{k:016x}" for k in range(1, 9)]
    for stem in ("a.txt", "a.mask.png"):
        for name in names:  # every name the server will try first
            (mk / f".tmp-{stem}.{name}").symlink_to(outside)
        for pid in range(1, 5):  # and the old pid-named temporaries
            (mk / f".tmp-{stem}.{pid}").symlink_to(outside)
    fresh = [f"{k:016x}" for k in range(100, 200)]
    tokens = iter(names + fresh[:1] + names + fresh[1:])  # the mask's names, then the .txt's
    monkeypatch.setattr(session_module.secrets, "token_hex", lambda n: next(tokens))
    with serve_in_thread(images, mk, labels="egg,bg", mask_png=True) as url:
        status, r = _put(url, {"pixels": [3, 30], "labels": [0, 1], "version": ""})
        assert status == 200, r
    assert outside.read_text() == "precious"
    for name in ("a.txt", "a.mask.png"):
        assert (mk / name).is_file() and not (mk / name).is_symlink()
    assert read_markers(mk / "a.txt", label_base=1).x.tolist() == [3, 6]
    assert _mask_matches(mk)


def test_a_symlink_at_the_marker_or_mask_name_is_refused(images, tmp_path):
    from imgfeat.flim.annotate import serve_in_thread

    mk = tmp_path / "mk"
    mk.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    (mk / "a.mask.png").symlink_to(outside)
    (mk / "b.txt").symlink_to(outside)
    with serve_in_thread(images, mk, labels="egg,bg", mask_png=True) as url:
        assert _put(url, {"pixels": [3], "labels": [0], "version": ""})[0] == 403
        status, _ = _send(url + "api/images/1/markers", "PUT",
                          json.dumps({"pixels": [3], "labels": [0], "version": ""}).encode())
        assert status == 403
    assert outside.read_text() == "precious" and not (mk / "a.txt").exists()


def test_a_mask_that_disagrees_with_its_markers_is_rebuilt_on_start(images, tmp_path):
    mk = tmp_path / "mk"
    s = AnnotationSession(images, mk, ["egg", "bg"], mask_png=True)
    s.save(0, [3, 30, 31], [0, 1, 1])
    Image.fromarray(np.zeros((H, W), np.uint8)).save(mk / "a.mask.png")  # a crash between the renames
    (mk / "b.mask.png").write_bytes(b"stale")  # a mask whose .txt was removed
    AnnotationSession(images, mk, ["egg", "bg"], mask_png=True)
    assert _mask_matches(mk) and not (mk / "b.mask.png").exists()


# ---------------------------------------------------------------------------------------------
# hostile bodies

GOOD = {"pixels": [3, 30], "labels": [0, 1], "version": None}
BAD_BODIES = {
    "misspelt key": {"pixel": [3], "labels": [0], "version": ""},
    "extra key": {**GOOD, "stroke": [1]},
    "missing version": {"pixels": [3], "labels": [0]},
    "float 1.7": {**GOOD, "pixels": [1.7, 30]},
    "float 0.9": {**GOOD, "pixels": [0.9, 30]},
    "float 2.99": {**GOOD, "labels": [0, 2.99]},
    "float 2.0": {**GOOD, "pixels": [2.0, 30]},
    "string": {**GOOD, "pixels": ["3", 30]},
    "boolean": {**GOOD, "labels": [True, 0]},
    "nested list": {**GOOD, "pixels": [[3], 30]},
    "2**70": {**GOOD, "pixels": [2**70, 30]},
    "1e30": {**GOOD, "pixels": [1e30, 30]},
    "null pixel": {**GOOD, "pixels": [None, 30]},
    "null pixels": {**GOOD, "pixels": None},
    "pixels not a list": {**GOOD, "pixels": 3},
    "version not a string": {**GOOD, "version": 7},
    "pixel outside": {**GOOD, "pixels": [3, W * H]},
    "negative pixel": {**GOOD, "pixels": [-1, 30]},
    "label out of range": {**GOOD, "labels": [0, 2]},
    "negative label": {**GOOD, "labels": [0, -1]},
    "lengths differ": {**GOOD, "labels": [0]},
    "pixel twice": {**GOOD, "pixels": [3, 3]},
    "too many pixels": {**GOOD, "pixels": list(range(W * H + 1)), "labels": [0] * (W * H + 1)},
    "an array": [3, 30],
    "a number": 3,
}
RAW_BODIES = {
    "Infinity": b'{"pixels": [Infinity], "labels": [0], "version": "%s"}',
    "NaN": b'{"pixels": [3], "labels": [NaN], "version": "%s"}',
    "-Infinity": b'{"pixels": [-Infinity], "labels": [0], "version": "%s"}',
    "not JSON": b'{"pixels": [3,',
    "not UTF-8": b'{"pixels": [3], "labels": [0], "version": "\xff%s"}',
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "huge literal": b'{"pixels": [' + b"9" * 10_000 + b'], "labels": [0], "version": "%s"}',
    "empty": b"",
}


def test_each_bad_body_is_a_400_with_its_reason_and_writes_nothing(images, tmp_path):
    from imgfeat.flim.annotate import serve_in_thread

    mk = tmp_path / "mk"
    with serve_in_thread(images, mk, labels="egg,bg", mask_png=True) as url:
        status, r = _put(url, {"pixels": [5, 6], "labels": [1, 1], "version": ""})
        assert status == 200
        version = r["version"]
        before = {p.name: p.read_bytes() for p in mk.iterdir()}
        cases = {name: json.dumps(b if not isinstance(b, dict) or b.get("version", "") is not None
                                  else {**b, "version": version}).encode() for name, b in BAD_BODIES.items()}
        cases |= {name: raw.replace(b"%s", version.encode()) for name, raw in RAW_BODIES.items()}
        for name, data in cases.items():
            status, raw = _send(url + "api/images/0/markers", "PUT", data)
            assert status == 400, (name, status, raw[:200])
            assert json.loads(raw)["error"], name
            assert {p.name: p.read_bytes() for p in mk.iterdir()} == before, name
        for name, data in [("misspelt", b'{"index": 0, "layr": "x"}'), ("float index", b'{"index": 0.5}'),
                           ("bool index", b'{"index": true}'), ("huge index", b'{"index": 1e400}'),
                           ("layer a list", b'{"index": 0, "layer": ["x"]}'), ("no index", b"{}"),
                           ("index out of range", b'{"index": 9}')]:
            status, raw = _send(url + "api/learn", "POST", data)
            assert status == 400 and json.loads(raw)["error"], (name, status, raw)
        for bad in ["99999999999999999999", "1" * 5000, "-1", "x"]:
            assert _send(url + f"api/images/{bad}/markers")[0] == 400, bad
        # a body over the limit is refused by its declared length, before it is read, or once
        # it passes the limit when its length is not declared (chunked)
        for declared in (True, False):
            status, raw = _oversized(url + "api/images/0/markers", declared)
            assert status == 413 and b"over the limit" in raw, (declared, status, raw)
        assert {p.name: p.read_bytes() for p in mk.iterdir()} == before


# ---------------------------------------------------------------------------------------------
# fuzz: no request of any shape is a 500

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**80, 2**80) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)
NEAR = st.fixed_dictionaries({}, optional={
    "pixels": st.lists(st.integers(-5, W * H + 5) | JSON, max_size=8),
    "labels": st.lists(st.integers(-2, 3) | JSON, max_size=8),
    "version": st.text(max_size=20) | JSON,
    "index": st.integers(-3, 5) | JSON,
    "layer": st.sampled_from(["", "features.conv1", "nope"]) | JSON,
})
PATHS = st.sampled_from(["api/images/{}/markers", "api/images/{}/image", "api/files/{}", "api/learn",
                         "api/session", "", "static/{}"])
SEGMENT = st.text(st.characters(codec="ascii", exclude_characters="?#"), max_size=12)


def test_fuzzed_requests_never_get_a_500(images, tmp_path):
    from imgfeat.flim.annotate import serve_in_thread

    mk = tmp_path / "mk"
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    with serve_in_thread(images, mk, labels="egg,bg", mask_png=True) as url:

        @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
        @given(method=st.sampled_from(["GET", "PUT", "POST"]), path=PATHS, segment=SEGMENT,
               body=NEAR | JSON, raw=st.booleans())
        def check(method: str, path: str, segment: str, body, raw: bool) -> None:
            target = url + path.format(urllib.request.quote(segment, safe="/"))
            data = None if method == "GET" else (json.dumps(body).encode() if not raw
                                                 else str(body).encode())
            status, answer = _send(target, method, data)
            assert status < 500, (method, target, data, answer[:300])
            if status >= 400 and status not in (404, 405):  # the router's own: no such route or method
                assert json.loads(answer)["error"]

        check()
    assert outside.read_text() == "precious"
    for p in mk.iterdir():
        assert p.suffix in (".txt", ".png") or p.name == "flim-markers.json", p
        assert not p.name.startswith(".tmp-"), p
        if p.suffix == ".txt":
            read_markers(p, label_base=1)


# ---------------------------------------------------------------------------------------------
# marker files that do not fit their image


def test_flim_train_refuses_markers_drawn_on_another_size(tmp_path, capsys):
    from imgfeat.cli import main
    from tests.flim.test_flim_train import ARCH

    img = tmp_path / "img"
    img.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(img / "a.png")
    mk = tmp_path / "mk"
    marks = Markers(640, 480, [1, 300, 600], [1, 200, 400], None, [0, 1, 1])
    write_markers(mk / "a.txt", marks, label_base=1)
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps(ARCH))
    out = tmp_path / "model.flim"
    assert main(["flim", "train", str(img), "--markers", str(mk), "-a", str(arch), "-o", str(out),
                 "--label-base", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"imgfeat: error: {mk / 'a.txt'}: markers drawn on a 640x480 image, "
                   "the image a.png is 64x48"]
    assert not out.exists()


@pytest.mark.parametrize("line", ["5 5 0 99999999999", "5 5 0 99999999999999999999999", "2147483648 5 0 1"])
def test_a_huge_number_in_a_marker_file_is_one_line(tmp_path, line):
    from imgfeat.flim.markers import MarkerError

    path = tmp_path / "a.txt"
    path.write_text(f"2 64 48\n1 1 0 1\n{line}\n")
    with pytest.raises(MarkerError, match="line 3 .* holds a number beyond 2,147,483,647"):
        read_markers(path, label_base=1)
