"""Model files: safetensors with a JSON header, the one seam every trained kind shares.

A model file holds the tensors in its body and, in its header, a ``format`` tag and JSON values
(the architecture, the preprocessing, provenance): nothing is unpickled when it loads. This
module writes such a file atomically and returns its hash, reads it back (a missing file, one
that is not safetensors, another format or a header field that is not JSON is one clear line),
loads tensors strictly (another architecture's tensors are one line naming the first mismatch),
reads any ``.safetensors`` file for ``--weights``, hashes files, and bounds an architecture before anything is
allocated: :func:`measure` builds it on PyTorch's ``meta`` device (shapes only, no memory) and
:func:`check_footprint` refuses one that would not fit.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ImgfeatError, ModelError
from ..storage import atomic_path

__all__ = ["MAX_PARAMETERS", "Footprint", "ModelFileKind", "check_footprint", "file_sha256",
           "load_strict", "machine_memory", "measure", "mismatch", "read_model_file",
           "read_tensors", "write_model_file"]

#: the most parameters a model file may ask for (8 GB in float32)
MAX_PARAMETERS = 2_000_000_000


@dataclass(frozen=True)
class ModelFileKind:
    """What a kind's model files are called and tagged: ``format`` in the header, ``title``
    (``"a FLIM model file"``) and ``short`` (``"FLIM model"``) in messages, and the error class
    its problems raise."""

    format: str
    title: str
    short: str
    error: type[ImgfeatError] = ModelError


def write_model_file(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor] | nn.Module,
                     kind: ModelFileKind, header: Mapping[str, Any]) -> str:
    """Write ``tensors`` (or a module's state dict) and ``header`` (each value stored as JSON)
    atomically; returns the file's sha256."""
    from safetensors.torch import save_file

    if isinstance(tensors, nn.Module):
        tensors = tensors.state_dict()
    body = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {"format": kind.format}
    meta.update({k: json.dumps(v, default=str) for k, v in header.items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(body, str(tmp), metadata=meta)
    return file_sha256(path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def read_tensors(path: str | os.PathLike, header_only: bool = False
                 ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, raw header strings) of any safetensors file; raises what safetensors raises."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as fh:
        meta = dict(fh.metadata() or {})
        tensors = {} if header_only else {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    return tensors, meta


def read_model_file(path: str | os.PathLike, kind: ModelFileKind, header_only: bool = False
                    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, header with its JSON values decoded) of a model file of ``kind``; every problem
    is one ``kind.error`` line. ``header_only`` reads no tensor."""
    p = Path(path)
    if not p.is_file():
        raise kind.error(f"{kind.short} not found: {p}")
    try:
        tensors, meta = read_tensors(p, header_only)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise kind.error(f"{p.name} is not {kind.title}: not a safetensors file "
                         f"({_first_line(exc)})") from None
    found = meta.pop("format", None)
    if found != kind.format:
        raise kind.error(f"{p.name} is not {kind.title} (format {found!r}, expected "
                         f"{kind.format!r})")
    header: dict[str, Any] = {}
    for key, text in meta.items():
        try:
            header[key] = json.loads(text)
        except ValueError:
            raise kind.error(f"{p.name}: header field {key!r} is not valid JSON") from None
    return tensors, header


def mismatch(module: nn.Module, tensors: Mapping[str, torch.Tensor],
             ignore: set[str] | frozenset[str] = frozenset()) -> str | None:
    """How ``tensors`` fail to fit ``module`` (counts and the first key), or None when they do."""
    own = {k: v for k, v in module.state_dict().items() if k not in ignore}
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own) - set(ignore))
    bad = [k for k in own if k in tensors and tuple(tensors[k].shape) != tuple(own[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if extra:
        parts.append(f"{len(extra)} unexpected (e.g. {extra[0]})")
    if bad:
        parts.append(f"{bad[0]} is {tuple(tensors[bad[0]].shape)}, expected "
                     f"{tuple(own[bad[0]].shape)}")
    return ", ".join(parts) or None


def load_strict(module: nn.Module, tensors: Mapping[str, torch.Tensor], name: str,
                error: type[ImgfeatError] = ModelError) -> None:
    """Load every tensor into ``module``; another architecture's tensors are one line."""
    why = mismatch(module, tensors)
    if why:
        raise error(f"{name} is from another architecture ({why})")
    module.load_state_dict(dict(tensors), strict=True)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- bounding an architecture before it is allocated -------------------------------------------
@dataclass(frozen=True)
class Footprint:
    """Parameters (and buffers) of a network and the activations of one image through it."""

    parameters: int
    activations: int

    @property
    def bytes(self) -> int:
        """float32 bytes: the parameters plus one image's activations."""
        return 4 * (self.parameters + self.activations)


def measure(build: Callable[[], nn.Module], run: Callable[[nn.Module, torch.Tensor], Any],
            input_shape: tuple[int, ...], what: str) -> Footprint:
    """Build a network on the ``meta`` device (shapes only, nothing allocated) and run one
    image of ``input_shape`` (C, H, W) through it: its parameter count and the values its
    layers output. An architecture that cannot be built is one :class:`ModelError` line."""
    seen = [0]

    def count(_module, _inputs, output) -> None:
        outs = output if isinstance(output, tuple | list) else (output,)
        seen[0] += sum(o.numel() for o in outs if isinstance(o, torch.Tensor))

    try:
        with torch.device("meta"), torch.no_grad():
            model = build()
            params = sum(t.numel() for t in (*model.parameters(), *model.buffers()))
            for m in model.modules():
                if not any(True for _ in m.children()):
                    m.register_forward_hook(count)
            run(model, torch.empty(1, *input_shape))
    except ImgfeatError:
        raise
    except Exception as exc:  # noqa: BLE001 - any impossible architecture is one line
        raise ModelError(f"{what}: its architecture cannot be built ({_first_line(exc)})") from None
    return Footprint(int(params), int(seen[0]))


def machine_memory() -> int | None:
    """Physical memory of this machine in bytes (None where it cannot be told)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return None


def _gib(n: float) -> str:
    return f"{n / 2 ** 30:,.1f} GiB"


def check_footprint(fp: Footprint, what: str, memory: int | None = None) -> Footprint:
    """Refuse, in one :class:`ModelError` line, a network over :data:`MAX_PARAMETERS` or whose
    parameters and one image's activations exceed this machine's memory."""
    memory = machine_memory() if memory is None else memory
    if fp.parameters > MAX_PARAMETERS:
        raise ModelError(f"{what}: its architecture has {fp.parameters:,} parameters, over the "
                         f"limit of {MAX_PARAMETERS:,}")
    if memory and fp.bytes > memory:
        raise ModelError(f"{what}: its architecture needs about {_gib(fp.bytes)} for one image "
                         f"({fp.parameters:,} parameters, {fp.activations:,} activation values), "
                         f"more than this machine's {_gib(memory)}")
    return fp
