"""The ``imgfeat`` command line: a thin layer over the Python API.

Importing this package imports no model code: each command imports what it needs when it
runs, so ``imgfeat --help``, usage errors and the commands that need no model start at once.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import time
import warnings

from ..errors import ImgfeatError, ImgfeatWarning
from . import ae, bench, classify, demo, extract, flim, models, sample
from .options import model_flag_names

#: exit codes (documented in the README)
EXIT_OK, EXIT_ITEMS_FAILED, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 130
COMMANDS = (extract, classify, bench, models, sample, demo, ae, flim)

#: Python argument -> the flag that sets it, where the two names differ (messages name flags)
FLAG_NAMES = {"num_workers": "--workers", "data_labels": "--labels", "n_jobs": "--jobs",
              "n": "-n", "classifiers": "--classifier"} | model_flag_names()

#: flags of the original texture-benchmark script that are spelled differently here
OLD_FLAGS = {"--data_path": "--data-path", "--output_path": "--output",
             "--input_dimm": "--img-size", "--batch_size": "--batch-size", "--depth": "--layers",
             "--pooling": "--pool", "--M": "--m", "--multigpu": "--device",
             "--gpu": "--device", "--classifiers": "--classifier"}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default (unless it has none or states it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (default is None or default is False or default is argparse.SUPPRESS
                or "default" in text or not action.option_strings
                or isinstance(action, argparse._HelpAction | argparse._VersionAction)):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list | tuple) else default
        return f"{text} (default: {shown})".replace("%", "%%").replace("%%(", "%(")


class Parser(argparse.ArgumentParser):
    """argparse with imgfeat's error style: a bad value is one line; an unknown or missing
    option also shows the usage of the command it was given to."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        if not message.startswith("argument "):
            self.print_usage(sys.stderr)
        self.exit(EXIT_CONFIG, f"imgfeat: error: {message}\n")


def build_parser() -> Parser:
    from .._version import __version__

    parser = Parser(prog="imgfeat", description="Turn images into feature vectors, and measure "
                    "them. 'imgfeat COMMAND --help' tells more about each command.")
    parser.add_argument("--version", action="version", version=f"imgfeat {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=Parser)
    for module in COMMANDS:
        module.add_parsers(sub)
    for action in sub._choices_actions:  # a description for every command, from its help
        command = sub.choices[action.dest]
        if not command.description:
            command.description = action.help
    return parser


def _command_parser(parser: Parser, argv: list[str]) -> tuple[str | None, Parser]:
    """The command named in ``argv`` and its parser (the top-level one if none is named)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for token in argv:
        if token in sub.choices:
            return token, sub.choices[token]
        if not token.startswith("-"):
            break
    return None, parser


def check_options(parser: Parser, argv: list[str]) -> None:
    """Refuse an option the command does not know before anything runs, with that command's
    usage and the option it most likely means (old texture-script spellings included)."""
    name, command = _command_parser(parser, argv)
    if name is None:
        first = next((t for t in argv if not t.startswith("-")), None)
        if first is not None:
            sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            close = difflib.get_close_matches(first, list(sub.choices), n=1, cutoff=0.5)
            hint = f"did you mean {close[0]}?" if close else f"one of {', '.join(sub.choices)}"
            parser.error(f"unknown command {first!r}; {hint}")
        return
    start = argv.index(name) + 1
    while True:  # descend into sub-commands (imgfeat ae train, imgfeat flim annotate)
        nested = next((a for a in command._actions
                       if isinstance(a, argparse._SubParsersAction)), None)
        token = next((t for t in argv[start:] if not t.startswith("-")), None)
        if nested is None or token not in (nested.choices if nested else {}):
            break
        command, name = nested.choices[token], f"{name} {token}"
        start = argv.index(token, start) + 1
    known = [s for a in command._actions for s in a.option_strings]
    for token in argv[start:]:
        if token == "--":
            break
        if not token.startswith("-") or token == "-" or _is_number(token):
            continue
        flag = token.split("=", 1)[0]
        if flag in known or (flag.startswith("--") and
                             sum(k.startswith(flag) for k in known) == 1):
            continue
        guess = OLD_FLAGS.get(flag) or OLD_FLAGS.get(flag.lower())
        if guess not in known:
            close = difflib.get_close_matches(flag.replace("_", "-").lower(),
                                              [k for k in known if k.startswith("--")], n=1,
                                              cutoff=0.6)
            guess = close[0] if close else None
        hint = f"; did you mean {guess}?" if guess else f"; see 'imgfeat {name} --help'"
        command.error(f"unrecognized option {flag} for 'imgfeat {name}'{hint}")


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def _one_line_warnings(show):
    """``warnings.showwarning`` that prints imgfeat's own warnings as one line."""
    def showwarning(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, ImgfeatWarning):
            print(f"imgfeat: warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)
    return showwarning


def _process_age() -> float:
    """Seconds since this process started (Linux /proc), else 0."""
    try:
        with open("/proc/self/stat") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code (never raises for a user's mistake)."""
    from ..usage import command_line

    # when the user waits from: this process's start for the command itself, else this call
    started = time.perf_counter() - (_process_age() if argv is None else 0.0)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = None
    try:
        parser = build_parser()
        if not argv:
            parser.print_help()
            return EXIT_OK
        check_options(parser, argv)
        args = parser.parse_args(argv)
        args.started = started
        with warnings.catch_warnings(), command_line(FLAG_NAMES):
            warnings.simplefilter("always", ImgfeatWarning)
            warnings.showwarning = _one_line_warnings(warnings.showwarning)
            return int(args.func(args) or 0)
    except ImgfeatError as exc:
        print(f"imgfeat: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(getattr(args, "on_interrupt", None) or "imgfeat: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as exc:  # argparse: --help, --version, a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_CONFIG
    except BrokenPipeError:  # the reader went away (imgfeat models | head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
