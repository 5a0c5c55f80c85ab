"""Output folders (local or object storage) in any registered format.

- :mod:`.format`: the :class:`ShardFormat` contract and the name registry (cheap to import);
- :mod:`.parquet`, :mod:`.npy`, :mod:`.csv`, :mod:`.csv_plain`: one module per format
  (:mod:`.npz`: the shards that npy and the CSVs merge at the end);
- :mod:`.layout`: where each file of an output lives; :mod:`.listing`: the frozen item list;
- :mod:`.job`: the job writer (:class:`JobStore`); :mod:`.reader`: :func:`load_features`.
"""

from .._lazy import lazy_exports
from ..errors import StoreError
from .format import ShardFormat, format_names, get_format, register_format, unregister_format
from .layout import FAILURES, META, read_meta

__getattr__, __dir__ = lazy_exports(__name__, {
    "JobStore": "job", "load_features": "reader", "no_features_error": "reader"})

__all__ = ["FAILURES", "META", "JobStore", "ShardFormat", "StoreError", "format_names",
           "get_format", "load_features", "no_features_error", "read_meta", "register_format",
           "unregister_format"]
