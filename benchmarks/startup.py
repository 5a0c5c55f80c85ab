"""How fast the command line answers: ``imgfeat --help`` wall time (median of several fresh
processes) and which modules building the parser imports.

    python benchmarks/startup.py [--runs 9] [--import imgfeat.flim.markers ...]

The target (issue #20) is ``imgfeat --help`` under 0.3 s. ``--import MODULE`` also times a
plain ``import MODULE`` the same way (median of ``--runs`` fresh processes).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
HEAVY = ("numpy", "pyarrow", "pandas", "torch", "timm", "torchvision", "sklearn", "scipy",
         "PIL", "fsspec", "matplotlib")
LIST_IMPORTS = f"""
import sys
before = set(sys.modules)
from imgfeat.cli import build_parser
build_parser()
new = set(sys.modules) - before
print(' '.join(sorted(m for m in {HEAVY!r} if m in new)))
print(' '.join(sorted(m for m in new if m.startswith('imgfeat'))))
"""


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def median_seconds(argv: list[str], runs: int) -> tuple[float, float, float]:
    """(median, min, max) wall seconds of ``argv`` in fresh processes (one warm-up first)."""
    subprocess.run(argv, capture_output=True, env=_env(), check=True)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, env=_env(), check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times)


def cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9, help="fresh processes per figure")
    ap.add_argument("--import", dest="modules", nargs="*", default=[],
                    help="also time 'import MODULE' (e.g. imgfeat.flim.markers)")
    args = ap.parse_args()
    print(f"python {platform.python_version()}, {cpu()}, {os.cpu_count()} cores "
          f"(shared: figures vary with other load)")
    r = subprocess.run([sys.executable, "-c", LIST_IMPORTS], capture_output=True, text=True,
                       env=_env(), check=True)
    heavy, own = (r.stdout.splitlines() + ["", ""])[:2]
    print(f"building the parser imports heavy modules: {heavy or 'none'}")
    print(f"building the parser imports {len(own.split())} imgfeat modules: {own}")
    med, lo, hi = median_seconds([sys.executable, "-m", "imgfeat", "--help"], args.runs)
    print(f"imgfeat --help: median {med:.3f} s (min {lo:.3f}, max {hi:.3f}, {args.runs} runs)")
    base, _, _ = median_seconds([sys.executable, "-c", "pass"], args.runs)
    print(f"  of which a bare python start: {base:.3f} s")
    for module in args.modules:
        med, lo, hi = median_seconds([sys.executable, "-c", f"import {module}"], args.runs)
        print(f"import {module}: median {med:.3f} s (min {lo:.3f}, max {hi:.3f})")


if __name__ == "__main__":
    main()
