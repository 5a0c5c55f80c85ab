"""``train_flim``: images + markers + architecture -> one FLIM model file.

The feature extractor is learned from the markers (no backpropagation). Optionally a classifier
goes on top: a linear SVM on the flattened final map (C = 100, as the original), and/or the
architecture's JSON ``classifier`` trained by backpropagation on the frozen features.
"""

from __future__ import annotations

import os
import platform
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..errors import ConfigError, ImgfeatWarning, SourceError
from ..sources import Item, Source
from .architecture import Architecture, ArchitectureError, load_architecture, parse_architecture
from .data import marked_items, natural_size, network_batches, open_data, read_images
from .learn import LearnReport, learn_filters
from .network import FlimNetwork, save_model

#: a layer whose learned kernels' mean |cosine| exceeds this is nearly one kernel: training warns
ALIKE_COSINE = 0.9

__all__ = ["TrainResult", "class_names", "compute_features", "train_flim"]


@dataclass
class TrainResult:
    """What ``train_flim`` made and measured."""

    model_path: Path
    network: FlimNetwork
    learn: LearnReport
    marked_images: int
    label_base: int
    train_accuracy: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def class_names(items: list[Item]) -> list[str]:
    """The sorted class names of labelled items (numbers in numeric order)."""
    labels = {it.label for it in items if it.label is not None}
    return sorted(labels, key=lambda s: (0, int(s), "") if s.isdigit() else (1, 0, s))


def compute_features(net: FlimNetwork, source: Source, items: list[Item], batch_size: int = 16,
                     progress: bool = False) -> torch.Tensor:
    """The final feature maps (N, C, H, W) of the source's items at the model's input size."""
    from tqdm.auto import tqdm

    outs = []
    total = (len(items) + batch_size - 1) // batch_size
    with torch.no_grad():
        for x in tqdm(network_batches(source, items, net, batch_size), total=total,
                      disable=not progress,
                      desc="features", leave=False):
            outs.append(net.forward_features(x))
    return torch.cat(outs)


def _labelled(source: Source) -> tuple[list[Item], np.ndarray, list[str]]:
    items = [it for it in source.items if it.label is not None and it.error is None]
    if not items:
        raise SourceError("these images have no class labels: a classifier cannot be trained "
                          "(give labelled data, e.g. --label-pattern or a LIDS folder)")
    classes = class_names(items)
    index = {c: i for i, c in enumerate(classes)}
    if len(classes) < 2:
        raise SourceError("a classifier needs at least two classes")
    return items, np.array([index[it.label] for it in items]), classes


def _fit_svm(net: FlimNetwork, feats: torch.Tensor, y: np.ndarray, c: float, seed: int) -> None:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    X = feats.flatten(1).numpy().astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        svm = LinearSVC(C=c, dual="auto", max_iter=5000, random_state=seed).fit(X, y)
    w = torch.as_tensor(svm.coef_, dtype=torch.float32)
    b = torch.as_tensor(svm.intercept_, dtype=torch.float32)
    if w.shape[0] == 1:  # binary: one hyperplane -> two class scores
        w, b = torch.cat([-w, w]), torch.cat([-b, b])
    net.set_svm(w, b)


