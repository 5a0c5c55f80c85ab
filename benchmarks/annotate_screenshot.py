"""The README screenshot of ``imgfeat flim annotate`` (docs/annotate.png), made in headless Chromium.

Serves three crops of scikit-image's bundled immunohistochemistry picture, draws strokes of two
classes with the mouse, runs "learn and preview" and saves the page.

    python benchmarks/annotate_screenshot.py [-o docs/annotate.png] [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def make_images(folder: Path) -> None:
    from skimage import data

    img = Image.fromarray(data.immunohistochemistry())
    folder.mkdir(parents=True, exist_ok=True)
    for k, (x, y) in enumerate([(0, 0), (192, 64), (96, 256)]):
        img.crop((x, y, x + 320, y + 240)).save(folder / f"slide_{k + 1}.png")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=str(ROOT / "docs" / "annotate.png"), help="PNG to write")
    ap.add_argument("--quick", action="store_true", help="skip 'learn and preview' (smoke run)")
    args = ap.parse_args(argv)
    exe = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if exe is None:
        print("no Chromium found (apt-get install chromium)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    from imgfeat.flim.annotate import serve_in_thread

    with tempfile.TemporaryDirectory() as tmp:
        make_images(Path(tmp) / "img")
        with serve_in_thread(Path(tmp) / "img", Path(tmp) / "markers", labels="nucleus,stroma,background",
                             budget=4000) as url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 760})
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']")
            box = page.locator("#overlay").bounding_box()

            def at(x: float, y: float) -> tuple[float, float]:
                return box["x"] + x * box["width"] / 320, box["y"] + y * box["height"] / 240

            strokes = {"1": [[(52, 40), (70, 52), (84, 48)], [(236, 150), (250, 166)]],
                       "2": [[(120, 120), (170, 110), (220, 125)], [(40, 200), (90, 210)]],
                       "3": [[(270, 30), (300, 60), (305, 110)]]}
            for key, paths in strokes.items():
                page.keyboard.press(key)
                page.keyboard.press("]")
                page.keyboard.press("]")
                for path in paths:
                    page.mouse.move(*at(*path[0]))
                    page.mouse.down()
                    for p in path[1:]:
                        page.mouse.move(*at(*p), steps=10)
                    page.mouse.up()
            page.locator("#save").click()
            page.wait_for_function("document.getElementById('status').dataset.state === 'saved'")
            if not args.quick:
                page.locator("#learn-btn").click()
                page.wait_for_selector("#maps img", timeout=120000)
            page.keyboard.press("1")
            page.mouse.move(*at(150, 60))
            Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.output)
            browser.close()
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
