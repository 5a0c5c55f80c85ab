"""No idle core: whole runs of ``imgfeat.extract`` with the network in one process (every
thread) against one single-thread compute process per core, per runtime, interleaved; and one
process with ONNX Runtime's threads spinning between runs or not, OpenVINO's pinned to cores or
not. Prints the CPU
features, images/s (medians), the rule the figures support and the rule in
``imgfeat.engines.cores``. The default run is short (subsets); the lead runs it on a quiet
machine with larger ones:

    flock /tmp/imgfeat-bench.lock python benchmarks/cores.py [--usptex-images 2292] \\
        [--large 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from extract_throughput import make_images  # noqa: I001 - benchmarks run as scripts
from precision_usptex import cpu_features

import imgfeat
from imgfeat.engines.cores import PER_CORE, describe_rule
from imgfeat.runtimes import installed_runtimes, onnx, openvino, runtime_version

USPTEX = Path("/work/shared/data/usptex")
#: a per-core run must be this much faster on every image set for the rule to choose it
MARGIN = 1.05


def usptex_list(folder: Path, n: int, out: Path) -> Path:
    """A CSV list of the first ``n`` USPtex images (label: the class in the file name)."""
    paths = sorted(folder.rglob("*.png"))[:n]
    out.write_text("".join(f"{p.stem[:-3]},{p}\n" for p in paths))
    return out


def whole_run(source: Path, out: Path, runtime: str, procs: int, args) -> float:
    """Images/s of one ``imgfeat.extract`` (model start and probe included)."""
    t0 = time.perf_counter()
    res = imgfeat.extract(source, out, model=args.model, pretrained=args.pretrained,
                          precision="fp32",
                          runtime=runtime, compute_processes=procs, progress=False,
                          overwrite=True)
    assert (res.runtime, res.compute_processes) == (runtime, procs), res
    return res.items / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tf_efficientnet_lite0")
    ap.add_argument("--usptex-images", type=int, default=240)
    ap.add_argument("--large", type=int, default=32, help="large generated JPEGs (1600x1200)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--usptex", type=Path, default=USPTEX)
    ap.add_argument("--runtimes", nargs="+", default=None,
                    help="only these runtimes (default: every installed one)")
    ap.add_argument("--no-pretrained", dest="pretrained", action="store_false",
                    help="random weights (their tiny values can run slower in torch: "
                         "the rule is measured with the real ones)")
    ap.add_argument("--large-dir", type=Path, default=Path(tempfile.gettempdir())
                    / "imgfeat-runtimes-large", help="where the large JPEGs are made (kept)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imgfeat-cores-"))
    os.environ.setdefault("IMGFEAT_CACHE_DIR", str(work / "cache"))
    cores = len(os.sched_getaffinity(0))
    print(cpu_features())
    print(f"cores {cores}; torch {torch.__version__}, "
          + ", ".join(f"{r} {runtime_version(r)}" for r in installed_runtimes()[1:]))
    sets = {}
    if args.usptex.is_dir() and args.usptex_images:
        sets["usptex"] = usptex_list(args.usptex, args.usptex_images, work / "usptex.csv")
    sets["large"] = make_images(args.large_dir / str(args.large), args.large, (1600, 1200))
    # (runtime, compute processes, ONNX Runtime spinning or OpenVINO pinning: their defaults)
    runtimes = [rt for rt in installed_runtimes() if args.runtimes is None or rt in args.runtimes]
    variants = [(rt, n, False) for rt in runtimes for n in (1, cores)]
    # (a single-thread ONNX Runtime session has no threads to spin)
    variants += [v for v in (("onnxruntime", 1, True), ("openvino", 1, True),
                             ("openvino", cores, True)) if v[0] in runtimes]
    warm = make_images(work / "warm", 4, (320, 240))
    for rt, n, _ in variants:  # exports cached and the process server started: not timed
        whole_run(warm, work / "warm-out", rt, n, args)
    rates: dict[tuple, list[float]] = {}
    for rep in range(args.repeats):
        for name, source in sets.items():
            k = rep % len(variants)
            for v in variants[k:] + variants[:k]:
                onnx.SPINNING = openvino.PINNING = v[2]
                rates.setdefault((name, *v), []).append(
                    whole_run(source, work / "out", v[0], v[1], args))
                print(f"  repeat {rep}: {name} {v[0]} x{v[1]}{' spin/pin' if v[2] else ''} "
                      f"{rates[name, *v][-1]:.1f} img/s", flush=True)
    onnx.SPINNING = openvino.PINNING = False
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"\n| runtime | image set | 1 process x {cores} threads (img/s) | {cores} "
          f"single-thread processes (img/s) | per-core / 1 |")
    print("|---|---|---|---|---|")
    measured: dict[str, tuple[int, ...]] = {}
    for rt in runtimes:
        ratios = []
        for name in sets:
            one, per = med[name, rt, 1, False], med[name, rt, cores, False]
            ratios.append(per / one)
            print(f"| {rt} | {name} | {one:.1f} | {per:.1f} | {per / one:.2f}x |")
        measured[rt] = (cores,) if min(ratios) >= MARGIN else ()
    for rt, what in (("onnxruntime", "spinning"), ("openvino", "pinned")):
        for name in sets:
            for n in {1, cores} if rt in runtimes else ():
                if (name, rt, n, True) not in med:
                    continue
                off, on = med[name, rt, n, False], med[name, rt, n, True]
                print(f"{rt}, {n} process(es), {name}: threads {what} {on:.1f} img/s, not "
                      f"{off:.1f} img/s ({off / on:.2f}x)")
    print(f"\nrule measured here ({cores} cores, per-core when >= {MARGIN}x on every set): "
          + "; ".join(f"{rt}: {'per core' if c else '1 process'}" for rt, c in measured.items()))
    print(f"rule in imgfeat.engines.cores: {describe_rule()}")
    if any(measured[rt] != tuple(c for c in PER_CORE.get(rt, ()) if c == cores)
           for rt in measured):
        print(f"they differ at {cores} cores: update PER_CORE in src/imgfeat/engines/cores.py")


if __name__ == "__main__":
    main()
