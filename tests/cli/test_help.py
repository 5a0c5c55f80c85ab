"""Help that answers: every command has a description, every option a help line that states
its default; mistyped and old texture-script flags get the command's usage and a suggestion."""

from __future__ import annotations

import argparse

import pytest

from imgfeat.cli import build_parser, main


def commands(parser: argparse.ArgumentParser | None = None,
             prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every command and sub-command (``ae train``, ``flim annotate``) by name."""
    parser = parser or build_parser()
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                out[prefix + name] = command
                out.update(commands(command, f"{prefix}{name} "))
    return out


def test_every_command_has_a_description_and_every_option_its_default():
    for name, command in commands().items():
        assert command.description, name
        text = command.format_help()
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            where = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help, where
            if action.option_strings and action.default not in (None, False):
                # the formatter appends it, or the help says it in its own words
                assert "default" in command._get_formatter()._get_help_string(action), where
        assert "%(" not in text and "(default: None)" not in text, name


def test_bench_says_where_its_defaults_differ_from_extract():
    text = commands()["bench"].format_help()
    for words in ("--layers final", "--resize squash", "224 px", "instead of pooled"):
        assert words in " ".join(text.split()), words
    assert "Orange" in commands()["extract"].format_help()


def test_imgfeat_alone_prints_the_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: imgfeat") and "classify" in out and "extract" in out


@pytest.mark.parametrize("argv,suggestion", [
    (["bench", "--data_path", "x"], "did you mean --data-path?"),
    (["bench", "--output_path", "x"], "did you mean --output?"),
    (["bench", "--input_dimm", "224"], "did you mean --img-size?"),
    (["extract", "x", "--batch_size", "8"], "did you mean --batch-size?"),
    (["extract", "x", "--pooling", "gem"], "did you mean --pool?"),
    (["classify", "x", "--classifiers", "knn"], "did you mean --classifier?"),
])
def test_old_and_mistyped_flags_get_the_commands_usage_and_a_suggestion(capsys, argv,
                                                                         suggestion):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: imgfeat {argv[0]} ")  # that command's usage, not the top one
    assert err.strip().splitlines()[-1].endswith(suggestion)


def test_a_bad_value_is_one_line(capsys):
    assert main(["classify", "x", "--folds", "three"]) == 2
    err = capsys.readouterr().err
    assert err == "imgfeat: error: argument --folds: invalid int value: 'three'\n"
