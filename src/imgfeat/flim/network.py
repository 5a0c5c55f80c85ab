"""The runnable FLIM network built from an :class:`~imgfeat.flim.architecture.Architecture`, and
its model file (safetensors: tensors in the body; architecture, input settings, classes and
provenance as JSON in the header; nothing is unpickled when it loads).
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..backbones.modelfile import (
    ModelFileKind,
    check_footprint,
    load_strict,
    measure,
    read_model_file,
    write_model_file,
)
from ..errors import ModelError
from ..preprocess import unit_rgb_config
from .architecture import Architecture, ArchitectureError, LayerSpec, ModuleSpec, parse_architecture
from .options import COLOR_SPACES

__all__ = [
    "COLOR_SPACES",
    "FORMAT",
    "ColorInput",
    "FlimConv2d",
    "FlimNetwork",
    "MarkerNorm2d",
    "Parallel",
    "flim_data_config",
    "load_model",
    "read_model_header",
    "save_model",
]

FORMAT = "imgfeat-flim/1"
KIND = ModelFileKind(FORMAT, "a FLIM model file", "FLIM model", ModelError)

# sRGB (D65) -> XYZ, and the L*a*b* ranges the original FLIM maps to [0, 1]
_RGB2XYZ = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                         [0.2126729, 0.7151522, 0.0721750],
                         [0.0193339, 0.1191920, 0.9503041]])
_WHITE = torch.tensor([0.950456, 1.0, 1.088754])
_LAB_SHIFT = torch.tensor([0.0, 86.182236, 107.867744])
_LAB_SCALE = torch.tensor([99.998337, 86.182236 + 98.258614, 107.867744 + 94.481682])


class ColorInput(nn.Module):
    """RGB in [0, 1] -> the network's input: L*a*b* scaled to about [0, 1] (``lab``) or as is."""

    def __init__(self, space: str = "lab") -> None:
        super().__init__()
        if space not in COLOR_SPACES:
            raise ModelError(f"color space must be one of {', '.join(COLOR_SPACES)}, not {space!r}")
        self.space = space

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.space == "rgb":
            return x
        x = x.clamp(0, 1)
        lin = torch.where(x > 0.04045, ((x + 0.055) / 1.055) ** 2.4, x / 12.92)
        m = _RGB2XYZ.to(x)
        xyz = torch.einsum("ij,bjhw->bihw", m, lin) / _WHITE.to(x).reshape(1, 3, 1, 1)
        f = torch.where(xyz > 0.008856451679035631, xyz.clamp_min(1e-12) ** (1 / 3),
                        xyz * (841 / 108) + 4 / 29)
        lab = torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)
        return (lab + _LAB_SHIFT.to(x).reshape(1, 3, 1, 1)) / _LAB_SCALE.to(x).reshape(1, 3, 1, 1)

    def extra_repr(self) -> str:
        return self.space


class MarkerNorm2d(nn.Module):
    """Marker-based normalisation: ``(x - mean) / (std + epsilon)`` per channel, with the mean and
    std measured on the marker pixels of its input while the network was learned."""

    def __init__(self, num_features: int, epsilon: float = 1e-3) -> None:
        super().__init__()
        self.num_features = num_features
        self.epsilon = float(epsilon)
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("std", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1, 1, 1)
        return (x - self.mean.reshape(shape)) / (self.std.reshape(shape) + self.epsilon)

    def extra_repr(self) -> str:
        return f"{self.num_features}, epsilon={self.epsilon}"


