"""The ``imgfeat`` command line: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import sys
import warnings

from ..errors import ImgfeatError, ImgfeatWarning
from . import bench, classify, demo, extract, flim, models, sample

#: exit codes (documented in the README)
EXIT_OK, EXIT_ITEMS_FAILED, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 130
COMMANDS = (extract, classify, bench, models, sample, demo, flim)


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="imgfeat", description="Turn images into feature vectors, and measure them.")
    parser.add_argument("--version", action="version", version=f"imgfeat {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.add_parsers(sub)
    return parser


def _one_line_warnings(show):
    """``warnings.showwarning`` that prints imgfeat's own warnings as one line."""
    def showwarning(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, ImgfeatWarning):
            print(f"imgfeat: warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)
    return showwarning


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", ImgfeatWarning)
            warnings.showwarning = _one_line_warnings(warnings.showwarning)
            return int(args.func(args) or 0)
    except ImgfeatError as exc:
        print(f"imgfeat: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("imgfeat: interrupted; finished shards are kept (run again with --resume)",
              file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
