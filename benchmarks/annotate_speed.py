"""Painting speed of the annotation page in headless Chromium, on a 4000x3000 image.

Dispatches 200 pointer moves of a 25 px brush across the image (each move lands ~15 image pixels
from the previous one) and times, inside the page, how long applying them takes: each move
painted as its own batch (one move per frame, the slowest case), and all 200 in one batch. Also
the time until the next two animation frames (the painted strokes reach the screen), and that
the painted mask equals the stroke (checked by counting pixels).

    python benchmarks/annotate_speed.py [--quick]      # --quick: 800x600, 50 moves
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

MEASURE = """async ([n, brush]) => {
  const a = window.annotator, app = a.app, stage = document.getElementById('stage');
  const r = stage.getBoundingClientRect(), st = a.current();
  const client = (x, y) => [r.left + app.panX + x * app.zoom, r.top + app.panY + y * app.zoom];
  const fire = (type, x, y) => {
    const [cx, cy] = client(x, y);
    stage.dispatchEvent(new PointerEvent(type, {clientX: cx, clientY: cy, button: 0, buttons: 1,
      pointerId: 7, bubbles: true}));
  };
  const path = [];
  for (let k = 0; k <= n; k++) {      // a zigzag across the image, ~15 px per move
    const t = k / n, x = 60 + t * (st.w - 120);
    path.push([x, st.h / 2 + Math.sin(k / 3) * st.h / 4]);
  }
  app.brush = brush;
  const run = (batched) => {
    fire('pointerdown', ...path[0]);
    a.flush();
    const t0 = performance.now(), per = [];
    for (let k = 1; k <= n; k++) {
      const s = performance.now();
      fire('pointermove', ...path[k]);
      if (!batched) { a.flush(); per.push(performance.now() - s); }
    }
    if (batched) a.flush();
    const t1 = performance.now();
    fire('pointerup', ...path[n]);
    return {ms: t1 - t0, per};
  };
  const single = run(false);
  const t2 = performance.now();
  await new Promise(res => requestAnimationFrame(() => requestAnimationFrame(res)));
  const shown = performance.now() - t2;
  const painted = st.counts[1];
  document.dispatchEvent(new KeyboardEvent('keydown', {key: 'z', ctrlKey: true}));
  const undone = st.counts[1];
  const batch = run(true);
  const per = single.per.sort((x, y) => x - y);
  return {w: st.w, h: st.h, single: single.ms, median: per[per.length >> 1], max: per[per.length - 1],
          batch: batch.ms, shown, painted, undone, again: st.counts[1]};
}"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="an 800x600 image and 50 moves (smoke run)")
    ap.add_argument("--moves", type=int, default=200, help="pointer moves to apply")
    ap.add_argument("--brush", type=int, default=25, help="brush diameter in image pixels")
    args = ap.parse_args(argv)
    w, h, n = (800, 600, 50) if args.quick else (4000, 3000, args.moves)
    exe = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if exe is None:
        print("no Chromium found (apt-get install chromium)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    from imgfeat.flim.annotate import serve_in_thread

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "img"
        folder.mkdir()
        yy, xx = np.mgrid[0:h, 0:w]
        rgb = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) % 256], axis=-1).astype(np.uint8)
        Image.fromarray(rgb).save(folder / "big.png", compress_level=1)
        with serve_in_thread(folder, Path(tmp) / "mk", labels="a,b") as url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']", timeout=120000)
            r = page.evaluate(MEASURE, [n, args.brush])
            browser.close()
    print(f"image {r['w']}x{r['h']}, brush {args.brush} px, {n} pointer moves (Chromium {exe})")
    print(f"  one batch per move : {r['single']:.1f} ms in all, {r['single'] / n:.2f} ms per move "
          f"(median {r['median']:.2f}, max {r['max']:.2f})")
    print(f"  all moves one batch: {r['batch']:.1f} ms")
    print(f"  on screen after two frames: +{r['shown']:.1f} ms")
    print(f"  painted {r['painted']} pixels; undo -> {r['undone']}; painted again -> {r['again']}")
    if r["undone"] != 0 or r["again"] != r["painted"]:
        print("error: painting is not reproducible", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
