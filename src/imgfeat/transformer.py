"""A scikit-learn transformer: image paths or arrays in, a 2-D feature array out."""

from __future__ import annotations

import os

import numpy as np
from scipy.sparse import issparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import assert_all_finite
from sklearn.utils.validation import check_is_fitted, validate_data

from .config import ModelConfig, options_doc, pick_model_options
from .errors import DecodeError
from .pipeline import Extractor, decode_batches, make_shards, run_shard
from .runtimes import check_runtime
from .sources import open_source


class FeatureExtractor(TransformerMixin, BaseEstimator):
    """Extract features inside a scikit-learn ``Pipeline``.

    ``fit`` checks its input and loads the backbone (nothing is learned from the data);
    ``transform`` takes image paths (a list, tuple, 1-D array, pandas Series, or a one-column
    table such as ``ColumnTransformer`` passes) or an array of images (N×H×W or N×H×W×C) and
    returns an (N, D) float32 array. An image that cannot be decoded raises
    :class:`~imgfeat.errors.DecodeError` naming it. ``runtime`` is ``extract()``'s: ``auto``
    runs the network exported to the fastest installed runtime whose maps equal torch's.
    """

    def __init__(self, model: str = "tf_efficientnet_lite0", *, pretrained: bool = True,
                 weights: str | None = None, img_size: int | None = None, resize: str | None = None,
                 output_stride: int | None = None, precision: str = "auto",
                 layers: str | None = None, pool: str = "avg", pool_args: dict | None = None,
                 fold_bn: bool = True, device: str = "cpu", batch_size: int = 16,
                 runtime: str = "auto"):
        vars(self).update((k, v) for k, v in locals().items() if k != "self")  # as given

    def model_config(self) -> ModelConfig:
        """The :class:`ModelConfig` these parameters describe (every one of its fields)."""
        return ModelConfig.from_options(**pick_model_options(vars(self)))

    def fit(self, X=None, y=None):
        """Check ``X`` (see :meth:`transform`) and load the backbone; nothing is learned.
        ``fit()`` with no ``X`` only loads the backbone."""
        if X is not None:
            self._validate(X, reset=True)
        self.extractor_ = Extractor(self.model_config(), device=self.device,
                                    runtime=check_runtime(self.runtime, self.device))
        self.n_features_out_ = self.extractor_.dim
        return self

    def transform(self, X) -> np.ndarray:
        """Features of ``X``: image paths (a list, tuple, 1-D array, pandas Series or
        one-column table of paths) or images (an N×H×W or N×H×W×C array); an (N, D) float32
        array. Unfitted, the backbone is loaded first (``fit`` learns nothing)."""
        if not hasattr(self, "extractor_"):
            self.fit(X)
        src = open_source(self._validate(X, reset=False))
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
        """``n0`` … ``n{D-1}``, the names the CSV output uses."""
        check_is_fitted(self, "n_features_out_")
        return np.array([f"n{i}" for i in range(self.n_features_out_)], dtype=object)

    def _validate(self, X, reset: bool) -> list[str] | np.ndarray:
        """``X`` as a list of paths or an image array; a table of paths sets (on ``reset``) or
        checks ``n_features_in_`` and ``feature_names_in_`` the scikit-learn way."""
        if isinstance(X, list | tuple) and X and all(isinstance(x, str | os.PathLike) for x in X):
            self._forget_columns(reset)
            return [os.fspath(x) for x in X]
        if issparse(X):
            raise TypeError("FeatureExtractor takes image paths or image arrays, not a sparse "
                            "matrix")
        if getattr(X, "ndim", None) == 2 or hasattr(X, "columns"):  # a table: one column of paths
            X = validate_data(self, X, reset=reset, dtype=None, ensure_all_finite=False)
            if X.dtype.kind in "OUS" and X.shape[1] == 1:
                return _paths(X[:, 0])
            raise ValueError(f"FeatureExtractor takes one column of image paths or an N×H×W(×C) "
                             f"image array, not a {X.shape[0]}×{X.shape[1]} table of "
                             f"{'numbers' if X.dtype.kind in 'biuf' else X.dtype}")
        self._forget_columns(reset)
        X = np.asarray(X)
        if X.size == 0:
            raise ValueError(f"FeatureExtractor got no images (an array of shape {X.shape})")
        if X.dtype.kind in "OUS" and X.ndim == 1:
            return _paths(X)
        if X.dtype.kind not in "biuf" or X.ndim not in (3, 4):
            raise ValueError(f"FeatureExtractor takes image paths or an N×H×W(×C) image array, "
                             f"not an array of shape {X.shape} and dtype {X.dtype}")
        assert_all_finite(X, input_name="X")
        return X

    def _forget_columns(self, reset: bool) -> None:
        """Input that is not a table has no columns: a refit on it drops the table's record."""
        if reset:
            for name in ("n_features_in_", "feature_names_in_"):
                self.__dict__.pop(name, None)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False  # fit learns nothing from the data; transform loads the model
        tags.input_tags.string = True  # paths
        tags.input_tags.three_d_array = True  # N×H×W images (N×H×W×C too)
        tags.transformer_tags.preserves_dtype = ["float32"]  # float32 out, whatever comes in
        return tags


if FeatureExtractor.__doc__:  # the model options' help, from their one definition
    FeatureExtractor.__doc__ += options_doc()


def _paths(values: np.ndarray) -> list[str]:
    """A 1-D array of paths as a list of str (a missing value is one clear error)."""
    out = []
    for k, v in enumerate(values.tolist()):
        if not isinstance(v, str | os.PathLike) or not os.fspath(v):
            raise ValueError(f"row {k} is not an image path: {v!r}")
        out.append(os.fspath(v))
    return out
