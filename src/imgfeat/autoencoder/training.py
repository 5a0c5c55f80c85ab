"""Training a FeXT autoencoder: deterministic split, checkpoints every epoch, exact resume.

A run folder holds the resolved ``config.toml`` (written once, never overwritten), ``split.json``
(the train/val/test id lists), ``last``/``best`` checkpoints (see :mod:`.checkpoint`),
``log.csv`` (one row per epoch), ``failures.csv`` (unreadable images) and, when tensorboard is
installed, ``tensorboard/``. Shuffling and augmentation draw from one generator whose state is
saved with every checkpoint, so a run stopped after epoch k and resumed gives the same weights as
one that never stopped (same machine, same thread count, deterministic CPU kernels).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..backbones.weights import file_sha256
from ..device import autocast, check_device
from ..errors import ConfigError, ImgfeatWarning, StoreError, WeightsError
from ..precision import resolve_precision, slow_precision
from ..storage import atomic_path, write_json
from .checkpoint import (
    load_into,
    load_state,
    read_weights,
    save_state,
    save_weights,
    state_path,
    weights_path,
)
from .config import AEConfig
from .data import ImageSet, load_images, make_split, open_images, to_float
from .data import augment as augment_batch
from .metrics import reconstruction_loss
from .model import AutoEncoder, describe_shapes

LOG_FIELDS = ("epoch", "train_loss", "val_loss", "lr", "seconds", "images_per_s")


@dataclass
class TrainResult:
    """What a training call did."""

    run: Path
    epochs_done: int
    best_epoch: int
    best_val_loss: float
    stopped: str  # "completed" | "early-stopped" | "interrupted"
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    images_per_s: float = 0.0
    n_train: int = 0
    n_val: int = 0
    n_failed: int = 0


@contextlib.contextmanager
def _deferred_interrupt():
    """Hold Ctrl-C while a checkpoint is written; deliver it afterwards."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield  # Ctrl-C ignored or handled elsewhere: leave it so
        return
    caught: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if caught:
            raise KeyboardInterrupt


def resolve_run_config(run: Path, cfg: AEConfig, resume: bool, changed: set[str]) -> AEConfig:
    """The config a run trains with: new runs save ``cfg``; a resume takes the saved one and
    refuses any result-changing key the user set to another value (runtime keys may change)."""
    saved_file = run / "config.toml"
    if not resume:
        if saved_file.exists():
            raise StoreError(f"{run} already holds a run: use --resume, or another folder")
        run.mkdir(parents=True, exist_ok=True)
        with atomic_path(saved_file) as tmp:
            tmp.write_text(cfg.to_toml())
        return cfg
    if not saved_file.exists():
        raise StoreError(f"nothing to resume in {run} (no config.toml)")
    saved = AEConfig.load(saved_file)
    for key, value in cfg.result_dict().items():
        if key in changed and getattr(saved, key) != value:
            raise ConfigError(f"resume with a changed config: {key} is {getattr(saved, key)!r} "
                              f"in {run.name}, {value!r} now")
    runtime = {k: getattr(cfg, k) for k in cfg.to_dict() if k not in cfg.result_dict()}
    return saved.override(**runtime)


def _optimizer(model: torch.nn.Module, cfg: AEConfig) -> torch.optim.Optimizer:
    kind = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return kind(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def _scheduler(opt: torch.optim.Optimizer, cfg: AEConfig):
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
    return None


def _write_log(run: Path, history: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    with atomic_path(run / "log.csv") as tmp:
        tmp.write_text(buf.getvalue())


def _write_failures(run: Path, failures: list[tuple[str, str]]) -> None:
    with atomic_path(run / "failures.csv") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "error"])
        writer.writerows(failures)


def _tensorboard(run: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run / "tensorboard"))