class FlimConv2d(nn.Conv2d):
    """A convolution whose kernels are learned from markers (k-means on patches, not gradients).

    ``kernels_per_marker``: k-means clusters per marker; ``reduce``: how kernels beyond
    ``out_channels`` are merged (``kmeans`` or ``pca``); ``metric``: ``euclidean`` or ``cosine``
    (spherical) k-means; ``fold_norm``: patches are normalised per input channel while learning
    and that normalisation is folded into the weights and the bias; ``center_patches``: each
    patch loses its own mean per input channel before k-means, so kernels match local structure
    (texture, edges) rather than the stroke's mean colour (off by default, as the original: for
    markers that tell colours apart; a 1×1 kernel is never centred); ``whiten``: k-means runs on
    ZCA-whitened patches and the whitening is folded into the kernels (diverse kernels: edges
    and bars at several orientations and frequencies rather than a few smooth ones);
    ``clustering``: ``per_marker`` (k-means in each marker, then reduced) or ``global`` (one
    k-means of all marker patches to ``out_channels``); ``complement_kernels``: that many of the
    ``out_channels`` are not learned but random directions orthogonal to the learned kernels
    (what the markers did not show: for centred kernels, the local mean among others).
    """

    def __init__(self, *args: Any, kernels_per_marker: int = 1, reduce: str = "kmeans",
                 metric: str = "euclidean", fold_norm: bool = False, center_patches: bool = False,
                 whiten: bool = False, clustering: str = "per_marker", complement_kernels: int = 0,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clustering = clustering
        self.complement_kernels = complement_kernels
        self.center_patches = center_patches
        self.whiten = whiten
        self.kernels_per_marker = kernels_per_marker
        self.reduce = reduce
        self.metric = metric
        self.fold_norm = fold_norm
        with torch.no_grad():
            self.weight.zero_()
            if self.bias is not None:
                self.bias.zero_()


class Parallel(nn.Module):
    """Branches that see the same input; outputs combined by concat, sum, prod or mean."""

    def __init__(self, branches: OrderedDict[str, nn.Module], aggregate: str = "concat") -> None:
        super().__init__()
        self.aggregate = aggregate
        for name, module in branches.items():
            self.add_module(name, module)

    def combine(self, outs: list[torch.Tensor]) -> torch.Tensor:
        if self.aggregate == "concat":
            return torch.cat(outs, dim=1)
        total = outs[0]
        for o in outs[1:]:
            total = total * o if self.aggregate == "prod" else total + o
        return total / len(outs) if self.aggregate == "mean" else total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine([branch(x) for branch in self.children()])

    def extra_repr(self) -> str:
        return f"aggregate={self.aggregate}"


def _pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, list | tuple) else (int(v), int(v))


def _make_layer(spec: LayerSpec, shape: tuple[int, ...], where: str) -> nn.Module:
    """One torch module for ``spec`` given its input ``shape`` (without the batch dimension)."""
    p, op = dict(spec.params), spec.operation
    channels = shape[0]
    if op == "conv2d":
        if len(shape) != 3:
            raise ArchitectureError(f"{where}: conv2d needs a (C, H, W) input, gets {list(shape)}")
        if p.get("in_channels", channels) != channels:
            raise ArchitectureError(f"{where}.params.in_channels: {p['in_channels']}, but its input has "
                                    f"{channels} channels")
        return FlimConv2d(channels, p["out_channels"], _pair(p["kernel_size"]), _pair(p.get("stride", 1)),
                          _pair(p.get("padding", 0)), _pair(p.get("dilation", 1)),
                          bias=bool(p.get("bias", False)),
                          kernels_per_marker=p["number_of_kernels_per_marker"],
                          reduce=p.get("reduce", "kmeans"), metric=p.get("kmeans", "euclidean"),
                          fold_norm=bool(p.get("bias", False)),
                          center_patches=bool(p.get("center_patches", False)),
                          whiten=bool(p.get("whiten", False)),
                          clustering=p.get("clustering", "per_marker"),
                          complement_kernels=int(p.get("complement_kernels", 0)))
    if op == "relu":
        return nn.ReLU(inplace=False)
    if op == "max_pool2d":
        k = _pair(p["kernel_size"])
        return nn.MaxPool2d(k, _pair(p.get("stride", k)), _pair(p.get("padding", 0)),
                            _pair(p.get("dilation", 1)), ceil_mode=p.get("ceil_mode", False))
    if op == "avg_pool2d":
        k = _pair(p["kernel_size"])
        return nn.AvgPool2d(k, _pair(p.get("stride", k)), _pair(p.get("padding", 0)),
                            ceil_mode=p.get("ceil_mode", False),
                            count_include_pad=p.get("count_include_pad", True))
    if op in ("batch_norm2d", "m_norm2d"):
        if p.get("num_features", channels) != channels:
            raise ArchitectureError(f"{where}.params.num_features: {p['num_features']}, but its input "
                                    f"has {channels} channels")
        if op == "m_norm2d":
            return MarkerNorm2d(channels, p.get("epsilon", 1e-3))
        bn = nn.BatchNorm2d(channels, eps=p.get("eps", 1e-5), momentum=p.get("momentum", 0.1),
                            affine=p.get("affine", True))
        return bn.eval()
    if op == "linear":
        n = math.prod(shape)
        if p["in_features"] not in (-1, n):
            raise ArchitectureError(f"{where}.params.in_features: {p['in_features']}, but its input has "
                                    f"{n} values (use -1 to infer it)")
        return nn.Linear(n, p["out_features"], bias=p.get("bias", True))
    if op == "dropout":
        return nn.Dropout(p.get("p", 0.5))
    if op == "adap_avg_pool2d":
        return nn.AdaptiveAvgPool2d(_pair(p["output_size"]))
    if op == "unfold":
        return nn.Unfold(_pair(p["kernel_size"]), _pair(p.get("dilation", 1)), _pair(p.get("padding", 0)),
                         _pair(p.get("stride", 1)))
    if op == "fold":
        return nn.Fold(_pair(p["output_size"]), _pair(p["kernel_size"]), _pair(p.get("dilation", 1)),
                       _pair(p.get("padding", 0)), _pair(p.get("stride", 1)))
    raise ArchitectureError(f"{where}.operation: {op} is not supported here")  # pragma: no cover


