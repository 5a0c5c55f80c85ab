"""A scikit-learn transformer: image paths or arrays in, a 2-D feature array out."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from .config import ModelConfig, options_doc, pick_model_options
from .errors import DecodeError
from .pipeline import Extractor, decode_batches, make_shards, run_shard
from .sources import open_source


class FeatureExtractor(TransformerMixin, BaseEstimator):
    """Extract features inside a scikit-learn ``Pipeline``.

    ``fit`` loads the backbone (nothing is learned from the data); ``transform`` takes a list of
    image paths or an array of images (N×H×W or N×H×W×C) and returns an (N, D) float array. An
    image that cannot be decoded raises :class:`~imgfeat.errors.DecodeError` naming it.
    """

    def __init__(self, model: str = "tf_efficientnet_lite0", *, pretrained: bool = True,
                 weights: str | None = None, img_size: int | None = None, resize: str | None = None,
                 output_stride: int | None = None, precision: str = "auto",
                 layers: str | None = None, pool: str = "avg", pool_args: dict | None = None,
                 fold_bn: bool = True, device: str = "cpu", batch_size: int = 16):
        vars(self).update((k, v) for k, v in locals().items() if k != "self")  # as given

    def model_config(self) -> ModelConfig:
        """The :class:`ModelConfig` these parameters describe (every one of its fields)."""
        return ModelConfig.from_options(**pick_model_options(vars(self)))

    def fit(self, X=None, y=None):
        self.extractor_ = Extractor(self.model_config(), device=self.device)
        self.n_features_out_ = self.extractor_.dim
        return self

    def transform(self, X) -> np.ndarray:
        if not hasattr(self, "extractor_"):
            self.fit()
        src = open_source(list(X) if isinstance(X, list | tuple) else np.asarray(X))
        out = []
        for shard in make_shards(src.items, 4096):
            data = run_shard(self.extractor_, shard, decode_batches(
                src, shard, self.extractor_.preprocess, self.batch_size))
            if data.n_failed:
                k = int((~data.ok).argmax())
                item = data.items[k]
                raise DecodeError(f"{item.path or item.id}: {data.errors[k]}")
            out.append(data.vectors)
        return np.concatenate(out).astype(np.float32, copy=False)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.array([f"n{i}" for i in range(self.n_features_out_)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


if FeatureExtractor.__doc__:  # the model options' help, from their one definition
    FeatureExtractor.__doc__ += options_doc()
