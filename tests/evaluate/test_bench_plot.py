import numpy as np
from PIL import Image

from imgfeat.cli import main
from imgfeat.evaluate.bench import bench


def usptex_replica(root, classes=3, per=6):
    rng = np.random.default_rng(0)
    for c in range(classes):
        for k in range(per):
            arr = rng.integers(0, 80, (24, 24, 3), dtype=np.uint8)
            arr[..., c] += 150
            Image.fromarray(arr).save(root / f"{c + 1}C{k + 1:02d}.png")
    return root


def test_bench_grid_is_cached_and_summarised(tmp_path):
    data = usptex_replica(tmp_path)
    out = tmp_path / "bench"
    kw = dict(models=["test_efficientnet", "test_convnext"], pools=["avg", "max"],
              classifiers=["knn", "svm"], img_size=64, pretrained=False, folds=3, repeats=2, progress=False,
              n_jobs=1, log=None)
    import imgfeat.evaluate.bench as b

    rows = bench("usptex", data, out, **kw)
    assert len(rows) == 2 * 2 * 2
    assert {r["model"] for r in rows} == {"test_efficientnet", "test_convnext"}
    assert all(0 <= r["accuracy"] <= 1 for r in rows)
    md = (out / "summary.md").read_text()
    assert md.count("| usptex |") == 8 and "± " in md
    cells = sorted(p.name for p in (out / "feature_matrix").iterdir())
    assert len(cells) == 4 and all(c.startswith("usptex_test_") for c in cells)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    calls = []
    original = b.classify
    b.classify = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        again = bench("usptex", data, out, **kw)
    finally:
        b.classify = original
    assert not calls  # classification reused
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")} == stamps  # features too
    assert [r["accuracy"] for r in again] == [r["accuracy"] for r in rows]


def test_bench_and_plot_cli(tmp_path, capsys):
    usptex_replica(tmp_path)
    assert main(["bench", "--dataset", "usptex", "--data-path", str(tmp_path), "--output",
                 str(tmp_path / "b"), "--model", "test_efficientnet", "--no-pretrained",
                 "--classifier", "knn",
                 "--img-size", "64", "--folds", "3", "--repeats", "1", "--jobs", "1", "-q"]) == 0
    out = capsys.readouterr().out
    assert "| usptex | test_efficientnet | final | avg | kfold | knn |" in out
    feats = next((tmp_path / "b" / "feature_matrix").iterdir())
    for method in ("pca", "tsne", "umap"):
        png = tmp_path / f"map_{method}.png"
        assert main(["plot", str(feats), "-o", str(png), "--method", method]) == 0
        with Image.open(png) as im:
            assert im.size[0] > 400 and im.mode in ("RGBA", "RGB")


def _browser() -> str | None:
    import os
    import shutil

    return os.environ.get("IMGFEAT_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
        None)


def test_html_map_in_a_real_browser(tmp_path):
    """The interactive map opened in headless Chromium: one point per image, hover text with
    the image id, a legend click hides exactly that class, and the page renders."""
    import pytest

    exe = _browser()
    if exe is None:
        pytest.skip("no Chromium found (make test installs Debian's chromium as root)")
    playwright = pytest.importorskip("playwright.sync_api")
    import imgfeat

    usptex_replica(tmp_path, classes=3, per=5)
    res = imgfeat.extract(tmp_path, tmp_path / "f", model="test_efficientnet", pretrained=False,
                          img_size=64, label_pattern=r"(\d+)C\d+", progress=False)
    page_path = tmp_path / "map.html"
    assert main(["plot", str(res.output), "-o", str(page_path), "--method", "tsne"]) == 0
    _, y, ids, _ = imgfeat.load_features(res.output)
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 900, "height": 700})
            page.goto(page_path.as_uri())
            circles = page.locator("#map circle")
            assert circles.count() == len(ids) == 15
            titles = sorted(circles.nth(i).locator("title").text_content() for i in range(15))
            assert titles == sorted(f"{i} ({lab})" for i, lab in zip(ids, y, strict=True))
            legend = page.locator("#legend li")
            assert legend.count() == 3 and "(5)" in legend.first.text_content()
            assert page.locator("#map circle:visible").count() == 15
            legend.nth(1).click()
            assert page.locator("#map circle:visible").count() == 10
            hidden = page.locator("#map circle:not(:visible)")
            assert {hidden.nth(i).get_attribute("data-label") for i in range(5)} == {
                legend.nth(1).get_attribute("data-label")}
            assert page.title() == "10 shown"
            legend.nth(1).click()
            assert page.locator("#map circle:visible").count() == 15
            box = page.locator("#map").bounding_box()
            assert 600 <= box["width"] <= 604 and 600 <= box["height"] <= 604  # + border
            for i in range(15):  # every point drawn inside the map
                c = circles.nth(i).bounding_box()
                assert box["x"] <= c["x"] and c["x"] + c["width"] <= box["x"] + box["width"]
                assert box["y"] <= c["y"] and c["y"] + c["height"] <= box["y"] + box["height"]
            page.screenshot(path=str(tmp_path / "map.png"))
        finally:
            browser.close()
    with Image.open(tmp_path / "map.png") as im:
        colours = len(np.unique(np.asarray(im.convert("RGB")).reshape(-1, 3), axis=0))
    assert colours > 4  # points and legend actually drawn, not a blank page
