"""The model options (:class:`~imgfeat.config.ModelConfig`) on the command line, written once
for every command that builds a model (``extract``, ``bench``). Choices come from where they are
defined (config, precision, the pooling registry); pooling flags come from the poolings."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from ..config import model_options, option_choices, option_type


class LazyChoices(Sequence):
    """An option's choices named by module and attribute, imported when argparse first checks
    or shows them, so building the parser imports nothing heavy (``help="one of
    %(choices)s"`` lists them). ``sort``: sorted (the keys of a dict otherwise in order)."""

    def __init__(self, module: str, name: str, sort: bool = False) -> None:
        self.module, self.name, self.sort = module, name, sort
        self._values: tuple | None = None

    @property
    def values(self) -> tuple:
        if self._values is None:
            found = getattr(importlib.import_module(self.module), self.name)
            self._values = tuple(sorted(found) if self.sort else found)
        return self._values

    def __getitem__(self, index):
        return self.values[index]

    def __len__(self) -> int:
        return len(self.values)

    def __contains__(self, value) -> bool:
        return value in self.values


def add_source_arguments(g) -> None:
    """The options that say how to read a source (labels, arrays), for every command that
    reads one (``extract``, ``sample``)."""
    g.add_argument("--label-pattern", metavar="REGEX",
                   help=r"take labels from file names, e.g. '(\d+)C\d+' (first group)")
    g.add_argument("--no-labels", action="store_true", help="ignore sub-folder names")
    g.add_argument("--data", metavar="X.npy", help="images as a NumPy array (N×H×W×C or flat N×D)")
    g.add_argument("--labels", metavar="y.npy", help="labels for --data (one per image)")
    g.add_argument("--height", type=int, help="height of flat --data rows")
    g.add_argument("--width", type=int, help="width of flat --data rows")
    g.add_argument("--channels", type=int, help="channels of flat --data rows (default 1)")


def add_runtime_argument(g) -> None:
    """``--runtime``: what runs the network (extract, bench)."""
    from ..runtimes import RUNTIMES

    g.add_argument("--runtime", choices=RUNTIMES, default="auto",
                   help="what runs the network: torch, or exported to openvino or onnxruntime "
                        "(the openvino/onnx extras); auto: the fastest installed one whose maps "
                        "equal torch's on a probe (fp32, CPU), else torch")


def add_model_arguments(g, *, several: bool = False, only: tuple[str, ...] | None = None,
                        **defaults) -> None:
    """Add a flag for every model option (a :class:`~imgfeat.config.ModelConfig` field, from
    its metadata) to the argument group ``g``; ``pool_args`` becomes the poolings' own flags.
    ``several``: the options with a plural name (--model, --pool) take lists (bench's grid);
    ``only``: just these options (``info``); ``defaults`` replace the fields' defaults (bench:
    ``img_size=224``)."""
    for f in model_options():
        if only is not None and f.name not in only:
            continue
        meta, default = f.metadata, defaults.get(f.name, f.default)
        if meta["flag"] is None:
            add_pooling_arguments(g)
            continue
        flag = meta["flag"] or "--" + f.name.replace("_", "-")
        kwargs: dict = {"dest": f.name, "default": default, "help": meta["help"]}
        if default is None and meta["unset"]:
            kwargs["help"] += f" (default: {meta['unset']})"
        kind = option_type(f)
        if kind is bool:
            g.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if (choices := option_choices(f)) is not None:
            kwargs["choices"] = choices
            if meta["metavar"]:
                kwargs["help"] += f": {', '.join(map(str, choices))}"
        if several and meta["plural"]:
            kwargs.update(nargs="+", default=[default])
        g.add_argument(flag, type=kind, metavar=meta["metavar"], **kwargs)


def add_pooling_arguments(g) -> None:
    """The poolings' parameters, one flag each (from the poolings' ``cli_options``)."""
    for flag, opt in pooling_flags().items():
        kwargs = {"choices": opt["choices"]} if opt["choices"] else {}
        values = set(opt["defaults"].values())
        defaults = (str(values.pop()) if len(values) == 1 else
                    ", ".join(f"{v} for {p}" for p, v in opt["defaults"].items()))
        g.add_argument(flag, dest=flag_dest(flag), type=opt["type"], default=None,
                       metavar=opt["param"].upper(), help=f"{opt['help']} (default: {defaults})",
                       **kwargs)


def model_flag_names() -> dict[str, str]:
    """Python name -> flag of the model options whose flag is not ``--`` + the name (the grid
    names of bench: ``models`` -> ``--model``), for messages that name flags."""
    names = {}
    for f in model_options():
        flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
        if f.metadata["flag"]:
            names[f.name] = flag
        if f.metadata["plural"]:
            names[f.metadata["plural"]] = flag
    return names


def pooling_flags() -> dict[str, dict]:
    from ..pooling.registry import pooling_options

    return pooling_options()


def flag_dest(flag: str) -> str:
    return "pool_opt_" + flag.lstrip("-").replace("-", "_")


def pool_options(args: argparse.Namespace, pools: list[str]) -> dict | None:
    """The pooling options the user typed, as parameters; a flag that belongs to none of
    ``pools`` is one clear error naming the flag."""
    from ..errors import ConfigError

    given = {}
    for flag, opt in pooling_flags().items():
        value = getattr(args, flag_dest(flag), None)
        if value is None:
            continue
        if not set(pools) & set(opt["pools"]):
            raise ConfigError(f"{flag} applies to --pool {' or '.join(opt['pools'])}, not "
                              f"--pool {' '.join(pools)}")
        given[opt["param"]] = value
    return given or None


def model_kwargs(args: argparse.Namespace) -> dict:
    """The model keyword arguments of ``extract()`` (and ``bench()``) from parsed flags: every
    model option, the plural ones (--model, --pool) by their grid name where they take lists."""
    pools = args.pool if isinstance(args.pool, list) else [args.pool]
    kwargs = {}
    for f in model_options():
        if f.metadata["flag"] is None:
            kwargs[f.name] = pool_options(args, pools)
        else:
            several = isinstance(getattr(args, f.name), list) and f.metadata["plural"]
            kwargs[f.metadata["plural"] if several else f.name] = getattr(args, f.name)
    return kwargs
