"""Protocols: which images train and which test, fold by fold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

PROTOCOLS = ("kfold", "official", "groups", "fewshot")


@dataclass(frozen=True)
class Fold:
    """One train/test partition; ``repeat`` groups folds whose means are averaged first."""

    repeat: int
    fold: int
    train: np.ndarray
    test: np.ndarray


def kfold(y: np.ndarray, folds: int = 10, repeats: int = 10, seed: int = 0) -> list[Fold]:
    """``repeats`` × stratified ``folds``-fold CV, repetition r shuffled with ``seed + r``."""
    _, counts = np.unique(y, return_counts=True)
    if counts.min() < folds:
        raise ConfigError(f"the smallest class has {counts.min()} images, fewer than {folds} "
                          f"folds; use --folds {max(2, int(counts.min()))}")
    from sklearn.model_selection import StratifiedKFold

    out = []
    for r in range(repeats):
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed + r)
        for f, (tr, te) in enumerate(skf.split(np.zeros(len(y)), y)):
            out.append(Fold(r, f, tr, te))
    return out


def official(ids: list[str], splits: list[str | None] | None = None,
             protocol: dict | None = None) -> list[Fold]:
    """The splits a source carries: a dataset protocol (lists of train/test ids), or the
    ``split`` column (``train``/``val`` train, ``test`` tests)."""
    index = {i: k for k, i in enumerate(ids)}
    if protocol and protocol.get("kind") == "splits":
        out = []
        for f, sp in enumerate(protocol["splits"]):
            tr = np.array([index[i] for i in sp["train"] if i in index], dtype=int)
            te = np.array([index[i] for i in sp["test"] if i in index], dtype=int)
            out.append(Fold(f, 0, tr, te))
        return out
    if not splits or all(s is None for s in splits):
        raise ConfigError("no official split: the features have no split column and their "
                          "source no split protocol")
    s = np.array([x or "" for x in splits])
    tr = np.flatnonzero(np.isin(s, ["train", "val", "valid", "validation", "trainval"]))
    te = np.flatnonzero(s == "test")
    if not len(tr) or not len(te):
        raise ConfigError("the split column needs both train (or val) and test rows")
    return [Fold(0, 0, tr, te)]


def groups(group_of: list[str | None]) -> list[Fold]:
    """Leave one group out: train on every other group, test on this one (e.g. KTH-TIPS2-b
    samples: 4 folds, train on 3 samples, test on the 4th)."""
    g = np.array([x or "" for x in group_of])
    names = sorted(set(g) - {""})
    if len(names) < 2:
        raise ConfigError("the groups protocol needs at least two groups")
    return [Fold(k, 0, np.flatnonzero(g != name), np.flatnonzero(g == name))
            for k, name in enumerate(names)]


def fewshot(y: np.ndarray, shots: int, repeats: int = 10, seed: int = 0) -> list[Fold]:
    """``shots`` training images per class, the rest test; repeated with new draws."""
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() <= shots:
        raise ConfigError(f"a class has only {counts.min()} images: cannot train on {shots} "
                          f"and still test")
    out = []
    for r in range(repeats):
        rng = np.random.default_rng(seed + r)
        train = np.concatenate([rng.choice(np.flatnonzero(y == c), shots, replace=False)
                                for c in classes])
        test = np.setdiff1d(np.arange(len(y)), train)
        out.append(Fold(r, 0, np.sort(train), test))
    return out


def build_folds(protocol: str, y: np.ndarray, ids: list[str], meta: dict, *, folds: int = 10,
                repeats: int = 10, seed: int = 0, shots: int = 2) -> list[Fold]:
    """Folds for a named protocol, using what the features carry (splits, groups, protocol)."""
    source_protocol = (meta.get("source") or {}).get("protocol")
    if protocol == "kfold":
        return kfold(y, folds, repeats, seed)
    if protocol == "official":
        return official(ids, meta.get("splits"), source_protocol)
    if protocol == "groups":
        if source_protocol and source_protocol.get("kind") == "groups":
            gmap = source_protocol["groups"]
            return groups([gmap.get(i) for i in ids])
        return groups(meta.get("splits") or [])
    if protocol == "fewshot":
        return fewshot(y, shots, repeats, seed)
    raise ConfigError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
