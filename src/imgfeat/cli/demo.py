"""``imgfeat demo``."""

from __future__ import annotations

import argparse
import time


def add_parsers(sub) -> None:
    p = sub.add_parser("demo", help="extract and classify a small bundled texture set (offline)",
                       description="Cut a small texture set (6 classes x 12 patches) out of "
                                   "scikit-image's bundled images, extract features with the "
                                   "packaged EfficientNet-Lite0 ImageNet weights and classify "
                                   "them: no network needed.")
    p.add_argument("-o", "--output", default="imgfeat-demo", help="folder for images and features")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    r = run_demo(args.output, progress=False if args.quiet else None)
    w = r["weights"]
    print(f"textures : {r['n_images']} images, {r['n_classes']} classes "
          f"(patches of scikit-image's bundled images) in {r['textures']}")
    print(f"features : tf_efficientnet_lite0, ImageNet weights from {w['source']} ({w['name']}), "
          f"{r['dim']} values per image -> {r['features']}")
    for name, s in r["scores"].items():
        label = {"knn": "1-NN", "svm": "linear SVM"}.get(name, name)
        print(f"accuracy : {label:<10} {100 * s['accuracy']:.1f}% ± {100 * s['accuracy_std']:.1f} "
              f"({s['repeats']}x{s['folds']}-fold CV)")
    # the wait as the user has it, from the command's start: imports and model loading included
    print(f"time     : {time.perf_counter() - args.started:.1f} s")
    print("\nnext:")
    print(f"  imgfeat classify {r['features']} --classifier knn lda svm --folds 4 --repeats 3")
    print("  imgfeat info tf_efficientnet_lite0")
    print(f"  imgfeat extract {r['textures']} -o my-features --layers all --pool gem")
    print(f"  python -c \"import imgfeat; X, y, ids, meta = imgfeat.load_features("
          f"'{r['features']}'); print(X.shape)\"")
    return 0