def evaluate_loss(model: torch.nn.Module, images: ImageSet, cfg: AEConfig, precision: str,
                  device: str) -> float:
    """Mean loss over a set (no augmentation, eval mode)."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(images), cfg.batch_size):
            x = to_float(images.pixels[start:start + cfg.batch_size], device)
            with autocast(precision, device):
                recon = model(x)
            loss = reconstruction_loss(recon, x, cfg.loss, cfg.ssim_weight)
            total += loss.item() * len(x)
            count += len(x)
    return total / max(count, 1)


def _batches(n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """A seeded shuffle cut into batches; a last batch of one image joins the previous one
    (BatchNorm cannot train on a single 1×1 map)."""
    perm = torch.randperm(n, generator=gen)
    batches = list(perm.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        last = batches.pop()
        batches[-1] = torch.cat([batches[-1], last])
    return batches


def train(data, run: str | Path, cfg: AEConfig | None = None, *, resume: bool = False,
          changed: set[str] | None = None, source_args: dict | None = None,
          on_epoch_end: Callable[[int, dict], None] | None = None,
          log: Callable[[str], None] | None = None) -> TrainResult:
    """Train an autoencoder on ``data`` (any imgfeat source) into the folder ``run``.

    With ``resume`` the run's saved config, split, weights, optimizer, scheduler and RNG
    states continue from the last finished epoch; ``changed`` names the keys the user set (a
    resume refuses those that differ from the saved config; default: all of them). Ctrl-C stops
    after keeping the last finished epoch (``stopped == "interrupted"``).
    """
    run = Path(run)
    cfg = cfg or AEConfig()
    say = log or (lambda msg: None)
    changed = set(cfg.result_dict()) if changed is None else changed
    cfg = resolve_run_config(run, cfg, resume, changed)
    device = check_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    if (why := slow_precision(precision, device)) is not None:
        warnings.warn(why, ImgfeatWarning, stacklevel=2)
    src = open_images(data, **(source_args or {}))

    if resume:
        split = json.loads((run / "split.json").read_text())
    else:
        split = make_split([it.id for it in src.items], cfg.val_fraction, cfg.test_fraction,
                           cfg.seed)
        write_json(run / "split.json", split)
        if isinstance(data, str | os.PathLike):
            write_json(run / "source.json", {"data": str(Path(data).resolve()) if "://" not in
                                             str(data) else str(data),
                                             "args": source_args or {}})
    images = load_images(src, cfg, split["train"] + split["val"], workers=cfg.workers)
    _write_failures(run, images.failures)
    train_set, val_set = images.subset(split["train"]), images.subset(split["val"])
    if len(train_set) < 2:
        raise ConfigError(f"only {len(train_set)} readable training image(s): need at least 2")
    say(f"{len(train_set)} training, {len(val_set)} validation images "
        f"({len(images.failures)} unreadable, skipped); {describe_shapes(cfg)}; "
        f"precision {precision}")

    torch.manual_seed(cfg.seed)
    model = AutoEncoder(cfg).to(device)
    opt = _optimizer(model, cfg)
    sched = _scheduler(opt, cfg)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    # fp16 needs its gradients scaled against underflow; a no-op otherwise
    scaler = torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")
    start, best, best_epoch, bad, history = 0, math.inf, 0, 0, []
    if resume:
        state = load_state(state_path(run, "last"))
        wfile = weights_path(run, "last")
        if state.get("model_sha256") != file_sha256(wfile):
            raise WeightsError(f"{wfile.name} does not match {state_path(run, 'last').name}")
        tensors, _ = read_weights(wfile)
        load_into(model, tensors, wfile.name)
        opt.load_state_dict(state["optimizer"])
        if sched is not None:
            sched.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        gen.set_state(state["rng"]["shuffle"])
        torch.set_rng_state(state["rng"]["torch"])
        start, best, best_epoch = state["epoch"], state["best_val_loss"], state["best_epoch"]
        bad, history = state["bad_epochs"], list(state["history"])
        say(f"resuming after epoch {start}")
    net = torch.compile(model) if cfg.compile else model
    board = _tensorboard(run)
    stopped = "completed"
    t_start, seen = time.perf_counter(), 0
    n_batches = len(_batches(len(train_set), cfg.batch_size, torch.Generator()))
    bar = None
    if cfg.progress and start < cfg.epochs:
        from tqdm.auto import tqdm

        bar = tqdm(total=(cfg.epochs - start) * n_batches, unit="batch", dynamic_ncols=True)
    try:
        for epoch in range(start, cfg.epochs):
            t0 = time.perf_counter()
            net.train()
            total, count = 0.0, 0
            for idx in _batches(len(train_set), cfg.batch_size, gen):
                x = augment_batch(to_float(train_set.pixels[idx]), cfg, gen).to(device)
                with autocast(precision, device):
                    recon = net(x)
                loss = reconstruction_loss(recon, x, cfg.loss, cfg.ssim_weight)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                total += loss.item() * len(idx)
                count += len(idx)
                if bar is not None:
                    rate = (seen + count) / (time.perf_counter() - t_start)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{total / count:.4f}",
                                    img_s=f"{rate:.1f}")
                    bar.update(1)
            seen += count
            train_loss = total / count
            val_loss = (evaluate_loss(net, val_set, cfg, precision, device) if len(val_set)
                        else train_loss)
            lr = opt.param_groups[0]["lr"]
            if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                sched.step(val_loss)
            elif sched is not None:
                sched.step()
            improved = val_loss < best - cfg.min_delta
            if improved:
                best, best_epoch, bad = val_loss, epoch + 1, 0
            else:
                bad += 1
            seconds = time.perf_counter() - t0
            row = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "lr": lr,
                   "seconds": round(seconds, 3), "images_per_s": round(count / seconds, 2)}
            history.append(row)
            state = {"epoch": epoch + 1, "optimizer": opt.state_dict(),
                     "scheduler": sched.state_dict() if sched is not None else {},
                     "scaler": scaler.state_dict(),
                     "rng": {"shuffle": gen.get_state(), "torch": torch.get_rng_state()},
                     "split": split, "best_val_loss": best, "best_epoch": best_epoch,
                     "bad_epochs": bad, "history": history, "config": cfg.to_toml()}
            extra = {"epoch": epoch + 1, "val_loss": val_loss}
            with _deferred_interrupt():
                for name in ("last", "best") if improved else ("last",):
                    digest = save_weights(weights_path(run, name), model, extra)
                    save_state(state_path(run, name), {**state, "model_sha256": digest})
                _write_log(run, history)
            if board is not None:
                for key in ("train_loss", "val_loss", "lr", "images_per_s"):
                    board.add_scalar(key, row[key], epoch + 1)
            say(f"epoch {epoch + 1}/{cfg.epochs}: train {cfg.loss} {train_loss:.5f}, "
                f"val {val_loss:.5f}{' (best)' if improved else ''}, {row['images_per_s']} img/s")
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, row)
            if cfg.patience and bad >= cfg.patience:
                stopped = "early-stopped"
                break
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        if bar is not None:
            bar.close()
        if board is not None:
            board.close()
    seconds = time.perf_counter() - t_start
    return TrainResult(run, len(history), best_epoch, best, stopped, history, seconds,
                       seen / seconds if seconds else 0.0, len(train_set), len(val_set),
                       len(images.failures))
