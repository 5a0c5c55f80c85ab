"""FeXT: a convolutional autoencoder trained on your own images; its encoder is a backbone.

    from imgfeat.autoencoder import AEConfig, train, evaluate, report
    result = train("images/", "runs/ae1", AEConfig(height=128, width=128, depth=4, epochs=10))
    summary = evaluate("runs/ae1")
    imgfeat.extract("images/", "features/", model="ae:runs/ae1")
"""

from __future__ import annotations

from .._lazy import lazy_exports
from .config import AEConfig

#: public names imported on first use (torch-heavy modules), by module
_LAZY = {"AutoEncoder": "model", "describe_shapes": "model", "train": "training",
         "TrainResult": "training", "evaluate": "evaluation",
         "EvalResult": "evaluation", "report": "reporting", "Report": "reporting",
         "load_model": "checkpoint", "create_ae_backbone": "backbone"}

__all__ = ["AEConfig", "AutoEncoder", "EvalResult", "Report", "TrainResult", "create_ae_backbone",
           "describe_shapes", "evaluate", "load_model", "report", "train"]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
