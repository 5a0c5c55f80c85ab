"""The FLIM network described as JSON: validated, with errors that name the offending key path.

::

    {"features": {"type": "sequential", "layers": {
        "conv1": {"operation": "conv2d", "params": {"kernel_size": 5, "padding": 2,
                  "number_of_kernels_per_marker": 8, "out_channels": 32,
                  "activation": {"operation": "relu"},
                  "pool": {"operation": "max_pool2d", "params": {"kernel_size": 3, "stride": 2,
                                                                 "padding": 1}}}}}},
     "classifier": {"layers": {"linear1": {"operation": "linear",
                                           "params": {"in_features": -1, "out_features": 10}}}}}

A module is ``sequential`` (default) or ``parallel`` (``params.aggregate``: concat, sum, prod or
mean); layers run in the order written. Parameters take their PyTorch names. Pure Python: no
torch import.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..storage import atomic_path

__all__ = [
    "AGGREGATES",
    "Architecture",
    "ArchitectureError",
    "CLUSTERINGS",
    "KMEANS_METRICS",
    "LayerSpec",
    "ModuleSpec",
    "OPERATIONS",
    "REDUCTIONS",
    "load_architecture",
    "parse_architecture",
    "shipped_architecture",
]

AGGREGATES = ("concat", "sum", "prod", "mean")
REDUCTIONS = ("kmeans", "pca")
KMEANS_METRICS = ("euclidean", "cosine")
#: ``per_marker``: k-means in each marker, then reduced (the original's default); ``global``: one
#: k-means of every marker patch straight to ``out_channels`` (its ``multilevel_clustering=False``)
CLUSTERINGS = ("per_marker", "global")


class ArchitectureError(ConfigError):
    """An architecture JSON that cannot describe a network (the message names the key path)."""


_INT = (int,)
_NUM = (int, float)
_BOOL = (bool,)
_SIZE = (int, list)  # an int or [h, w]

#: operation -> {parameter: (accepted types, required)}
OPERATIONS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "conv2d": {
        "in_channels": (_INT, False),
        "out_channels": (_INT, True),
        "kernel_size": (_SIZE, True),
        "stride": (_SIZE, False),
        "padding": (_SIZE, False),
        "dilation": (_SIZE, False),
        "bias": (_BOOL, False),
        "number_of_kernels_per_marker": (_INT, True),
        "reduce": ((str,), False),
        "kmeans": ((str,), False),
        "center_patches": (_BOOL, False),
        "whiten": (_BOOL, False),
        "clustering": ((str,), False),
        "complement_kernels": (_INT, False),
        "activation": ((dict,), False),
        "pool": ((dict,), False),
    },
    "relu": {"inplace": (_BOOL, False)},
    "max_pool2d": {"kernel_size": (_SIZE, True), "stride": (_SIZE, False), "padding": (_SIZE, False),
                   "dilation": (_SIZE, False), "ceil_mode": (_BOOL, False)},
    "avg_pool2d": {"kernel_size": (_SIZE, True), "stride": (_SIZE, False), "padding": (_SIZE, False),
                   "ceil_mode": (_BOOL, False), "count_include_pad": (_BOOL, False)},
    "batch_norm2d": {"num_features": (_INT, False), "eps": (_NUM, False), "momentum": (_NUM, False),
                     "affine": (_BOOL, False)},
    "m_norm2d": {"num_features": (_INT, False), "epsilon": (_NUM, False), "kernel_size": (_SIZE, False),
                 "dilation": (_SIZE, False), "default_std": (_NUM, False)},
    "linear": {"in_features": (_INT, True), "out_features": (_INT, True), "bias": (_BOOL, False)},
    "dropout": {"p": (_NUM, False), "inplace": (_BOOL, False)},
    "adap_avg_pool2d": {"output_size": (_SIZE, True)},
    "unfold": {"kernel_size": (_SIZE, True), "stride": (_SIZE, False), "padding": (_SIZE, False),
               "dilation": (_SIZE, False)},
    "fold": {"output_size": (_SIZE, True), "kernel_size": (_SIZE, True), "stride": (_SIZE, False),
             "padding": (_SIZE, False), "dilation": (_SIZE, False)},
}

#: operations that may appear as a conv2d's inline ``activation`` / ``pool``
INLINE_ACTIVATIONS = ("relu",)
INLINE_POOLS = ("max_pool2d", "avg_pool2d")


@dataclass(frozen=True)
class LayerSpec:
    """One operation and its parameters."""

    operation: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"operation": self.operation, "params": _plain(self.params)}


@dataclass(frozen=True)
class ModuleSpec:
    """A ``sequential`` or ``parallel`` group of named layers and modules."""

    type: str = "sequential"
    layers: dict[str, LayerSpec | ModuleSpec] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"type": self.type}
        if self.params:
            out["params"] = _plain(self.params)
        out["layers"] = {k: v.to_dict() for k, v in self.layers.items()}
        return out

    @property
    def aggregate(self) -> str:
        return self.params.get("aggregate", "concat")


@dataclass(frozen=True)
class Architecture:
    """A FLIM network: its ``features`` and an optional ``classifier``."""

    features: ModuleSpec
    classifier: ModuleSpec | None = None

    def to_dict(self) -> dict:
        out = {"features": self.features.to_dict()}
        if self.classifier is not None:
            out["classifier"] = self.classifier.to_dict()
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the architecture JSON atomically."""
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(self.to_json() + "\n")
        return path

    def conv_layers(self) -> list[tuple[str, LayerSpec]]:
        """Every conv2d of ``features`` with its dotted path (``features.block1.conv1``)."""
        found: list[tuple[str, LayerSpec]] = []

        def walk(module: ModuleSpec, prefix: str) -> None:
            for name, spec in module.layers.items():
                if isinstance(spec, ModuleSpec):
                    walk(spec, f"{prefix}.{name}")
                elif spec.operation == "conv2d":
                    found.append((f"{prefix}.{name}", spec))

        walk(self.features, "features")
        return found


