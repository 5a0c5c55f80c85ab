"""Start-up: ``import imgfeat`` and the commands that need no model never import torch, and the
command line answers at once (help, version, no command, usage errors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import fresh_python as python

HEAVY = ("torch", "timm", "torchvision", "sklearn", "pyarrow", "matplotlib")


def test_import_imgfeat_imports_no_heavy_module():
    r = python("import sys, imgfeat\n"
               f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
               "print(imgfeat.__version__, callable(imgfeat.classify), callable(imgfeat.sample))")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "[]"
    assert lines[1].endswith("True True")


def test_public_names_resolve_lazily():
    import imgfeat

    assert "extract" in dir(imgfeat) and "load_features" in dir(imgfeat)
    with pytest.raises(AttributeError):
        imgfeat.no_such_name  # noqa: B018


@pytest.fixture(scope="module")
def ready_table(tmp_path_factory) -> Path:
    """A finished Parquet output of 3 classes × 6 random images (tiny random model)."""
    from imgfeat import extract
    from tests.conftest import TINY, random_class_folder

    root = tmp_path_factory.mktemp("ready")
    folder = random_class_folder(root / "imgs", 18, 3, 32, seed=1)
    extract(folder, root / "feats", progress=False, **TINY)
    return root / "feats"


def test_classify_and_plot_on_a_ready_table_never_import_torch(ready_table, tmp_path):
    r = python("import sys\nfrom imgfeat.cli import main\n"
               "code = main(sys.argv[1:])\n"
               "assert code == 0, code\n"
               "print('torch' in sys.modules, 'timm' in sys.modules)",
               "classify", str(ready_table), "--folds", "3", "--repeats", "2",
               "--classifier", "knn", "lda")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "False False"
    assert "18 samples" in r.stdout
    r = python("import sys\nfrom imgfeat.cli import main\n"
               "assert main(sys.argv[1:]) == 0\nprint('torch' in sys.modules)",
               "plot", str(ready_table), "-o", str(tmp_path / "map.html"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "False"


@pytest.mark.parametrize("argv,code,stream,text", [
    ([], 0, "out", "usage: imgfeat"),
    (["--help"], 0, "out", "COMMAND"),
    (["--version"], 0, "out", "imgfeat "),
    (["classify", "--help"], 0, "out", "(default: knn lda svm)"),
    (["extrct"], 2, "err", "did you mean extract?"),
    (["classify"], 2, "err", "usage: imgfeat classify"),
])
def test_cli_answers_without_importing_torch(argv, code, stream, text):
    r = python("import sys\nfrom imgfeat.cli import main\n"
               "code = main(sys.argv[1:])\n"
               "print('torch' in sys.modules, file=sys.stderr)\n"
               "sys.exit(code)", *argv)
    assert r.returncode == code, r.stderr
    assert text in (r.stdout if stream == "out" else r.stderr)
    assert r.stderr.splitlines()[-1] == "False"


#: what building the parser and ``imgfeat --help`` must not import (benchmarks/startup.py times it)
NOT_FOR_HELP = ("numpy", "pyarrow", "torch", "sklearn")


def test_building_the_parser_and_help_import_no_numpy_pyarrow_torch_sklearn():
    r = python("import sys\nfrom imgfeat.cli import build_parser, main\n"
               "build_parser()\n"
               f"print(sorted(m for m in {NOT_FOR_HELP!r} if m in sys.modules))\n"
               "code = main(['--help'])\n"
               f"print(sorted(m for m in {NOT_FOR_HELP!r} if m in sys.modules), code)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "[]"
    assert r.stdout.splitlines()[-1] == "[] 0"


def test_choices_read_on_use_still_check_and_show(capsys):
    """bench's and classify's choices are imported when checked or shown, not when built."""
    from imgfeat.cli import main
    from imgfeat.evaluate import PROTOCOLS
    from imgfeat.sources.benchmarks import DATASETS

    assert main(["bench", "--dataset", "nope", "--data-path", "d", "--output", "o"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err and "'usptex'" in err
    assert main(["bench", "--help"]) == 0
    text = "".join(capsys.readouterr().out.split())  # argparse wraps at hyphens too
    assert "oneof" + ",".join(sorted(DATASETS)) in text
    assert "oneof" + ",".join(PROTOCOLS) in text