def _probe(module: nn.Module, x: torch.Tensor, where: str) -> torch.Tensor:
    try:
        with torch.no_grad():
            return module(x)
    except RuntimeError as exc:
        msg = str(exc).splitlines()[0]
        raise ArchitectureError(f"{where}: does not fit its input of shape {list(x.shape[1:])} ({msg})"
                                ) from None


def _expand(name: str, spec: LayerSpec) -> list[tuple[str, LayerSpec]]:
    """A conv2d with inline ``activation`` / ``pool``: the conv, then ``name_activation``, ``name_pool``."""
    if spec.operation != "conv2d":
        return [(name, spec)]
    params = {k: v for k, v in spec.params.items() if k not in ("activation", "pool")}
    out = [(name, LayerSpec("conv2d", params))]
    if "activation" in spec.params:
        out.append((f"{name}_activation", spec.params["activation"]))
    if "pool" in spec.params:
        out.append((f"{name}_pool", spec.params["pool"]))
    return out


def _build(spec: ModuleSpec, x: torch.Tensor, where: str) -> tuple[nn.Module, torch.Tensor]:
    """Build a module of ``spec`` for the probe input ``x``; returns it and its probe output."""
    if spec.type == "parallel":
        branches: OrderedDict[str, nn.Module] = OrderedDict()
        outs = []
        for name, sub in spec.layers.items():
            if isinstance(sub, ModuleSpec):
                mod, out = _build(sub, x, f"{where}.layers.{name}")
            else:
                mod, out = _build(ModuleSpec("sequential", dict(_expand(name, sub))), x,
                                  f"{where}.layers.{name}")
                if len(mod) == 1:
                    mod = mod[0]
            branches[name] = mod
            outs.append(out)
        par = Parallel(branches, spec.aggregate)
        shapes = {tuple(o.shape[2:]) for o in outs}
        if len(shapes) > 1 or (spec.aggregate != "concat" and len({o.shape[1] for o in outs}) > 1):
            raise ArchitectureError(f"{where}: parallel branches give shapes "
                                    f"{[list(o.shape[1:]) for o in outs]} that cannot be "
                                    f"combined by {spec.aggregate}")
        return par, par.combine(outs)
    seq = nn.Sequential()
    for name, sub in spec.layers.items():
        if isinstance(sub, ModuleSpec):
            mod, x = _build(sub, x, f"{where}.layers.{name}")
            seq.add_module(name, mod)
            continue
        for leaf_name, leaf in _expand(name, sub):
            key = f"{where}.layers.{name}"
            if leaf.operation == "linear" and x.ndim > 2:
                flat = nn.Flatten()
                seq.add_module(f"{leaf_name}_flatten", flat)
                x = flat(x)
            mod = _make_layer(leaf, tuple(x.shape[1:]), key)
            x = _probe(mod, x, key)
            seq.add_module(leaf_name, mod)
    return seq, x


def flim_data_config(input_size: tuple[int, int], color: str = "lab") -> dict:
    """A FLIM network's pixels: RGB in [0, 1] squashed to its input size (as it learned);
    the conversion to ``color`` runs inside the network."""
    return unit_rgb_config(*input_size, resize="squash", color_space=color)


