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
    for method in ("pca", "tsne"):
        png = tmp_path / f"map_{method}.png"
        assert main(["plot", str(feats), "-o", str(png), "--method", method]) == 0
        with Image.open(png) as im:
            assert im.size[0] > 400 and im.mode in ("RGBA", "RGB")
