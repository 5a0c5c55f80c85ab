"""Choices the FLIM API and command line share (pure Python, so ``--help`` imports no torch)."""

from __future__ import annotations

#: the network's input: L*a*b* scaled to about [0, 1] (as the original FLIM), or RGB in [0, 1]
COLOR_SPACES = ("lab", "rgb")
#: which trained classifier a model scores with (auto: the JSON classifier when trained, else the SVM)
HEADS = ("auto", "classifier", "svm")
#: the label bases a marker file may use: 0 (labels 0, 1, ...) or 1 (labels 1, 2, ...)
LABEL_BASES = (0, 1)
