"""The annotation page in a real headless Chromium: strokes of two classes, undo/redo, history
kept across image switches, the eraser, saving to the FLIM marker format, reload, refusals."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from imgfeat.flim.markers import Markers, read_markers, write_markers

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")


def _chromium() -> str | None:
    return os.environ.get("IMGFEAT_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.fixture(scope="module")
def browser():
    exe = _chromium()
    if exe is None:
        pytest.skip("no Chromium found (make browser installs Debian's chromium as root)")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def _images(root, sizes, seed=0):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, (w, h) in sizes.items():
        Image.fromarray(rng.integers(60, 200, (h, w, 3), dtype=np.uint8)).save(root / name)
    return root


class Canvas:
    """Image pixel -> screen point on the page's overlay canvas (the page's own zoom and pan)."""

    def __init__(self, page, w: int, h: int):
        self.page, self.w, self.h = page, w, h

    def point(self, x: float, y: float) -> tuple[float, float]:
        box = self.page.locator("#overlay").bounding_box()
        return box["x"] + (x + 0.5) * box["width"] / self.w, box["y"] + (y + 0.5) * box["height"] / self.h

    def stroke(self, a: tuple[int, int], b: tuple[int, int], steps: int = 6) -> None:
        m = self.page.mouse
        m.move(*self.point(*a))
        m.down()
        m.move(*self.point(*b), steps=steps)
        m.up()

    def click(self, x: int, y: int) -> None:
        self.page.mouse.move(*self.point(x, y))
        self.page.mouse.down()
        self.page.mouse.up()


def _counts(page) -> list[int]:
    return page.evaluate("window.annotator.current().counts.slice(1)")


def _painted(page) -> set[tuple[int, int, int]]:
    """(x, y, class 0-based) of every painted overlay pixel, read back from the canvas itself."""
    data = page.evaluate("""() => {
        const c = document.getElementById('overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const out = [];
        for (let i = 0; i < d.length; i += 4)
            if (d[i + 3]) out.push([i / 4, d[i], d[i + 1], d[i + 2], d[i + 3]]);
        return {w: c.width, px: out};
    }""")
    colours = {(230, 25, 75): 0, (60, 180, 75): 1}  # the page's first two class colours
    out = set()
    for i, r, g, b, a in data["px"]:
        assert a == 255  # a painted pixel is fully painted: no holes, no half-blended overlaps
        out.add((i % data["w"], i // data["w"], colours[r, g, b]))
    return out


def _on_disk(path) -> set[tuple[int, int, int]]:
    m = read_markers(path, label_base=1)
    return set(zip(m.x.tolist(), m.y.tolist(), m.label.tolist(), strict=True))


def _wait_saved(page) -> None:
    page.wait_for_function("document.getElementById('status').dataset.state === 'saved'", timeout=15000)


def test_draw_undo_redo_switch_erase_save_reload(browser, tmp_path):
    from imgfeat.flim.annotate import serve_in_thread

    imgs = _images(tmp_path / "img", {"a.png": (48, 32), "b.png": (40, 30)})
    mk = tmp_path / "mk"
    write_markers(mk / "b.txt", Markers(40, 30, [2, 3], [5, 5], None, [1, 1]), label_base=1)
    (tmp_path / "secret.txt").write_text("secret")
    with serve_in_thread(imgs, mk, labels="egg,background") as url:
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']")
        assert "Ctrl+Shift+Z redo" in page.locator("#shortcuts").text_content()
        assert page.locator("#progress").text_content() == "1 / 2 images marked"
        assert "no markers of class “egg”" in page.locator("#warnings").text_content()
        c = Canvas(page, 48, 32)

        page.keyboard.press("1")  # class egg, brush 3 (a 3x3 stamp)
        c.stroke((5, 8), (20, 8))
        page.keyboard.press("2")
        page.keyboard.press("[")
        page.keyboard.press("[")  # brush 1
        assert page.locator("#size").input_value() == "1"
        c.stroke((30, 4), (30, 20))
        egg = {(x, y, 0) for x in range(4, 22) for y in range(7, 10)}
        line = {(30, y, 1) for y in range(4, 21)}
        assert _counts(page) == [len(egg), len(line)]

        page.keyboard.press("Control+z")
        assert _counts(page) == [len(egg), 0]
        page.keyboard.press("Control+Shift+z")
        assert _counts(page) == [len(egg), len(line)]
        assert _painted(page) == egg | line

        page.locator("#images li[data-index='1']").click()  # switching saves, then shows b's file
        page.wait_for_function("window.annotator.app.index === 1")
        assert _painted(page) == {(2, 5, 1), (3, 5, 1)}  # class 1 = background
        assert _on_disk(mk / "a.txt") == egg | line
        page.locator("#images li[data-index='0']").click()
        page.wait_for_function("window.annotator.app.index === 0")
        page.keyboard.press("Control+z")  # history survived the switch
        assert _counts(page) == [len(egg), 0]
        page.keyboard.press("Control+Shift+z")
        assert _counts(page) == [len(egg), len(line)]

        page.keyboard.press("e")  # eraser, its own size (9): down to 3
        assert page.locator("#size").input_value() == "9"
        for _ in range(6):
            page.keyboard.press("[")
        c.click(10, 8)
        erased = {(x, y, 0) for x in range(9, 12) for y in range(7, 10)}
        expected = (egg - erased) | line
        assert _counts(page) == [len(egg) - 9, len(line)]
        page.locator("#save").click()
        _wait_saved(page)
        m = read_markers(mk / "a.txt", label_base=1)
        assert (m.width, m.height) == (48, 32) and _on_disk(mk / "a.txt") == expected
        assert len(set(m.marker_id.tolist())) == 3  # the erased gap split the egg stroke in two
        assert (mk / "a.txt").read_text().splitlines()[0] == f"{len(expected)} 48 32"

        # clear image, undo it
        page.locator("#clear").click()
        assert _counts(page) == [0, 0]
        page.keyboard.press("Control+z")
        assert _counts(page) == [len(egg) - 9, len(line)]
        _wait_saved(page)

        page.reload()
        page.wait_for_selector("body[data-ready='1']")
        assert _painted(page) == expected
        assert page.locator("#progress").text_content() == "2 / 2 images marked"
        assert page.locator("#warnings").text_content() == ""

        # the page cannot reach outside the marker folder
        for name in ["../secret.txt", "..%2Fsecret.txt", "%2Ftmp%2Fx", "..%5Csecret.txt"]:
            status = page.evaluate(f"fetch('/api/files/{name}').then(r => r.status)")
            assert status in (403, 404), name
            text = page.evaluate(f"fetch('/api/files/{name}').then(r => r.text())")
            assert "secret\"" not in text and text != "secret"
        assert page.evaluate("fetch('/api/files/a.txt').then(r => r.status)") == 200

        # learn and preview from the page
        page.locator("#learn-btn").click()
        page.wait_for_selector("#maps img", timeout=120000)
        assert page.locator("#maps img").count() == 8
        assert "learned from 2 image(s)" in page.locator("#learn-info").text_content()
        page.close()


def test_strokes_over_strokes_leave_no_holes_and_fast_moves_stay_connected(browser, tmp_path):
    """Many pointer moves batched into one frame are interpolated (a 1 px line with no gap), and
    painting the same path again changes nothing."""
    from imgfeat.flim.annotate import serve_in_thread

    imgs = _images(tmp_path / "img", {"z.png": (64, 48)})
    with serve_in_thread(imgs, tmp_path / "mk", labels="a,b") as url:
        page = browser.new_page(viewport={"width": 900, "height": 700})
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']")
        for _ in range(2):
            page.keyboard.press("[")
        c = Canvas(page, 64, 48)
        # a diagonal zigzag with big jumps between moves: each move lands several pixels away
        path = [(2, 2), (40, 30), (10, 44), (60, 5)]
        for _ in range(2):
            c.page.mouse.move(*c.point(*path[0]))
            c.page.mouse.down()
            for p in path[1:]:
                c.page.mouse.move(*c.point(*p), steps=2)
            c.page.mouse.up()
        painted = _painted(page)
        assert len(painted) == _counts(page)[0]
        xy = {(x, y) for x, y, _ in painted}
        # every painted pixel but the two ends has an 8-neighbour painted: the line is connected
        from scipy import ndimage

        mask = np.zeros((48, 64), dtype=bool)
        for x, y in xy:
            mask[y, x] = True
        assert ndimage.label(mask, structure=np.ones((3, 3)))[1] == 1
        assert {(2, 2), (40, 30), (10, 44), (60, 5)} <= xy
        # the second pass added no undo entry with changes (nothing new to paint)
        assert page.evaluate("window.annotator.current().undo.length") == 1
        page.close()


SLOW_PUTS = """
(() => {
  // every PUT takes 150 ms longer; count how many of one image are in flight at once
  const real = window.fetch.bind(window);
  window.putStats = { now: {}, max: 0, sent: 0 };
  window.fetch = async (url, options = {}) => {
    if (options.method !== "PUT") return real(url, options);
    const s = window.putStats;
    s.now[url] = (s.now[url] || 0) + 1; s.max = Math.max(s.max, s.now[url]); s.sent++;
    try { await new Promise((r) => setTimeout(r, 150)); return await real(url, options); }
    finally { s.now[url]--; }
  };
})();
"""


def test_one_save_of_an_image_in_flight_and_a_stale_save_reloads(browser, tmp_path):
    import json
    import urllib.request

    from imgfeat.flim.annotate import serve_in_thread

    imgs = _images(tmp_path / "img", {"a.png": (48, 32)})
    mk = tmp_path / "mk"
    with serve_in_thread(imgs, mk, labels="egg,background") as url:
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.add_init_script(SLOW_PUTS)
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']")
        c = Canvas(page, 48, 32)
        page.keyboard.press("1")
        drawn = set()
        for k in range(6):  # strokes and Ctrl+S faster than a save answers
            c.stroke((2, 2 + 4 * k), (40, 2 + 4 * k), steps=3)
            drawn |= {(x, y, 0) for x in range(1, 42) for y in range(1 + 4 * k, 4 + 4 * k)}
            page.keyboard.press("Control+s")
            page.keyboard.press("Control+s")
        _wait_saved(page)
        stats = page.evaluate("window.putStats")
        assert stats["max"] == 1 and stats["sent"] >= 2, stats
        assert _on_disk(mk / "a.txt") == _painted(page) == drawn

        # another tab saves other markers: this page's next save is refused and it reloads them
        version = json.loads(urllib.request.urlopen(url + "api/images/0/markers").read())["version"]
        req = urllib.request.Request(url + "api/images/0/markers", method="PUT", data=json.dumps(
            {"pixels": [5, 6], "labels": [1, 1], "version": version}).encode(),
            headers={"X-Imgfeat": "1", "Content-Type": "application/json"})
        assert urllib.request.urlopen(req).status == 200
        c.stroke((10, 28), (30, 28), steps=3)
        page.keyboard.press("Control+s")
        page.wait_for_function("document.getElementById('status').textContent.includes('reloaded')",
                               timeout=15000)
        assert _painted(page) == _on_disk(mk / "a.txt") == {(5, 0, 1), (6, 0, 1)}
        c.stroke((10, 20), (12, 20), steps=2)  # and it saves over what it reloaded
        page.keyboard.press("Control+s")
        _wait_saved(page)
        assert _on_disk(mk / "a.txt") == _painted(page)
