"""One writer per output folder: a second extraction into a folder another job is writing is
refused with one line naming the first (same or another configuration, ``--resume`` or
``--overwrite``), and a lock left by a killed job is taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from imgfeat import load_features
from imgfeat.storage import Location
from imgfeat.store.lock import LOCK, OutputLock, OutputLocked
from tests.conftest import random_class_folder

CMD = ["--model", "test_efficientnet", "--no-pretrained", "--img-size", "64", "--shard-size", "10",
       "--batch-size", "4", "-q"]


def _extract(root, out, *extra):
    return [sys.executable, "-m", "imgfeat.cli", "extract", str(root), "-o", str(out), *CMD, *extra]


def _holding(out, proc, timeout=120) -> dict:
    """Wait until ``proc`` holds the lock of ``out``; its owner record."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            owner = json.loads((out / LOCK).read_text())
        except (OSError, ValueError):
            owner = None
        if owner and owner["pid"] == proc.pid:
            return owner
        time.sleep(0.01)
    raise AssertionError(f"the first job never held the lock: {proc.communicate()}")


def test_a_second_lock_names_the_first_and_a_released_one_is_free(tmp_path):
    out = Location(tmp_path / "o")
    with OutputLock(out):
        with pytest.raises(OutputLocked, match=f"pid {os.getpid()} on {socket.gethostname()}"):
            OutputLock(out).acquire()
        assert json.loads((tmp_path / "o" / LOCK).read_text())["pid"] == os.getpid()
    assert not (tmp_path / "o").exists()  # the lock made the folder; nothing was written into it
    with OutputLock(out):
        pass


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / LOCK).write_text(json.dumps({"host": socket.gethostname(),
                                                   "pid": int(dead.stdout), "started": "then"}))
    with OutputLock(Location(tmp_path / "o")):
        assert json.loads((tmp_path / "o" / LOCK).read_text())["pid"] == os.getpid()
    assert (tmp_path / "o").is_dir() and not (tmp_path / "o" / LOCK).exists()


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    """20 images and their features from a run nobody disturbed."""
    tmp = tmp_path_factory.mktemp("lock")
    root = random_class_folder(tmp / "imgs", n=20, classes=2, side=32, seed=2)
    clean = subprocess.run(_extract(root, tmp / "clean"), capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr
    return root, load_features(tmp / "clean")


@pytest.mark.parametrize("second", [["--resume"], ["--overwrite"], ["--overwrite", "--pool", "max"], []])
def test_a_second_extraction_into_a_busy_folder_is_refused_and_changes_nothing(tmp_path, second, clean_run):
    root, (X0, y0, ids0, _) = clean_run
    out = tmp_path / "o"
    first = subprocess.Popen(_extract(root, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    try:
        owner = _holding(out, first)
        os.killpg(first.pid, signal.SIGSTOP)  # the first job is mid-run for as long as we like
        try:
            refused = subprocess.run(_extract(root, out, *second), capture_output=True, text=True,
                                     timeout=300)
        finally:
            os.killpg(first.pid, signal.SIGCONT)
        assert refused.returncode == 2, refused.stderr
        lines = refused.stderr.strip().splitlines()
        assert lines == [f"imgfeat: error: {out} is being written by another job (pid {first.pid} on "
                         f"{owner['host']}, since {owner['started']}): wait for it to finish (then "
                         "--resume if needed), or choose another output"], lines
        _, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    X, y, ids, meta = load_features(out)
    assert ids == ids0 and np.array_equal(X, X0) and np.array_equal(y, y0) and meta["complete"]
    assert not (out / LOCK).exists()


def test_a_killed_job_leaves_a_stale_lock_that_resume_takes_over(tmp_path, clean_run):
    root, (X0, _, ids0, _) = clean_run
    out = tmp_path / "o"
    first = subprocess.Popen(_extract(root, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    _holding(out, first)
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate(timeout=60)
    assert (out / LOCK).exists()  # left behind, naming a dead process
    done = subprocess.run(_extract(root, out, "--resume"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    X, _, ids, _ = load_features(out)
    assert ids == ids0 and np.array_equal(X, X0) and not (out / LOCK).exists()


def test_a_killed_jobs_forked_workers_do_not_keep_its_lock(tmp_path):
    """Decode workers are forked: they must not inherit the lock, or a job killed with -9 would
    hold its folder for as long as its orphaned workers live."""
    out = tmp_path / "out"
    out.mkdir()
    script = (
        "import multiprocessing as mp, sys, time\n"
        "from imgfeat.storage import Location\n"
        "from imgfeat.store.lock import OutputLock\n"
        f"lock = OutputLock(Location({str(out)!r})); lock.acquire()\n"
        "def work(ready):\n"
        "    ready.set(); time.sleep(60)\n"
        "ctx = mp.get_context('fork'); ready = ctx.Event()\n"
        "p = ctx.Process(target=work, args=(ready,)); p.start(); ready.wait()\n"
        "print(p.pid, flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        os.kill(child, 0)  # the orphaned worker is still alive
        lock = OutputLock(Location(str(out)))
        lock.acquire()  # and yet the folder is free
        lock.release()
    finally:
        os.kill(child, signal.SIGKILL)
