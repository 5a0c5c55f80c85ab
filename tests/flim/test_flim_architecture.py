"""FLIM architecture JSON: round trips, errors that name the key path, shapes that do not fit."""

from __future__ import annotations

import copy
import json

import pytest

from imgfeat.errors import ConfigError
from imgfeat.flim.architecture import ArchitectureError, load_architecture, parse_architecture

SPEC = {
    "features": {"type": "sequential", "layers": {
        "m-norm1": {"operation": "m_norm2d", "params": {}},
        "conv1": {"operation": "conv2d", "params": {
            "kernel_size": 5, "stride": 1, "padding": 2, "dilation": 1,
            "number_of_kernels_per_marker": 8, "out_channels": 32,
            "activation": {"operation": "relu", "params": {"inplace": True}},
            "pool": {"operation": "max_pool2d", "params": {"kernel_size": 3, "stride": 4, "padding": 0}}}},
        "branches": {"type": "parallel", "params": {"aggregate": "sum"}, "layers": {
            "a": {"operation": "conv2d", "params": {"kernel_size": 3, "padding": 1,
                                                    "number_of_kernels_per_marker": 2, "out_channels": 4}},
            "b": {"operation": "conv2d", "params": {"kernel_size": [1, 1], "reduce": "pca",
                                                    "kmeans": "cosine", "number_of_kernels_per_marker": 2,
                                                    "out_channels": 4}}}},
        "bn": {"operation": "batch_norm2d", "params": {"eps": 1e-5}},
        "drop": {"operation": "dropout", "params": {"p": 0.1}},
        "avg": {"operation": "avg_pool2d", "params": {"kernel_size": 2}},
    }},
    "classifier": {"type": "sequential", "layers": {
        "linear1": {"operation": "linear", "params": {"in_features": -1, "out_features": 16}},
        "relu3": {"operation": "relu", "params": {"inplace": True}},
        "linear2": {"operation": "linear", "params": {"in_features": 16, "out_features": 3}}}},
}


def test_round_trip(tmp_path):
    arch = parse_architecture(SPEC)
    assert arch.to_dict() == SPEC
    assert parse_architecture(arch.to_json()) == arch
    assert load_architecture(arch.save(tmp_path / "a.json")) == arch
    assert [name for name, _ in arch.conv_layers()] == [
        "features.conv1", "features.branches.a", "features.branches.b"]


def _bad(path: list, value=None, delete: bool = False) -> dict:
    spec = copy.deepcopy(SPEC)
    node = spec
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return spec


@pytest.mark.parametrize(("path", "value", "delete", "message"), [
    (["features", "layers", "conv1", "params", "kernel_size"], "5", False,
     "features.layers.conv1.params.kernel_size: expected"),
    (["features", "layers", "conv1", "params", "kernel_size"], 0, False,
     "features.layers.conv1.params.kernel_size: must be >= 1"),
    (["features", "layers", "conv1", "params", "out_channels"], None, True,
     "features.layers.conv1.params.out_channels: missing"),
    (["features", "layers", "conv1", "params", "colour"], 1, False,
     "features.layers.conv1.params.colour: unknown parameter"),
    (["features", "layers", "conv1", "operation"], "conv9d", False,
     "features.layers.conv1.operation: unknown operation 'conv9d'"),
    (["features", "layers", "conv1", "params", "pool", "operation"], "relu", False,
     "features.layers.conv1.params.pool.operation: unknown operation"),
    (["features", "layers", "branches", "params", "aggregate"], "max", False,
     "features.layers.branches.params.aggregate"),
    (["features", "layers", "branches", "layers", "b", "params", "reduce"], "svd", False,
     "features.layers.branches.layers.b.params.reduce"),
    (["classifier", "layers", "linear1", "params", "in_features"], 0, False,
     "classifier.layers.linear1.params.in_features"),
    (["features", "type"], "graph", False, "features.type"),
    (["extra"], {}, False, "extra: unknown top-level key"),
    (["features"], None, True, "features: missing"),
])
def test_bad_spec_names_its_key(path, value, delete, message):
    with pytest.raises(ArchitectureError, match=message.replace("(", r"\(")) as info:
        parse_architecture(_bad(path, value, delete))
    assert isinstance(info.value, ConfigError)
    assert "\n" not in str(info.value)


def test_bad_file_names_the_file(tmp_path):
    p = tmp_path / "arch.json"
    p.write_text(json.dumps(_bad(["features", "layers", "conv1", "params", "stride"], -1)))
    with pytest.raises(ArchitectureError, match=rf"{p}: features.layers.conv1.params.stride"):
        load_architecture(p)
    p.write_text("{not json")
    with pytest.raises(ArchitectureError, match="not valid JSON"):
        load_architecture(p)


def test_shapes_that_do_not_fit_name_the_layer():
    from imgfeat.flim.network import FlimNetwork

    net = FlimNetwork(SPEC, (32, 32))
    assert net.feature_shape == (4, 4, 4)
    with pytest.raises(ArchitectureError, match="features.layers.conv1.*does not fit"):
        FlimNetwork(SPEC, (2, 2))  # a 5x5 kernel with padding 2 fits, the 3/4 pool does not
    wrong = _bad(["classifier", "layers", "linear1", "params", "in_features"], 7)
    with pytest.raises(ArchitectureError, match="classifier.layers.linear1.params.in_features: 7"):
        FlimNetwork(wrong, (32, 32))
    cat = _bad(["features", "layers", "branches", "layers", "b", "params", "kernel_size"], 3)
    with pytest.raises(ArchitectureError, match="features.layers.branches: parallel branches"):
        FlimNetwork(cat, (32, 32))