def _plain(value: Any) -> Any:
    if isinstance(value, LayerSpec):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _check_value(op: str, name: str, value: Any, types: tuple[type, ...], where: str) -> None:
    if isinstance(value, bool) and bool not in types:
        raise ArchitectureError(f"{where}: expected {_type_names(types)}, got {value!r}")
    if not isinstance(value, types):
        raise ArchitectureError(f"{where}: expected {_type_names(types)}, got {value!r}")
    if list in types and isinstance(value, list):
        if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ArchitectureError(f"{where}: expected an int or [height, width], got {value!r}")
        vals = value
    elif isinstance(value, int) and not isinstance(value, bool):
        vals = [value]
    else:
        vals = []
    low = {"padding": 0, "in_features": -1, "complement_kernels": 0}.get(name, 1)
    if op == "linear" and name == "in_features" and value == 0:
        raise ArchitectureError(f"{where}: must be -1 (inferred) or positive, got 0")
    for v in vals:
        if v < low:
            raise ArchitectureError(f"{where}: must be >= {low}, got {value!r}")


def _type_names(types: tuple[type, ...]) -> str:
    names = {int: "an int", float: "a number", bool: "true/false", list: "[height, width]",
             str: "a string", dict: "an object"}
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def _parse_layer(data: Any, where: str, inline: tuple[str, ...] | None = None) -> LayerSpec:
    if not isinstance(data, dict):
        raise ArchitectureError(f"{where}: expected an object with 'operation' and 'params'")
    unknown = set(data) - {"operation", "params"}
    if unknown:
        raise ArchitectureError(f"{where}.{sorted(unknown)[0]}: unknown key (a layer has 'operation' "
                                "and 'params'; a module has 'type' and 'layers')")
    op = data.get("operation")
    if op is None:
        raise ArchitectureError(f"{where}.operation: missing")
    allowed = inline if inline is not None else tuple(OPERATIONS)
    if op not in allowed:
        raise ArchitectureError(f"{where}.operation: unknown operation {op!r}; known: {', '.join(allowed)}")
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise ArchitectureError(f"{where}.params: expected an object")
    schema = OPERATIONS[op]
    for name, value in params.items():
        key = f"{where}.params.{name}"
        if name not in schema:
            raise ArchitectureError(f"{key}: unknown parameter of {op}; known: {', '.join(schema)}")
        _check_value(op, name, value, schema[name][0], key)
    for name, (_, required) in schema.items():
        if required and name not in params:
            raise ArchitectureError(f"{where}.params.{name}: missing (required by {op})")
    params = dict(params)
    if op == "conv2d":
        if params.get("reduce", "kmeans") not in REDUCTIONS:
            raise ArchitectureError(f"{where}.params.reduce: must be one of {', '.join(REDUCTIONS)}, "
                                    f"got {params['reduce']!r}")
        if params.get("kmeans", "euclidean") not in KMEANS_METRICS:
            raise ArchitectureError(f"{where}.params.kmeans: must be one of {', '.join(KMEANS_METRICS)}, "
                                    f"got {params['kmeans']!r}")
        if params.get("clustering", "per_marker") not in CLUSTERINGS:
            raise ArchitectureError(f"{where}.params.clustering: must be one of {', '.join(CLUSTERINGS)}, "
                                    f"got {params['clustering']!r}")
        if params.get("complement_kernels", 0) >= params["out_channels"]:
            raise ArchitectureError(f"{where}.params.complement_kernels: must be below out_channels "
                                    f"({params['out_channels']}), got {params['complement_kernels']}")
        if "activation" in params:
            params["activation"] = _parse_layer(params["activation"], f"{where}.params.activation",
                                                INLINE_ACTIVATIONS)
        if "pool" in params:
            params["pool"] = _parse_layer(params["pool"], f"{where}.params.pool", INLINE_POOLS)
    return LayerSpec(op, params)