def _fit_classifier(net: FlimNetwork, feats: torch.Tensor, y: np.ndarray, n_classes: int, *,
                    epochs: int, lr: float, weight_decay: float, batch_size: int, seed: int,
                    progress: bool) -> list[float]:
    from tqdm.auto import tqdm

    clf = net.classifier
    assert clf is not None
    with torch.no_grad():
        outs = clf(feats[:1]).shape[-1]
    if outs != n_classes:
        raise ArchitectureError(f"classifier: its last layer gives {outs} outputs but the data has "
                                f"{n_classes} classes")
    for m in clf.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight, nn.init.calculate_gain("relu"))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    gen = torch.Generator().manual_seed(seed)
    target = torch.as_tensor(y, dtype=torch.long)
    opt = torch.optim.Adam(clf.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    clf.train()
    bar = tqdm(range(epochs), disable=not progress, desc="classifier")
    for _ in bar:
        order = torch.randperm(len(target), generator=gen)
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start: start + batch_size]
            opt.zero_grad()
            loss = loss_fn(clf(feats[idx]), target[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(order))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    clf.eval()
    return losses


def _accuracy(logits: torch.Tensor, y: np.ndarray) -> float:
    return float((logits.argmax(1).numpy() == y).mean())


def train_flim(
    data: str | os.PathLike | Source,
    output: str | os.PathLike,
    *,
    architecture: str | os.PathLike | dict | Architecture,
    markers: str | os.PathLike | None = None,
    split: str | os.PathLike | None = None,
    label_pattern: str | None = None,
    label_base: int | None = None,
    color: str = "lab",
    size: int | tuple[int, int] | None = None,
    per_label: bool = False,
    seed: int = 0,
    random_kernels: bool = False,
    svm: bool = False,
    svm_c: float = 100.0,
    classifier: bool = False,
    epochs: int = 30,
    lr: float = 1e-3,
    weight_decay: float = 1e-3,
    batch_size: int = 16,
    progress: bool = False,
) -> TrainResult:
    """Learn a FLIM network from the marked images of ``data`` and write it to ``output``.

    ``markers`` is the folder of marker files (default: beside the images); the images with a
    marker file teach the filters. ``size`` (H, W) is the network's input size (default: the
    first marked image's); marked images and their markers are resized to it. ``svm`` and
    ``classifier`` train heads on the labelled images of ``data`` (``split`` restricts a LIDS
    folder to a split file). ``random_kernels`` makes the baseline: random unit kernels, the
    normalisation still measured on the markers.
    """
    t0 = time.perf_counter()
    arch = (architecture if isinstance(architecture, Architecture)
            else parse_architecture(architecture) if isinstance(architecture, dict)
            else load_architecture(architecture))
    if classifier and arch.classifier is None:
        raise ConfigError("--classifier needs a 'classifier' section in the architecture")
    source = open_data(data, split, label_pattern)
    items, marks, base = marked_items(source, markers, label_base)
    if size is None:
        hw = natural_size(source, items[0])
    else:
        hw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    net = FlimNetwork(arch, hw, color)
    images = read_images(source, items, net)
    marks = [m.resized(hw[1], hw[0]) for m in marks]
    report = learn_filters(net, images, marks, per_label=per_label, seed=seed, batch_size=batch_size,
                           names=[it.id for it in items], random_kernels=random_kernels)
    for layer in report.layers:
        if not random_kernels and layer.similarity is not None and layer.similarity > ALIKE_COSINE:
            warnings.warn(f"{layer.name}: the learned kernels are nearly alike (mean |cosine| "
                          f"{layer.similarity:.2f}): its input patches are dominated by their mean, so the "
                          "layer sees little more than brightness; put an m_norm2d before it and set "
                          '"center_patches": true (as --arch texture does)', ImgfeatWarning, stacklevel=2)
    result = TrainResult(Path(output), net, report, len(items), base)
    heads: dict = {}
    if svm or classifier:
        labelled, y, classes = _labelled(source)
        net.classes = classes
        feats = compute_features(net, source, labelled, batch_size, progress)
        if svm:
            _fit_svm(net, feats, y, svm_c, seed)
            net.trained_heads.append("svm")
            result.train_accuracy["svm"] = _accuracy(net.svm(feats.flatten(1)).detach(), y)
            heads["svm"] = {"C": svm_c, "kind": "LinearSVC (one-vs-rest) on the flattened final map"}
        if classifier:
            losses = _fit_classifier(net, feats, y, len(classes), epochs=epochs, lr=lr,
                                     weight_decay=weight_decay, batch_size=batch_size, seed=seed,
                                     progress=progress)
            net.trained_heads.append("classifier")
            with torch.no_grad():
                result.train_accuracy["classifier"] = _accuracy(net.classifier(feats), y)
            heads["classifier"] = {"epochs": epochs, "lr": lr, "weight_decay": weight_decay,
                                   "losses": [round(v, 6) for v in losses]}
        heads["train_images"] = len(labelled)
    result.seconds = time.perf_counter() - t0
    provenance = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "imgfeat": __version__, "torch": torch.__version__, "python": platform.python_version(),
        "data": source.describe(), "markers": str(Path(markers).resolve()) if markers else "beside images",
        "marked_images": [it.id for it in items], "label_base": base, "per_label": per_label,
        "seed": seed, "random_kernels": random_kernels, "input_size": list(hw), "color": color,
        "learn": report.to_dict(),
        "heads": heads, "train_accuracy": result.train_accuracy,
        "seconds": round(result.seconds, 3),
    }
    save_model(output, net, provenance)
    return result
