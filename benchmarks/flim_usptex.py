"""FLIM on USPtex, validated on classes it was not tuned on: learned filters vs the same network
with random filters, run through the command line exactly as a user runs it.

Split (fixed rule): USPtex's 191 classes sorted by number; even positions (0, 2, …) are the
TUNING half (96 classes, 1,152 images: every recipe choice was made on it), odd positions the
HELD-OUT half (95 classes, 1,140 images: reported, never tuned on). Each half is run in colour
and in grey (the images converted to L and saved as grey PNGs), for ``--seeds`` seeds of the
automatic markers. Per run, in-process through ``imgfeat.cli.main`` (the console script's own
entry; no subprocess start-up in the timings):

    imgfeat flim markers HALF --label-pattern '(\\d+)C\\d+' -o MARKERS --seed S
    imgfeat flim train HALF --label-pattern … --markers MARKERS --arch texture -o M.safetensors --seed S
        [--random-filters]
    imgfeat extract HALF --label-pattern … --model flim:M.safetensors --layers all --pool avg -o OUT

then LDA and a linear SVM under stratified 10-fold CV on the standardised features
(``imgfeat.classify``). Printed: mean ± std over seeds per half, colour, filters and classifier,
with the learning time (``flim train``'s own report) and the extraction speed (images/s of
``extract``, decode and writing included).

    flock /tmp/imgfeat-bench.lock python benchmarks/flim_usptex.py [--seeds 0 1 2] [--halves held-out]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import imgfeat
from imgfeat.cli import main as cli

DEFAULT_DATA = next((p / "shared" / "data" / "usptex" for p in Path(__file__).resolve().parents
                     if (p / "shared" / "data" / "usptex").is_dir()), Path("usptex"))
PATTERN = r"(\d+)C\d+"


def half_folders(data: Path, root: Path, halves: list[str], greys: list[bool]) -> dict:
    """The halves as folders a user would point the CLI at (links to the originals, or grey PNGs)."""
    files = sorted(data.glob("*.png"))
    classes = sorted({re.match(PATTERN, f.name).group(1) for f in files}, key=int)
    parts = {"tuning": set(classes[0::2]), "held-out": set(classes[1::2])}
    out = {}
    for half in halves:
        for grey in greys:
            folder = root / f"{half}-{'grey' if grey else 'colour'}"
            folder.mkdir(parents=True)
            for f in files:
                if re.match(PATTERN, f.name).group(1) not in parts[half]:
                    continue
                if grey:
                    with Image.open(f) as im:
                        im.convert("L").save(folder / f.name)
                else:
                    (folder / f.name).symlink_to(f)
            out[(half, grey)] = (folder, len(parts[half]))
    return out


def run_cli(argv: list[str]) -> str:
    """One command as the console script runs it; its stdout (raises on a non-zero exit)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli([str(a) for a in argv])
    if rc != 0:
        raise SystemExit(f"imgfeat {' '.join(map(str, argv))} failed ({rc}):\n{buf.getvalue()}")
    return buf.getvalue()


def one_run(folder: Path, work: Path, arch: str, seed: int, random: bool, markers_args: list[str]) -> dict:
    tag = f"{'random' if random else 'learned'}-s{seed}"
    markers = work / f"markers-s{seed}"
    if not markers.is_dir():
        run_cli(["flim", "markers", folder, "--label-pattern", PATTERN, "-o", markers, "--seed", seed,
                 *markers_args])
    model = work / f"{tag}.safetensors"
    text = run_cli(["flim", "train", folder, "--label-pattern", PATTERN, "--markers", markers,
                    "--arch", arch, "-o", model, "--seed", seed, "-q"]
                   + (["--random-filters"] if random else []))
    learn_s = float(re.search(r"in ([\d.]+) s", text.splitlines()[-1]).group(1))
    out = work / f"{tag}-features"
    t0 = time.perf_counter()
    run_cli(["extract", folder, "--label-pattern", PATTERN, "--model", f"flim:{model}", "--layers", "all",
             "--pool", "avg", "-o", out, "--format", "npy", "-q"])
    secs = time.perf_counter() - t0
    X, y, _, _ = imgfeat.load_features(out)
    rep = imgfeat.classify(X, y, classifiers=("lda", "svm"), protocol="kfold", folds=10, seed=0,
                           standardize=True, n_jobs=2)
    return {"learn_s": learn_s, "images_s": len(X) / secs, "dim": int(X.shape[1]),
            **{r.name: 100 * r.summary()["accuracy"] for r in rep.results}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="marker seeds")
    ap.add_argument("--halves", nargs="+", choices=("tuning", "held-out"), default=["tuning", "held-out"])
    ap.add_argument("--colours", nargs="+", choices=("colour", "grey"), default=["colour", "grey"])
    ap.add_argument("--arch", default="texture", help="architecture: a shipped name or a JSON file")
    ap.add_argument("--markers-args", default="", help="extra options of 'flim markers' (one string)")
    ap.add_argument("--json", help="write every run's figures here")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="flim-usptex-"))
    greys = [c == "grey" for c in args.colours]
    folders = half_folders(Path(args.data), root / "data", args.halves, greys)
    print(f"USPtex halves (classes by number: even positions tune, odd positions are held out); "
          f"architecture {args.arch}; marker seeds {args.seeds}; {imgfeat.__name__} CLI in-process; "
          f"LDA / linear SVM, 10-fold CV, standardised features", flush=True)
    runs = []
    for (half, grey), (folder, _) in folders.items():
        for random in (False, True):
            for seed in args.seeds:
                work = root / "runs" / f"{half}-{'grey' if grey else 'colour'}"
                work.mkdir(parents=True, exist_ok=True)
                r = one_run(folder, work, args.arch, seed, random, args.markers_args.split())
                r.update(half=half, colour="grey" if grey else "colour", seed=seed,
                         filters="random" if random else "learned")
                runs.append(r)
                print(f"  {half:8s} {r['colour']:6s} {r['filters']:7s} seed {seed}: LDA {r['lda']:.2f}  "
                      f"SVM {r['svm']:.2f}  learn {r['learn_s']:.1f} s  extract {r['images_s']:.0f} img/s",
                      flush=True)
    print("\n| half | images | filters | LDA % | linear SVM % | learn s | extract img/s | dim |")
    print("|---|---|---|---|---|---|---|---|")
    for (half, grey), _ in folders.items():
        for filters in ("learned", "random"):
            rs = [r for r in runs if r["half"] == half and r["colour"] == ("grey" if grey else "colour")
                  and r["filters"] == filters]
            ms = {k: (np.mean([r[k] for r in rs]), np.std([r[k] for r in rs])) for k in
                  ("lda", "svm", "learn_s", "images_s")}
            print(f"| {half} | {'grey' if grey else 'colour'} | {filters} | {ms['lda'][0]:.2f} ± "
                  f"{ms['lda'][1]:.2f} | {ms['svm'][0]:.2f} ± {ms['svm'][1]:.2f} | {ms['learn_s'][0]:.1f} | "
                  f"{ms['images_s'][0]:.0f} | {rs[0]['dim']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