def _parse_module(data: Any, where: str) -> ModuleSpec:
    if not isinstance(data, dict):
        raise ArchitectureError(f"{where}: expected an object with 'layers'")
    unknown = set(data) - {"type", "layers", "params"}
    if unknown:
        raise ArchitectureError(f"{where}.{sorted(unknown)[0]}: unknown key (a module has 'type', "
                                "'params' and 'layers')")
    kind = data.get("type", "sequential")
    if kind not in ("sequential", "parallel"):
        raise ArchitectureError(f"{where}.type: must be 'sequential' or 'parallel', got {kind!r}")
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise ArchitectureError(f"{where}.params: expected an object")
    if kind == "parallel":
        agg = params.get("aggregate", "concat")
        if agg not in AGGREGATES:
            raise ArchitectureError(f"{where}.params.aggregate: must be one of {', '.join(AGGREGATES)}, "
                                    f"got {agg!r}")
    extra = set(params) - ({"aggregate"} if kind == "parallel" else set())
    if extra:
        raise ArchitectureError(f"{where}.params.{sorted(extra)[0]}: unknown module parameter")
    layers = data.get("layers")
    if not isinstance(layers, dict) or not layers:
        raise ArchitectureError(f"{where}.layers: expected a non-empty object of named layers")
    parsed: dict[str, LayerSpec | ModuleSpec] = {}
    for name, value in layers.items():
        if not name or "." in name or not isinstance(name, str):
            raise ArchitectureError(f"{where}.layers: bad layer name {name!r} (no dots, not empty)")
        key = f"{where}.layers.{name}"
        is_module = isinstance(value, dict) and ("layers" in value or "type" in value)
        parsed[name] = _parse_module(value, key) if is_module else _parse_layer(value, key)
    return ModuleSpec(kind, parsed, dict(params))


def parse_architecture(data: dict | str) -> Architecture:
    """Validate an architecture (a dict, or JSON text); raises :class:`ArchitectureError`."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ArchitectureError(f"architecture: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ArchitectureError("architecture: expected an object with 'features'")
    data = {k: v for k, v in data.items() if k != "_doc"}  # a comment, as in the shipped files
    unknown = set(data) - {"features", "classifier"}
    if unknown:
        raise ArchitectureError(f"{sorted(unknown)[0]}: unknown top-level key (use 'features' and "
                                "optionally 'classifier')")
    if "features" not in data:
        raise ArchitectureError("features: missing")
    features = _parse_module(data["features"], "features")
    if not any(True for _ in _leaves(features)):
        raise ArchitectureError("features.layers: no layers")
    classifier = _parse_module(data["classifier"], "classifier") if "classifier" in data else None
    return Architecture(features, classifier)


def _leaves(module: ModuleSpec):
    for spec in module.layers.values():
        if isinstance(spec, ModuleSpec):
            yield from _leaves(spec)
        else:
            yield spec


#: architectures shipped with imgfeat (``imgfeat/flim/architectures/<name>.json``), by name
SHIPPED = ("texture",)


def shipped_architecture(name: str) -> Path:
    """The file of a shipped architecture (``texture``: see its ``_doc``)."""
    if name not in SHIPPED:
        raise ArchitectureError(f"no shipped architecture {name!r}; shipped: {', '.join(SHIPPED)}")
    return Path(__file__).with_name("architectures") / f"{name}.json"


def load_architecture(path: str | os.PathLike) -> Architecture:
    """Read and validate an architecture JSON file, or a shipped one by name (``texture``) when
    no file of that name exists."""
    if str(path) in SHIPPED and not Path(path).exists():
        path = shipped_architecture(str(path))
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ArchitectureError(f"{path}: cannot read architecture ({exc.strerror or exc})") from None
    try:
        return parse_architecture(text)
    except ArchitectureError as exc:
        raise ArchitectureError(f"{path}: {exc}") from None
