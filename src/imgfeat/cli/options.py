"""The model options (:class:`~imgfeat.config.ModelConfig`) on the command line, written once
for every command that builds a model (``extract``, ``bench``). Choices come from where they are
defined (config, precision, the pooling registry); pooling flags come from the poolings."""

from __future__ import annotations

import argparse

from ..config import OUTPUT_STRIDES, RESIZE_MODES
from ..precision import PRECISIONS

MODEL_HELP = ("a timm name with optional weights tag (resnet50.a1_in1k), hf-hub:ORG/NAME, "
              "ae:RUN (a trained autoencoder) or flim:MODEL (a FLIM network)")
LAYERS_HELP = ("pooled, final, all, or stage indices like 2,-1 (default: pooled for --pool avg, "
               "final for other poolings, the pooling's own stages for radam/spectral)")


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


def add_model_arguments(g, *, several: bool = False, img_size: int | None = None,
                        resize: str | None = None) -> None:
    """Add every model option to the argument group ``g``. ``several``: --model and --pool take
    lists (bench's grid)."""
    from ..pooling import list_poolings

    many = {"nargs": "+"} if several else {}
    g.add_argument("--model", default=["tf_efficientnet_lite0"] if several
                   else "tf_efficientnet_lite0", help=MODEL_HELP, **many)
    g.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=True,
                   help="use pretrained weights (timm models)")
    g.add_argument("--weights", metavar="FILE",
                   help="local weights (.pth/.safetensors), or 'packaged' for the offline extra")
    g.add_argument("--img-size", type=int, default=img_size,
                   help="input size (default: the model's own)" if img_size is None
                   else "input size")
    g.add_argument("--resize", choices=RESIZE_MODES, default=resize,
                   help="crop: the model's eval transform; squash: resize with no crop "
                        "(default: the model's own: crop for timm, the run's for ae:, squash "
                        "for flim:)")
    g.add_argument("--output-stride", type=int, choices=OUTPUT_STRIDES,
                   help="dilate the last stages (default: the model's own; radam/spectral try 8, "
                        "then 32)")
    g.add_argument("--layers", default=None, help=LAYERS_HELP)
    g.add_argument("--pool", default=["avg"] if several else "avg", choices=list_poolings(),
                   metavar="POOL", help=f"pooling: {', '.join(list_poolings())}", **many)
    for flag, opt in pooling_flags().items():
        kwargs = {"choices": opt["choices"]} if opt["choices"] else {}
        values = set(opt["defaults"].values())
        defaults = (str(values.pop()) if len(values) == 1 else
                    ", ".join(f"{v} for {p}" for p, v in opt["defaults"].items()))
        g.add_argument(flag, dest=flag_dest(flag), type=opt["type"], default=None,
                       metavar=opt["param"].upper(), help=f"{opt['help']} (default: {defaults})",
                       **kwargs)
    g.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto: bf16 where the device runs it natively (CUDA, CPUs with "
                        "AVX512-BF16/AMX), else fp32")
    g.add_argument("--no-fold-bn", dest="fold_bn", action="store_false",
                   help="keep BatchNorm layers as they are (default: folded into the "
                        "convolutions, ~1.2x faster, same vectors to ~1e-6)")


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
    """The model keyword arguments of ``extract()`` (and ``bench()``) from parsed flags."""
    pools = args.pool if isinstance(args.pool, list) else [args.pool]
    return {"pretrained": args.pretrained, "weights": args.weights, "img_size": args.img_size,
            "resize": args.resize, "output_stride": args.output_stride, "layers": args.layers,
            "pool_args": pool_options(args, pools), "precision": args.precision,
            "fold_bn": args.fold_bn}
