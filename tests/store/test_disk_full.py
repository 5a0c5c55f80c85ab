"""A disk that fills up mid-run: one line naming the file and what to free, exit 2, the finished
shards kept, and ``--resume`` (once there is room) gives the files of a clean run. Needs root to
mount a small tmpfs; skipped otherwise."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import numpy as np
import pytest

from imgfeat import load_features
from imgfeat.errors import StoreError
from imgfeat.store.lock import writing
from imgfeat.usage import arg
from tests.conftest import random_class_folder

PAGE = 4096
CMD = ["--model", "test_efficientnet", "--no-pretrained", "--img-size", "64", "--shard-size", "5", "-q"]
FINAL = {"parquet": [], "npy": ["features_data.npy", "features_labels.npy", "features_ids.json"],
         "csv": ["features.csv", "features_ids.json"]}


def _extract(root, out, fmt, *extra):
    return subprocess.run([sys.executable, "-m", "imgfeat.cli", "extract", str(root), "-o", str(out),
                           "--format", fmt, *CMD, *extra], capture_output=True, text=True, timeout=300)


def _pages(folder) -> int:
    return sum(-(-p.stat().st_size // PAGE) for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def tmpfs(tmp_path):
    """A 256 KiB tmpfs, mounted for the test (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("fmt", ["parquet", "npy", "csv"])
def test_a_full_disk_is_one_line_and_resume_equals_a_clean_run(tmp_path, tmpfs, fmt):
    root = random_class_folder(tmp_path / "imgs", n=20, classes=2, side=32, seed=4)
    clean = _extract(root, tmp_path / "clean", fmt)
    assert clean.returncode == 0, clean.stderr
    # room for about half of the output (the shards' parts count too, while they exist)
    ballast = tmpfs / "ballast"
    total = os.statvfs(tmpfs).f_blocks
    free = max(_pages(tmp_path / "clean") // 2, 6)
    ballast.write_bytes(b"\0" * (total - free) * PAGE)
    out = tmpfs / "o"
    full = _extract(root, out, fmt)
    assert full.returncode == 2, full.stderr
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in full.stderr, full.stderr
    assert lines[0].startswith(f"imgfeat: error: cannot write {out}"), lines  # the folder or its file
    assert lines[0].endswith("No space left on device; free space on its disk, then run again with "
                             "--resume (finished shards are kept)"), lines
    kept = len(load_features(out)[2])  # finished shards stay, readable at once
    assert kept >= 5 and (kept < 20 or fmt != "parquet"), kept
    assert not [p for p in out.rglob(".tmp-*")]
    ballast.unlink()
    done = _extract(root, out, fmt, "--resume")
    assert done.returncode == 0, done.stderr
    X, y, ids, meta = load_features(out)
    X0, y0, ids0, _ = load_features(tmp_path / "clean")
    assert ids == ids0 and np.array_equal(X, X0) and np.array_equal(y, y0) and meta["complete"]
    for name in FINAL[fmt]:
        assert (out / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name


@pytest.mark.parametrize(("code", "todo"), [(errno.ENOSPC, "free space on its disk"),
                                             (errno.EROFS, "make it writable"),
                                             (errno.EACCES, "make it writable"),
                                             (errno.EIO, "fix it")])
def test_write_errors_become_one_line_saying_what_to_do(code, todo):
    with pytest.raises(StoreError) as info, writing("out"):
        raise OSError(code, os.strerror(code), "out/part-00001.parquet")
    assert str(info.value) == (f"cannot write out/part-00001.parquet: {os.strerror(code)}; {todo}, then "
                               f"run again with {arg('resume', True)} (finished shards are kept)")