class FlimNetwork(nn.Module):
    """``input`` (colour conversion) → ``features`` → optional ``classifier`` (and ``svm`` head).

    Built with zero kernels; :func:`imgfeat.flim.learn.learn_filters` computes them, or
    :func:`load_model` reads them from a model file.
    """

    def __init__(self, architecture: Architecture | dict, input_size: tuple[int, int] = (64, 64),
                 color: str = "lab", in_chans: int = 3) -> None:
        super().__init__()
        self.architecture = (architecture if isinstance(architecture, Architecture)
                             else parse_architecture(architecture))
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.color = color
        self.input = ColorInput(color)
        probe = torch.zeros(1, in_chans, *self.input_size)
        self.features, out = _build(self.architecture.features, self.input(probe), "features")
        self.feature_shape = tuple(out.shape[1:])
        if len(self.feature_shape) != 3:
            raise ArchitectureError(f"features: must end in a (C, H, W) map, ends in "
                                    f"{list(self.feature_shape)}")
        self.classifier: nn.Module | None = None
        if self.architecture.classifier is not None:
            self.classifier, _ = _build(self.architecture.classifier, out, "classifier")
        self.svm: nn.Linear | None = None
        self.classes: list[str] = []
        #: the classifiers trained on top ("svm", "classifier"), in the order they were trained
        self.trained_heads: list[str] = []
        self.eval()

    def data_config(self) -> dict:
        """What decides its pixels (see :func:`flim_data_config`)."""
        return flim_data_config(self.input_size, self.color)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] (B, 3, H, W) -> the final feature map."""
        return self.features(self.input(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores from the trained JSON classifier, else from the linear SVM head."""
        feats = self.forward_features(x)
        if self.classifier is not None and "classifier" in self.trained_heads:
            return self.classifier(feats)
        if self.svm is not None:
            return self.svm(feats.flatten(1))
        raise ModelError("this FLIM model has no classifier (train with --svm or a 'classifier')")

    def set_svm(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Attach a linear SVM over the flattened final map as a linear head."""
        self.svm = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.svm.weight.copy_(weight)
            self.svm.bias.copy_(bias)

    def named_leaves(self) -> Iterator[tuple[str, nn.Module]]:
        """Every leaf module of ``features`` with its qualified name, in module order."""
        for name, mod in self.features.named_modules(prefix="features"):
            if not isinstance(mod, nn.Sequential | Parallel):
                yield name, mod


def read_model_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a model file (architecture, input, classes, provenance)."""
    return read_model_file(path, KIND, header_only=True)[1]


def save_model(path: str | os.PathLike, network: FlimNetwork, provenance: dict | None = None) -> Path:
    """Write ``network`` as one safetensors file, atomically."""
    header = {
        "architecture": network.architecture.to_dict(),
        "input": {"size": list(network.input_size), "color": network.color,
                  "range": "RGB in [0, 1]"},
        "classes": network.classes,
        "heads": network.trained_heads,
        "provenance": provenance or {},
    }
    write_model_file(path, network, KIND, header)
    return Path(path)


def _input_of(header: dict[str, Any], where: str) -> tuple[tuple[int, int], str]:
    """(H, W) and colour space from a header's ``input``; one line when they are malformed."""
    inp = header.get("input")
    size = inp.get("size") if isinstance(inp, dict) else None
    color = inp.get("color", "lab") if isinstance(inp, dict) else None
    if (not isinstance(size, list) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size)):
        raise ModelError(f"{where}: header 'input.size' must be [height, width] in pixels, "
                         f"not {size!r}")
    if color not in COLOR_SPACES:
        raise ModelError(f"{where}: header 'input.color' must be one of "
                         f"{', '.join(COLOR_SPACES)}, not {color!r}")
    return (size[0], size[1]), color


def load_model(path: str | os.PathLike, input_size: tuple[int, int] | None = None) -> FlimNetwork:
    """Rebuild a network from its model file (no pickle), in eval mode. The header's
    architecture is validated and measured (at ``input_size``, default its own) before any
    tensor is allocated: one that would not fit this machine is one :class:`ModelError` line."""
    tensors, header = read_model_file(path, KIND)
    where = Path(path).name
    size, color = _input_of(header, where)
    size = tuple(input_size) if input_size else size
    try:
        arch = parse_architecture(header.get("architecture"))
    except ArchitectureError as exc:
        raise ModelError(f"{where}: {exc}") from None
    check_footprint(measure(lambda: FlimNetwork(arch, size, color),
                            lambda net, x: net.forward_features(x), (3, *size), where), where)
    net = FlimNetwork(arch, size, color)
    if "svm.weight" in tensors and "svm.bias" in tensors and tensors["svm.weight"].ndim == 2:
        net.set_svm(tensors["svm.weight"], tensors["svm.bias"])
    net.classes = [str(c) for c in header.get("classes") or []]
    net.trained_heads = [str(h) for h in header.get("heads") or []]
    load_strict(net, tensors, where)
    net.provenance = header.get("provenance", {})
    return net.eval()
