"""imgfeat: images to feature vectors for classic machine learning, and how good they are.

The public API::

    import imgfeat
    result = imgfeat.extract("photos/", "features/", model="tf_efficientnet_lite0")
    X, y, ids, meta = imgfeat.load_features("features/")
"""

from ._version import __version__
from .backbones.catalog import list_models, model_info  # noqa: E402
from .config import ExtractConfig, ModelConfig, RunConfig  # noqa: E402
from .decode import open_image  # noqa: E402
from .demo import make_demo_textures, run_demo  # noqa: E402
from .errors import (  # noqa: E402
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
from .evaluate import ClassifyReport, classify, make_classifier  # noqa: E402
from .pipeline import Extractor  # noqa: E402
from .pooling import Pooling, create_pooling, list_poolings, register_pooling  # noqa: E402
from .runner import ExtractResult, extract  # noqa: E402
from .sample import sample  # noqa: E402
from .sources import ArraySource, CsvSource, FolderSource, Item, PathsSource, Source, open_source  # noqa: E402
from .store import load_features  # noqa: E402
from .transformer import FeatureExtractor  # noqa: E402

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
