"""The annotation server without a browser: path safety, marker round trips, the HTTP API,
learn-and-preview, and the CLI subcommand serving on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgfeat.errors import ConfigError, ImgfeatError, SourceError
from imgfeat.flim.annotate.session import AnnotationSession, PathRefused, inside
from imgfeat.flim.markers import Markers, read_markers, write_markers
from tests.flim.annotate.conftest import send

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

SRC = Path(__file__).resolve().parents[3] / "src"


def _images(root: Path, sizes: dict[str, tuple[int, int]], seed: int = 0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, (w, h) in sizes.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / name)
    return root


@pytest.fixture
def images(tmp_path) -> Path:
    return _images(tmp_path / "img", {"a.png": (24, 16), "b.png": (20, 18)})


# ---------------------------------------------------------------------------------------------
# path safety


def test_inside_refuses_every_escape(tmp_path):
    root = tmp_path / "markers"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("x")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    (root / "dirlink").symlink_to(tmp_path)
    assert inside(root, "a.txt") == root.resolve() / "a.txt"
    assert inside(root, "sub/a.txt") == root.resolve() / "sub" / "a.txt"
    for bad in ["../secret.txt", "sub/../../secret.txt", "/etc/passwd", "\\\\host\\share\\x",
                "C:\\x.txt", "C:x.txt", "..\\secret.txt", "", "a\x00.txt", "link.txt",
                "dirlink/secret.txt"]:
        with pytest.raises(PathRefused):
            inside(root, bad)


# ---------------------------------------------------------------------------------------------
# the session: saving and loading marker files


@pytest.mark.parametrize("base", [0, 1])
def test_save_writes_the_flim_format_and_loads_back(images, tmp_path, base):
    s = AnnotationSession(images, tmp_path / "mk", ["egg", "larva", "bg"], label_base=base, mask_png=True)
    w = 24
    pixels = [0, 1, w + 1, 5 * w + 7, 5 * w + 8, 10 * w + 20]
    labels = [0, 0, 0, 2, 2, 1]
    m = s.save(0, pixels, labels)
    path = tmp_path / "mk" / "a.txt"
    lines = path.read_text().splitlines()
    assert lines[0] == "6 24 16"
    rows = {tuple(map(int, ln.split())) for ln in lines[1:]}
    assert {(x, y, lab) for x, y, _, lab in rows} == {
        (0, 0, base), (1, 0, base), (1, 1, base), (7, 5, 2 + base), (8, 5, 2 + base), (20, 10, 1 + base)}
    ids = {(x, y): i for x, y, i, _ in rows}  # connected strokes get one id each
    assert ids[0, 0] == ids[1, 0] == ids[1, 1] and ids[7, 5] == ids[8, 5]
    assert len({ids[0, 0], ids[7, 5], ids[20, 10]}) == 3
    assert read_markers(path, label_base=base) == m == s.load(0)
    mask = np.asarray(Image.open(tmp_path / "mk" / "a.mask.png"))
    assert mask.shape == (16, 24) and mask[0, 0] == 1 and mask[5, 7] == 3 and mask[10, 20] == 2
    assert int((mask > 0).sum()) == 6
    assert s.images[0].counts == [3, 1, 2]
    assert not list((tmp_path / "mk").glob(".tmp-*"))  # atomic writes leave nothing behind
    # an empty image removes its files, so FLIM training never sees an empty marker file
    s.save(0, [], [])
    assert not path.exists() and not (tmp_path / "mk" / "a.mask.png").exists()
    assert s.load(0) is None and s.images[0].counts == [0, 0, 0]


def test_existing_marker_files_are_loaded_and_counted(images, tmp_path):
    mk = tmp_path / "mk"
    write_markers(mk / "b.txt", Markers(20, 18, [3, 4, 5], [2, 2, 9], None, [1, 1, 0]), label_base=1)
    s = AnnotationSession(images, mk, ["egg", "bg"])
    assert s.images[1].counts == [1, 2] and s.images[0].counts == [0, 0]
    m = s.load(1)
    assert sorted(zip(m.x.tolist(), m.y.tolist(), m.label.tolist(), strict=True)) == [
        (3, 2, 1), (4, 2, 1), (5, 9, 0)]


def test_bad_input_gives_one_line_errors(images, tmp_path):
    s = AnnotationSession(images, tmp_path / "mk", ["egg", "bg"])
    with pytest.raises(ConfigError, match="outside"):
        s.save(0, [24 * 16], [0])
    with pytest.raises(ConfigError, match="labels must lie"):
        s.save(0, [0], [2])
    with pytest.raises(ConfigError, match="pixels but"):
        s.save(0, [0, 1], [0])
    with pytest.raises(SourceError, match="no image number 5"):
        s.save(5, [0], [0])
    with pytest.raises(ConfigError, match="at most 9"):
        AnnotationSession(images, tmp_path / "mk", [str(k) for k in range(10)])
    with pytest.raises(ConfigError, match="differ"):
        AnnotationSession(images, tmp_path / "mk", ["a", "a"])
    write_markers(tmp_path / "mk2" / "a.txt", Markers(24, 16, [0], [0], None, [4]), label_base=1)
    with pytest.raises(ConfigError, match="no class name"):
        AnnotationSession(images, tmp_path / "mk2", ["egg", "bg"]).load(0)
    write_markers(tmp_path / "mk3" / "a.txt", Markers(30, 16, [0], [0], None, [0]), label_base=1)
    with pytest.raises(SourceError, match="30x16 image, the image is 24x16"):
        AnnotationSession(images, tmp_path / "mk3", ["egg", "bg"]).load(0)
    nested = _images(tmp_path / "two" / "x", {"a.png": (8, 8)})
    _images(nested.parent / "y", {"a.png": (8, 8)})
    with pytest.raises(SourceError, match="share the marker file a.txt"):
        AnnotationSession(nested.parent, tmp_path / "mk4")
    assert issubclass(PathRefused, ImgfeatError)


# ---------------------------------------------------------------------------------------------
# the HTTP API


def _call(url: str, method: str = "GET", body: dict | None = None, write: bool = True):
    return send(url, method, None if body is None else json.dumps(body).encode(), write)


def test_http_api_saves_loads_and_refuses_escapes(images, tmp_path):
    from imgfeat.flim.annotate import serve_in_thread

    (tmp_path / "secret.txt").write_text("secret")
    mk = tmp_path / "mk"
    with serve_in_thread(images, mk, labels="egg,bg") as url:
        assert url.startswith("http://127.0.0.1:")
        status, body = _call(url + "api/session")
        assert status == 200 and json.loads(body)["labels"] == ["egg", "bg"]
        status, body = _call(url + "api/images/1/image")
        assert status == 200 and Image.open(__import__("io").BytesIO(body)).size == (20, 18)
        status, body = _call(url + "api/images/0/markers", "PUT", {"pixels": [3, 30], "labels": [1, 0],
                                                                   "version": ""})
        saved = json.loads(body)
        assert status == 200 and saved == {"saved": 2, "file": "a.txt", "counts": [1, 1],
                                           "version": saved["version"]} and len(saved["version"]) == 16
        assert read_markers(mk / "a.txt", label_base=1).to_label_image()[[0, 1], [3, 6]].tolist() == [1, 0]
        status, body = _call(url + "api/images/0/markers")
        assert json.loads(body) == {"width": 24, "height": 16, "pixels": [3, 30], "labels": [1, 0],
                                    "version": saved["version"]}
        status, body = _call(url + "api/files/a.txt")
        assert status == 200 and body.decode().startswith("2 24 16\n")
        (mk / "out.txt").symlink_to(tmp_path / "secret.txt")
        for bad in ["../secret.txt", "..%2Fsecret.txt", "%2E%2E/secret.txt", "%2Fetc%2Fpasswd", "out.txt",
                    "C:%5Csecret.txt"]:
            status, body = _call(url + "api/files/" + bad)
            assert status == 403 and b"secret" not in body.replace(b"secret.txt", b""), bad
        # writes without the page's header (another site's form) are refused; so are bad indexes
        v = saved["version"]
        assert _call(url + "api/images/0/markers", "PUT", {"pixels": [], "labels": [], "version": v},
                     write=False)[0] == 403
        assert (mk / "a.txt").exists()
        for index, body in [(7, {"pixels": [0], "labels": [0], "version": ""}),
                            (0, {"pixels": [0], "labels": [5], "version": v})]:
            assert _call(url + f"api/images/{index}/markers", "PUT", body)[0] == 400
        # a Host header naming another machine (DNS rebinding) is refused
        req = urllib.request.Request(url + "api/session", headers={"Host": "evil.example"})
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(req, timeout=10)
    assert sorted(p.name for p in mk.iterdir()) == ["a.txt", "flim-markers.json", "out.txt"]


@pytest.mark.parametrize("base", [0, 1])
def test_saves_write_the_label_base_sidecar_so_train_does_not_guess(tmp_path, base):
    import warnings

    from imgfeat.flim.annotate import serve_in_thread
    from imgfeat.flim.sidecar import SIDECAR_NAME, read_sidecar_base
    from imgfeat.flim.train import train_flim

    imgs = _images(tmp_path / "img", {"1C01.png": (24, 24), "2C01.png": (24, 24)})
    mk = tmp_path / "mk"
    with serve_in_thread(imgs, mk, labels="one,two", label_base=base) as url:
        assert not (mk / SIDECAR_NAME).exists()  # nothing saved, nothing written
        for i in range(2):
            # class "two" only: on its own, a file of label 1 (base 0) or 2 (base 1) is ambiguous
            pixels = [y * 24 + x for y in range(4, 20, 3) for x in range(3, 21)]
            assert _call(url + f"api/images/{i}/markers", "PUT",
                         {"pixels": pixels, "labels": [1] * len(pixels), "version": ""})[0] == 200
    assert read_sidecar_base(mk) == base
    conv = {"operation": "conv2d", "params": {"kernel_size": 3, "padding": 1, "out_channels": 4,
                                              "number_of_kernels_per_marker": 2, "center_patches": True}}
    arch = {"features": {"layers": {"m": {"operation": "m_norm2d"}, "conv1": conv}}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "ambiguous label base" warning
        r = train_flim(str(imgs), tmp_path / "m.safetensors", architecture=arch, markers=mk,
                       label_pattern=r"(\d)C")
    assert r.label_base == base
    # a session whose base disagrees with the folder's sidecar would misread its files: refused
    with pytest.raises(ConfigError, match=f"says label base {base}.*--label-base {base}"):
        AnnotationSession(imgs, mk, ["one", "two"], label_base=1 - base)


def test_learn_and_preview_returns_maps_of_the_chosen_layer(tmp_path):
    from imgfeat.flim.annotate import serve_in_thread

    rng = np.random.default_rng(1)
    img = np.zeros((40, 60, 3), dtype=np.uint8)
    img[:, :30] = (200, 40, 40)
    img[:, 30:] = (30, 60, 220)
    img = np.clip(img + rng.integers(0, 20, img.shape), 0, 255).astype(np.uint8)
    (tmp_path / "img").mkdir()
    Image.fromarray(img).save(tmp_path / "img" / "p.png")
    with serve_in_thread(tmp_path / "img", tmp_path / "mk", labels="red,blue", preview_side=32) as url:
        status, body = _call(url + "api/learn", "POST", {"index": 0})
        assert status == 400 and b"no saved markers" in body
        pixels = [y * 60 + x for y in range(10, 14) for x in range(5, 20)]
        pixels += [y * 60 + x for y in range(25, 29) for x in range(38, 55)]
        labels = [0] * 60 + [1] * 68
        assert _call(url + "api/images/0/markers", "PUT",
                     {"pixels": pixels, "labels": labels, "version": ""})[0] == 200
        status, body = _call(url + "api/learn", "POST", {"index": 0, "layer": "features.conv1"})
        assert status == 200, body
        r = json.loads(body)
        assert r["layer"] == "features.conv1" and "features.conv1" in r["layers"] and r["images"] == 1
        assert r["shape"] == [8, 21, 32]  # preview shrinks 60x40 to 32x21
        assert 1 <= len(r["maps"]) <= 8 and len(r["channels"]) == len(r["maps"])
        import base64
        import io

        first = Image.open(io.BytesIO(base64.b64decode(r["maps"][0].split(",", 1)[1])))
        arr = np.asarray(first)
        assert arr.shape == (21, 32) and arr.max() == 255 and arr.min() == 0
        # the strongest channel separates the red half from the blue half
        assert abs(float(arr[:, :14].mean()) - float(arr[:, 18:].mean())) > 40
        assert _call(url + "api/learn", "POST", {"index": 0, "layer": "nope"})[0] == 400


# ---------------------------------------------------------------------------------------------
# the CLI subcommand


def test_cli_parser_defaults():
    from imgfeat.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["flim", "annotate", "imgs", "--markers", "mk"])
    assert (args.port, args.labels, args.label_base, args.no_browser, args.budget) == (
        8765, "foreground,background", 1, False, None)
    flim = parser._subparsers._group_actions[0].choices["flim"]
    help_text = flim._subparsers._group_actions[0].choices["annotate"].format_help()
    assert "(default: 8765)" in help_text and "--no-browser" in help_text


def test_cli_serves_on_localhost_and_stops_on_ctrl_c(images, tmp_path):
    code = "import sys; from imgfeat.cli import main; sys.exit(main(['flim', *sys.argv[1:]]))"
    env = dict(os.environ, PYTHONPATH=str(SRC))
    proc = subprocess.Popen([sys.executable, "-c", code, "annotate", str(images), "--markers",
                             str(tmp_path / "mk"), "--port", "0", "--no-browser", "--labels", "x,y,z"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("annotate: http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[1]
        status, body = _call(url + "api/session")
        assert status == 200 and json.loads(body)["labels"] == ["x", "y", "z"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
