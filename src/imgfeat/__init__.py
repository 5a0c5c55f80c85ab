"""imgfeat: images to feature vectors for classic machine learning, and how good they are.

The public API::

    import imgfeat
    result = imgfeat.extract("photos/", "features/", model="tf_efficientnet_lite0")
    X, y, ids, meta = imgfeat.load_features("features/")

``import imgfeat`` is lazy (as scikit-learn's is): each name is imported on first use, so what
needs no model (reading features, classifying them, the command line's help) never imports
torch or timm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from ._version import __version__
from .errors import (
    ConfigError,
    DecodeError,
    ImgfeatError,
    ImgfeatWarning,
    ItemsFailedError,
    ModelError,
    SourceError,
    StoreError,
    WeightsError,
)
from .sample import sample  # eager (it imports little): the function, not its module

#: public name -> the module that defines it, relative to this package (imported on first access)
_LAZY = {
    "list_models": "backbones.catalog",
    "model_info": "backbones.catalog",
    "ExtractConfig": "config",
    "ModelConfig": "config",
    "RunConfig": "config",
    "open_image": "decode",
    "make_demo_textures": "demo",
    "run_demo": "demo",
    "ClassifyReport": "evaluate",
    "classify": "evaluate",
    "make_classifier": "evaluate.classifiers",
    "Extractor": "pipeline",
    "Pooling": "pooling",
    "create_pooling": "pooling",
    "list_poolings": "pooling",
    "register_pooling": "pooling",
    "ExtractResult": "runner",
    "extract": "runner",
    "ArraySource": "sources",
    "CsvSource": "sources",
    "FolderSource": "sources",
    "Item": "sources",
    "PathsSource": "sources",
    "Source": "sources",
    "open_source": "sources",
    "load_features": "store",
    "FeatureExtractor": "transformer",
}

__all__ = [
    "ArraySource",
    "ConfigError",
    "ClassifyReport",
    "CsvSource",
    "DecodeError",
    "ExtractConfig",
    "ExtractResult",
    "Extractor",
    "FeatureExtractor",
    "FolderSource",
    "ImgfeatError",
    "ImgfeatWarning",
    "Item",
    "ItemsFailedError",
    "ModelConfig",
    "ModelError",
    "PathsSource",
    "Pooling",
    "RunConfig",
    "Source",
    "SourceError",
    "StoreError",
    "WeightsError",
    "__version__",
    "create_pooling",
    "classify",
    "extract",
    "list_models",
    "list_poolings",
    "load_features",
    "make_classifier",
    "make_demo_textures",
    "model_info",
    "open_image",
    "open_source",
    "register_pooling",
    "run_demo",
    "sample",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .backbones.catalog import list_models, model_info
    from .config import ExtractConfig, ModelConfig, RunConfig
    from .decode import open_image
    from .demo import make_demo_textures, run_demo
    from .evaluate.classifiers import make_classifier
    from .evaluate.classify import ClassifyReport, classify
    from .pipeline import Extractor
    from .pooling import Pooling, create_pooling, list_poolings, register_pooling
    from .runner import ExtractResult, extract
    from .sample import sample
    from .sources import ArraySource, CsvSource, FolderSource, Item, PathsSource, Source, open_source
    from .store import load_features
    from .transformer import FeatureExtractor
