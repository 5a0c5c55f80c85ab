"""``validate_flim``: score a saved FLIM model's classifier on a split; ``save_layer_outputs``:
every layer's maps per image as ``.npy``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import cohen_kappa_score, confusion_matrix, precision_recall_fscore_support

from ..errors import ConfigError, SourceError
from ..sources import Source
from ..storage import atomic_path, write_json
from .data import network_batches, open_data
from .network import FlimNetwork, load_model
from .options import HEADS

__all__ = ["HEADS", "ValidationReport", "predict", "save_layer_outputs", "validate_flim"]



@dataclass
class ValidationReport:
    """Accuracy, Cohen's kappa, per-class precision/recall/F1 and the confusion matrix."""

    head: str
    classes: list[str]
    accuracy: float
    kappa: float
    per_class: list[dict] = field(default_factory=list)
    confusion: np.ndarray | None = None
    n: int = 0

    def to_dict(self) -> dict:
        return {"head": self.head, "n": self.n, "accuracy": self.accuracy, "kappa": self.kappa,
                "per_class": self.per_class, "classes": self.classes,
                "confusion": None if self.confusion is None else self.confusion.tolist()}

    def table(self) -> str:
        lines = [f"{'class':<12}{'precision':>10}{'recall':>10}{'F1':>10}{'support':>9}"]
        for row in self.per_class:
            lines.append(f"{row['class']:<12}{row['precision']:>10.3f}{row['recall']:>10.3f}"
                         f"{row['f1']:>10.3f}{row['support']:>9}")
        lines.append(f"accuracy {100 * self.accuracy:.2f}%  kappa {self.kappa:.4f}  "
                     f"({self.n} images, head {self.head})")
        return "\n".join(lines)

    def write(self, folder: str | os.PathLike) -> Path:
        """``validation.json`` and ``confusion.png`` (when matplotlib is installed)."""
        from ..evaluate.classify import ClassifierResult, plot_confusion
        from ..evaluate.metrics import METRICS

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "validation.json", self.to_dict())
        if self.confusion is not None:
            fold = {"repeat": 0, "fold": 0, **{m: 0.0 for m in METRICS}, "accuracy": self.accuracy}
            plot_confusion(ClassifierResult(self.head, [fold], self.confusion, self.classes, 0.0),
                           out / "confusion.png")
        return out


def _head(net: FlimNetwork, head: str) -> str:
    if head not in HEADS:
        raise ConfigError(f"head must be one of {', '.join(HEADS)}, not {head!r}")
    if head == "auto":
        head = "classifier" if "classifier" in net.trained_heads else "svm"
    if head not in net.trained_heads:
        raise ConfigError(f"this FLIM model has no trained {head} (train with --{head})")
    return head


def predict(net: FlimNetwork, source: Source, items, head: str = "auto",
            batch_size: int = 16) -> np.ndarray:
    """Class indices (into ``net.classes``) predicted for the source's items."""
    head = _head(net, head)
    preds = []
    with torch.no_grad():
        for x in network_batches(source, items, net, batch_size):
            feats = net.forward_features(x)
            scores = net.classifier(feats) if head == "classifier" else net.svm(feats.flatten(1))
            preds.append(scores.argmax(1))
    return torch.cat(preds).numpy()


def validate_flim(model: str | os.PathLike | FlimNetwork, data: str | os.PathLike | Source, *,
                  split: str | os.PathLike | None = None, label_pattern: str | None = None,
                  head: str = "auto", batch_size: int = 16,
                  output: str | os.PathLike | None = None) -> ValidationReport:
    """Score the model's classifier on ``data`` (``split`` restricts a LIDS folder)."""
    net = model if isinstance(model, FlimNetwork) else load_model(model)
    head = _head(net, head)
    source = open_data(data, split, label_pattern)
    items = [it for it in source.items if it.label is not None]
    if not items:
        raise SourceError("these images have no class labels to score against")
    pred = predict(net, source, items, head, batch_size)
    names = np.array(net.classes)[pred]
    truth = np.array([it.label for it in items])
    labels = list(net.classes) + sorted(set(truth.tolist()) - set(net.classes))
    p, r, f, s = precision_recall_fscore_support(truth, names, labels=labels, zero_division=0)
    report = ValidationReport(
        head, labels, float((names == truth).mean()), float(cohen_kappa_score(truth, names, labels=labels)),
        [{"class": c, "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
          "support": int(s[i])} for i, c in enumerate(labels)],
        confusion_matrix(truth, names, labels=labels), len(items))
    if output is not None:
        report.write(output)
    return report


def save_layer_outputs(model: str | os.PathLike | FlimNetwork, data: str | os.PathLike | Source,
                       output: str | os.PathLike, *, layers: list[str] | None = None,
                       split: str | os.PathLike | None = None, label_pattern: str | None = None,
                       batch_size: int = 16) -> list[str]:
    """Save each image's maps after the chosen layers (default: every layer) as
    ``output/<layer>/<image stem>.npy`` (float32, C×H×W). Returns the layer names written."""
    net = model if isinstance(model, FlimNetwork) else load_model(model)
    leaves = {name.removeprefix("features."): mod for name, mod in net.named_leaves()}
    chosen = layers or list(leaves)
    unknown = [n for n in chosen if n not in leaves]
    if unknown:
        raise ConfigError(f"no layer {unknown[0]!r} in this model; layers: {', '.join(leaves)}")
    source = open_data(data, split, label_pattern)
    items = [it for it in source.items if it.error is None]
    stems = [Path(it.id).with_suffix("").as_posix().replace("/", "__") for it in items]
    out = Path(output)
    for name in chosen:
        (out / name).mkdir(parents=True, exist_ok=True)
    caught: dict[str, torch.Tensor] = {}
    hooks = [leaves[n].register_forward_hook(lambda m, i, o, n=n: caught.__setitem__(n, o)) for n in chosen]
    try:
        done = 0
        with torch.no_grad():
            for x in network_batches(source, items, net, batch_size):
                net.forward_features(x)
                for j in range(len(x)):
                    for n in chosen:
                        with atomic_path(out / n / f"{stems[done + j]}.npy") as tmp, open(tmp, "wb") as fh:
                            np.save(fh, caught[n][j].numpy().astype(np.float32))
                done += len(x)
    finally:
        for h in hooks:
            h.remove()
    return chosen
