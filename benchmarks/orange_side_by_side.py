"""Image Analytics' local SqueezeNet next to the imgfeat Embedder on the same 60 images: seconds
to embed, and Test & Score's accuracy (10-fold stratified cross-validation of Orange's logistic
regression, its defaults); then a re-run of the imgfeat Embedder from its cache.

    flock /tmp/imgfeat-bench.lock python benchmarks/orange_side_by_side.py [--data DIR]
        [--classes 12 --per-class 5]

The 60 images: the first 5 images of the first 12 USPtex classes (``../shared/data/usptex``).
Each embedder starts with an empty cache; times include loading the model, as a first run in
Orange does.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
USPTEX = Path(__file__).resolve().parents[2] / "shared" / "data" / "usptex"


def usptex_table(root: Path, classes: int = 12, per_class: int = 5):
    """A table as Import Images makes it: class ``category``, meta ``image`` (type=image,
    origin=root) — USPtex names its files CLASS + C + number."""
    import numpy as np
    from Orange.data import DiscreteVariable, Domain, StringVariable, Table

    files = sorted(root.glob("*.png"))
    names = sorted({f.name.split("C")[0] for f in files}, key=int)[:classes]
    files = [f for f in files if f.name.split("C")[0] in names
             and int(f.stem.split("C")[1]) <= per_class]
    image = StringVariable("image")
    image.attributes.update(type="image", origin=str(root))
    domain = Domain([], DiscreteVariable("category", values=names), [image])
    y = np.array([names.index(f.name.split("C")[0]) for f in files], dtype=float)
    return Table.from_numpy(domain, np.empty((len(files), 0)), y,
                            np.array([[f.name] for f in files], dtype=object))


def test_and_score(table) -> float:
    """Test & Score's defaults: 10-fold stratified cross-validation, logistic regression."""
    from Orange.classification import LogisticRegressionLearner
    from Orange.evaluation import CA, CrossValidation

    res = CrossValidation(k=10, stratified=True, random_state=0)(table,
                                                                  [LogisticRegressionLearner()])
    return float(CA(res)[0])


def squeezenet(table) -> tuple[float, object]:
    from orangecontrib.imageanalytics.image_embedder import ImageEmbedder

    emb = ImageEmbedder(model="squeezenet")
    emb.clear_cache()
    t0 = time.perf_counter()
    out, _, skipped = emb(table, col="image")
    return time.perf_counter() - t0, out


def imgfeat_widget(table, options: dict, cache_file: Path):
    """The widget's own work (what it runs in its thread) and the table it outputs."""
    from imgfeat.orange.cache import VectorCache
    from imgfeat.orange.embed import embed_paths
    from imgfeat.orange.tables import image_paths, with_vectors

    t0 = time.perf_counter()
    res = embed_paths(image_paths(table, table.domain["image"]), options,
                      cache=VectorCache(cache_file))
    return time.perf_counter() - t0, with_vectors(table, res.ok, res.vectors), res


def cpu() -> str:
    name, flags = platform.processor(), ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        name = next(ln.split(":", 1)[1].strip() for ln in info.splitlines()
                    if ln.startswith("model name"))
        fl = next(ln for ln in info.splitlines() if ln.startswith("flags")).split()
        flags = " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in fl)
    except (OSError, StopIteration):
        pass
    return f"{name}; {os.cpu_count()} cores; {flags}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=USPTEX)
    ap.add_argument("--classes", type=int, default=12)
    ap.add_argument("--per-class", type=int, default=5)
    args = ap.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"no images at {args.data}")
    from AnyQt.QtWidgets import QApplication

    QApplication([])
    warnings.simplefilter("ignore")  # scikit-learn's deprecations inside Orange's learner
    table = usptex_table(args.data, args.classes, args.per_class)
    print(f"CPU: {cpu()}")
    print(f"{len(table)} images, {len(table.domain.class_var.values)} classes")
    print(f"{'embedder':44s} {'dim':>5s} {'seconds':>8s} {'CA':>6s}")
    sec, out = squeezenet(table)
    print(f"{'Image Analytics SqueezeNet (local)':44s} {len(out.domain.attributes):5d} "
          f"{sec:8.1f} {test_and_score(out):6.3f}")
    tmp = Path(tempfile.mkdtemp())
    for label, pool in (("imgfeat EfficientNet-Lite0 (packaged), avg", "avg"),
                        ("imgfeat EfficientNet-Lite0 (packaged), RADAM", "radam")):
        options = {"model": "tf_efficientnet_lite0", "pool": pool, "precision": "fp32"}
        sec, out, res = imgfeat_widget(table, options, tmp / f"{pool}.sqlite")
        print(f"{label:44s} {len(out.domain.attributes):5d} {sec:8.1f} {test_and_score(out):6.3f}")
        sec2, out2, res2 = imgfeat_widget(table, options, tmp / f"{pool}.sqlite")
        assert res2.computed == 0 and (out2.X == out.X).all()
        print(f"{'  the same, re-run (from the cache)':44s} {len(out2.domain.attributes):5d} "
              f"{sec2:8.2f}")


if __name__ == "__main__":
    main()
