"""Runtimes side by side: torch eager, OpenVINO and ONNX Runtime, on the same images and model.

Prints the CPU features, then per runtime (fp32): forward-only images/s on ready tensors, the
whole run's images/s of ``imgfeat.extract`` on the USPtex images and on large generated JPEGs
(torch in one process as it ran before compute processes, each runtime under the default
compute-process rule, and the default ``auto`` itself; interleaved within each repeat;
medians), the largest vector difference to torch, the
naive one-image loop of ``extract_throughput.py``, and what ``auto`` chose. With ``--startup``:
the time to the first vector and a one-image run's wall time, torch against a cached export.
Exported models go to a temporary cache; the export itself is timed once per runtime.

    flock /tmp/imgfeat-bench.lock python benchmarks/runtimes.py [--repeats 1] [--startup]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from extract_throughput import make_images, naive_loop  # noqa: I001 - benchmarks run as scripts
from precision_usptex import cpu_features

import imgfeat
from imgfeat import Extractor, ModelConfig
from imgfeat.runtimes import installed_runtimes, runtime_version

USPTEX = next((p for p in (Path(__file__).resolve().parents[2] / "shared" / "data" / "usptex",
                           Path("/work/shared/data/usptex")) if p.is_dir()),
              Path("usptex"))


def forward_rate(ex: Extractor, batch: int, seconds: float = 8.0) -> float:
    """Images/s of ``embed`` on a ready uint8 batch at the model's input size (after one
    warm-up), for ``seconds``."""
    x = torch.randint(0, 256, (batch, *ex.data_config["input_size"]), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(0))
    ex.embed(x)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        ex.embed(x)
        n += batch
    return n / (time.perf_counter() - t0)


def _one_thread_rate(cfg: ModelConfig, runtime: str, queue) -> None:
    torch.set_num_threads(1)
    queue.put(forward_rate(Extractor(cfg, runtime=runtime, threads=1), 16))


def processes_vs_threads(cfg: ModelConfig, runtime: str) -> tuple[float, float]:
    """Forward-only images/s of one process with every core's thread against one
    single-thread process per core, all running at once (the 'no idle core' question)."""
    import multiprocessing as mp

    cores = len(os.sched_getaffinity(0))
    threads = forward_rate(Extractor(cfg, runtime=runtime, threads=cores), 16)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_one_thread_rate, args=(cfg, runtime, queue))
             for _ in range(cores)]
    for p in procs:
        p.start()
    total = sum(queue.get() for _ in procs)
    for p in procs:
        p.join()
    return threads, total


def whole_run(folder: Path, out: Path, runtime: str, procs, model: str, pretrained: bool
              ) -> tuple[float, str]:
    """Images/s of one ``imgfeat.extract`` of ``folder`` (model build and probe included) with
    ``procs`` compute processes, and what ran (runtime x processes)."""
    t0 = time.perf_counter()
    res = imgfeat.extract(folder, out, model=model, pretrained=pretrained, precision="fp32",
                          runtime=runtime, compute_processes=procs, progress=False,
                          overwrite=True)
    assert runtime == "auto" or res.runtime == runtime, (res.runtime, runtime)
    return res.items / (time.perf_counter() - t0), f"{res.runtime} x{res.compute_processes}"


def vectors(out: Path) -> np.ndarray:
    return imgfeat.load_features(out)[0].astype(np.float64)


def startup(model: str, pretrained: bool, runtime: str, image_dir: Path
            ) -> tuple[float, float, bool]:
    """(seconds from launch to the first vector, one-image CLI run's wall seconds, timm
    imported) in fresh processes."""
    code = ("import sys, time; t0 = float(sys.argv[1]); import torch\n"
            "from imgfeat import Extractor, ModelConfig\n"
            f"ex = Extractor(ModelConfig(model={model!r}, pretrained={pretrained}, "
            f"precision='fp32'), runtime={runtime!r})\n"
            "ex.embed(torch.zeros(1, 3, *ex.data_config['input_size'][1:], dtype=torch.uint8))\n"
            "print(time.time() - t0, 'timm' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, repr(time.time())], capture_output=True,
                       text=True, check=True)
    first, timm = r.stdout.split()
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "imgfeat", "extract", str(image_dir), "-o",
                        f"{out}/f", "--model", model, "--precision", "fp32", "--runtime",
                        runtime, "-q", *([] if pretrained else ["--no-pretrained"])],
                       check=True, capture_output=True)
        wall = time.perf_counter() - t0
    return float(first), wall, timm == "True"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tf_efficientnet_lite0")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--large", type=int, default=512, help="large generated JPEGs")
    ap.add_argument("--naive-images", type=int, default=300,
                    help="USPtex images for the naive loop (its rate, not its total)")
    ap.add_argument("--startup", action="store_true", help="also time cached starts")
    ap.add_argument("--no-pretrained", dest="pretrained", action="store_false",
                    help="random weights (a quick check with a test_* model; no naive loop)")
    ap.add_argument("--large-dir", type=Path, default=Path(tempfile.gettempdir())
                    / "imgfeat-runtimes-large", help="where the large JPEGs are made (kept)")
    ap.add_argument("--usptex", type=Path, default=USPTEX, help="the USPtex folder")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imgfeat-runtimes-"))
    os.environ["IMGFEAT_CACHE_DIR"] = str(work / "cache")
    print(cpu_features())
    print(f"cores {len(os.sched_getaffinity(0))}; torch {torch.__version__}, "
          + ", ".join(f"{r} {runtime_version(r)}" for r in installed_runtimes()[1:]))
    runtimes = installed_runtimes()
    cfg = ModelConfig(model=args.model, pretrained=args.pretrained, precision="fp32")
    auto = Extractor(cfg, runtime="auto", threads=torch.get_num_threads())
    print(f"auto chooses: {auto.runtime} (probe error {auto.runtime_error}; measured img/s: "
          + ", ".join(f"{k} {v:.1f}" for k, v in auto.runtime_speeds.items()) + ")")
    for rt in runtimes:  # export once, timed (the cache is empty)
        t0 = time.perf_counter()
        ex = Extractor(cfg, runtime=rt)
        print(f"{rt}: Extractor ready in {time.perf_counter() - t0:.1f} s "
              f"(export or compile included), forward-only batch 16: "
              f"{forward_rate(ex, 16):.1f} img/s")
        del ex
    sets = {"usptex": args.usptex} if args.usptex.is_dir() else {}
    sets["large"] = make_images(args.large_dir / str(args.large), args.large, (1600, 1200))
    # (label, runtime, compute processes): the torch path as it was (one process), each
    # runtime as the default process rule runs it, and the default itself
    variants = [("torch, 1 process (before)", "torch", 1)]
    variants += [(rt, rt, "auto") for rt in runtimes[1:]]  # torch's rule: the one process
    variants += [("auto (the default)", "auto", "auto")]
    rates: dict[tuple[str, str], list[float]] = {}
    ran: dict[str, str] = {}
    diffs: dict[tuple[str, str], float] = {}
    # the naive loop runs among the USPtex runs of every repeat: this machine's speed drifts
    # by up to a third over minutes, so a ratio is only fair between neighbouring runs
    naive_paths = (sorted(args.usptex.rglob("*.png"))[:args.naive_images]
                   if args.usptex.is_dir() and args.pretrained and args.naive_images else [])
    naive_rates: list[float] = []
    for rep in range(args.repeats):
        for name, folder in sets.items():
            runs = variants + ([("naive", None, None)] if name == "usptex" and naive_paths
                               else [])
            k = rep % len(runs)
            for label, rt, procs in runs[k:] + runs[:k]:
                if label == "naive":
                    naive_rates.append(naive_loop(args.model, naive_paths)[0])
                    print(f"  repeat {rep}: naive one-image loop on {len(naive_paths)} USPtex "
                          f"images {naive_rates[-1]:.1f} img/s", flush=True)
                    continue
                rate, ran[label] = whole_run(folder, work / f"{name}-{label}", rt, procs,
                                             args.model, args.pretrained)
                rates.setdefault((name, label), []).append(rate)
                print(f"  repeat {rep}: {name} {label} ({ran[label]}) {rate:.1f} img/s",
                      flush=True)
            ref = vectors(work / f"{name}-{variants[0][0]}")
            for label, _, _ in variants:
                diffs[name, label] = float(np.abs(vectors(work / f"{name}-{label}") - ref).max()
                                           / np.abs(ref).max())
    naive = statistics.median(naive_rates) if naive_rates else None
    if naive:
        print(f"naive one-image loop (model load not counted): median {naive:.1f} img/s, "
              f"range {min(naive_rates):.1f}-{max(naive_rates):.1f}")
    base = "usptex" if "usptex" in sets else "large"
    print(f"\n| run | ran (runtime x processes) | whole run, USPtex (img/s) | whole run, "
          f"{args.large} large JPEGs (img/s) | vs torch 1 process ({base}) | vs naive loop | "
          f"max relative difference to torch |")
    print("|---|---|---|---|---|---|---|")
    for label, _, _ in variants:
        u = statistics.median(rates.get(("usptex", label), [float("nan")]))
        big = statistics.median(rates["large", label])
        b = statistics.median(rates[base, label]) / statistics.median(
            rates[base, variants[0][0]])
        vs_naive = f"{u / naive:.2f}x" if naive else "-"
        print(f"| {label} | {ran[label]} | {u:.1f} | {big:.1f} | {b:.2f}x | {vs_naive} | "
              f"{max(diffs.get((n, label), 0) for n in sets):.1e} |")
    for rt in runtimes:
        threads, procs = processes_vs_threads(cfg, rt)
        print(f"{rt}, forward-only: 1 process x {len(os.sched_getaffinity(0))} threads "
              f"{threads:.1f} img/s; 1 single-thread process per core {procs:.1f} img/s "
              f"({procs / threads:.2f}x)")
    if args.startup:
        one = work / "one"
        make_images(one, 1, (640, 480))
        for rt in ("torch", auto.runtime):
            first, wall, timm = startup(args.model, args.pretrained, rt, one)
            print(f"startup {rt}{' (cached export)' if rt != 'torch' else ''}: first vector "
                  f"{first:.2f} s after launch, one-image run {wall:.2f} s, timm imported: {timm}")


if __name__ == "__main__":
    main()
