"""imgfeat's outputs opened by the tools its users read them with: Orange, pandas, pyarrow,
duckdb, polars, Hugging Face ``datasets`` (installed by the ``test`` extra), each in the form its
own documentation shows, on outputs that hold a failed image."""

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from imgfeat import extract, load_features
from tests.conftest import TINY, make_image

OLD_OUTPUTS = Path(__file__).parent / "data" / "old_outputs"


def _folder(root: Path, names: dict[str, int], broken: str | None = None) -> Path:
    """``names``: relative file name -> seed; plus one file that is not an image."""
    for k, (name, seed) in enumerate(names.items()):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        arr = np.asarray(make_image(seed, size=(40, 40))).astype(int)
        arr[..., k % 3] = np.clip(arr[..., k % 3] + 80, 0, 255)
        from PIL import Image

        Image.fromarray(arr.astype(np.uint8)).save(p)
    if broken:
        (root / broken).parent.mkdir(parents=True, exist_ok=True)
        (root / broken).write_bytes(b"not an image")
    return root


@pytest.fixture(scope="module")
def text_labels(tmp_path_factory) -> Path:
    """3 classes in sub-folders, 4 images each, and one broken file."""
    root = tmp_path_factory.mktemp("text") / "imgs"
    names = {f"{c}/img{k}.png": 10 * i + k for i, c in enumerate(("cats", "dogs", "owls"))
             for k in range(4)}
    return _folder(root, names, broken="dogs/broken.png")


def _extract(source, out: Path, fmt: str, **kw) -> Path:
    res = extract(source, out, **TINY, format=fmt, shard_size=5, progress=False, **kw)
    assert res.failed == (1 if any("broken" in p.name for p in Path(source).rglob("*"))
                          else 0)
    return out


@pytest.fixture(scope="module")
def parquet_out(text_labels, tmp_path_factory) -> Path:
    return _extract(text_labels, tmp_path_factory.mktemp("pq") / "feats", "parquet")


@pytest.fixture(scope="module")
def csv_out(text_labels, tmp_path_factory) -> Path:
    return _extract(text_labels, tmp_path_factory.mktemp("csv") / "feats", "csv")


# --- Orange ---------------------------------------------------------------------------------------

def _orange_table(path: Path):
    Orange = pytest.importorskip("Orange")
    return Orange.data.Table(str(path))


def _assert_orange_target(table, classes: list[str], X: np.ndarray, ids: list[str]):
    from Orange.data import ContinuousVariable, DiscreteVariable

    dom = table.domain
    assert isinstance(dom.class_var, DiscreteVariable) and dom.class_var.name == "Class"
    assert sorted(dom.class_var.values) == sorted(classes)
    assert len(dom.attributes) == X.shape[1]
    assert all(isinstance(a, ContinuousVariable) for a in dom.attributes)
    assert [a.name for a in dom.attributes] == [f"n{i}" for i in range(X.shape[1])]
    np.testing.assert_allclose(table.X, X, rtol=1e-6, atol=1e-7)
    meta_names = [m.name for m in dom.metas]
    assert "id" in meta_names and "path" in meta_names
    assert table.get_column("id").tolist() == ids
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in table.get_column("path"))


def test_orange_takes_text_labels_as_the_target_and_cross_validates(csv_out):
    from Orange.classification import LogisticRegressionLearner
    from Orange.evaluation import CA, CrossValidation

    X, y, ids, _ = load_features(csv_out)
    table = _orange_table(csv_out / "features.csv")
    _assert_orange_target(table, ["cats", "dogs", "owls"], X, ids)
    assert [table.domain.class_var.values[int(v)] for v in table.Y] == list(y)
    results = CrossValidation(k=3, random_state=0)(table, [LogisticRegressionLearner()])
    ca = CA(results)[0]
    assert 0 <= ca <= 1 and len(results.predicted[0]) == len(X)  # every row was predicted


def test_orange_keeps_numeric_labels_a_discrete_class(tmp_path):
    names = {f"{c}_img{k}.png": 10 * c + k for c in (1, 2, 3) for k in range(3)}
    src = _folder(tmp_path / "imgs", names, broken="2_broken.png")
    out = _extract(src, tmp_path / "feats", "csv", label_pattern=r"^(\d+)_")
    X, y, ids, _ = load_features(out)
    assert y.dtype.kind == "i"  # load_features gives integer labels back as integers
    _assert_orange_target(_orange_table(out / "features.csv"), ["1", "2", "3"], X, ids)


def test_orange_takes_many_classes_of_few_images(tmp_path):
    names = {f"class{c:02d}/img{k}.png": 10 * c + k for c in range(15) for k in range(2)}
    out = _extract(_folder(tmp_path / "imgs", names), tmp_path / "feats", "csv")
    X, _, ids, _ = load_features(out)
    _assert_orange_target(_orange_table(out / "features.csv"),
                          [f"class{c:02d}" for c in range(15)], X, ids)


def test_every_feature_column_is_declared_continuous(csv_out, tmp_path):
    """The header, not the values, makes a column continuous: a column of zeros stays one."""
    from Orange.data import ContinuousVariable

    rows = list(csv.reader((csv_out / "features.csv").open(newline="")))
    header = rows[0]
    assert header[0] == "cD#Class"
    feature_cols = [h for h in header if h.split("#")[-1].startswith("n")]
    assert feature_cols and all(h.startswith("C#") for h in feature_cols)
    for row in rows[1:]:
        row[header.index("C#n1")] = "0"
    zeroed = tmp_path / "zeroed.csv"
    with zeroed.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    table = _orange_table(zeroed)
    assert isinstance(table.domain["n1"], ContinuousVariable)
    assert not table.get_column("n1").any()


def test_load_features_reads_the_flagged_csv_back(csv_out, parquet_out):
    X, y, ids, meta = load_features(csv_out)
    Xp, yp, idsp, metap = load_features(parquet_out)
    assert ids == idsp and list(y) == list(yp)
    np.testing.assert_allclose(X, Xp, rtol=1e-6, atol=1e-7)
    X1, y1, ids1, meta1 = load_features(csv_out / "features.csv")  # the file alone
    np.testing.assert_allclose(X1, X, rtol=1e-6, atol=1e-7)
    assert list(y1) == list(y) and ids1 == ids and meta1["paths"] == meta["paths"]


def test_plain_csv_for_tools_that_do_not_know_orange_flags(text_labels, tmp_path, csv_out):
    pd = pytest.importorskip("pandas")
    out = _extract(text_labels, tmp_path / "plain", "csv-plain")
    df = pd.read_csv(out / "features.csv")
    assert list(df.columns[:3]) == ["Class", "n0", "n1"]
    X, y, ids, _ = load_features(csv_out)
    np.testing.assert_allclose(df.filter(regex=r"^n\d+$").to_numpy(np.float32), X,
                               rtol=1e-6, atol=1e-7)
    assert df["Class"].tolist() == list(y) and df["id"].tolist() == ids
    Xp, yp, idsp, _ = load_features(out)
    np.testing.assert_allclose(Xp, X, rtol=1e-6, atol=1e-7)
    assert idsp == ids and list(yp) == list(y)


# --- the Parquet folder in every reader -----------------------------------------------------------

@pytest.fixture(scope="module")
def expected(parquet_out):
    X, y, ids, meta = load_features(parquet_out)
    assert len(X) == 12 and meta["failures"][0]["id"] == "dogs/broken.png"
    return X, y, ids


def _check(vectors: np.ndarray, ids, expected):
    X, _, ids0 = expected
    assert vectors.ndim == 2 and vectors.shape == X.shape  # no filtering, no object column
    order = [list(ids).index(i) for i in ids0]  # readers need not keep the parts' order
    np.testing.assert_array_equal(vectors[order], X)


def test_the_data_folder_holds_only_parquet_parts_without_failed_rows(parquet_out):
    data = parquet_out / "data"
    assert sorted(p.name for p in data.iterdir()) == ["part-00000.parquet", "part-00001.parquet",
                                                      "part-00002.parquet"]
    failures = list(csv.DictReader((parquet_out / "_failures.csv").open(newline="")))
    assert [f["id"] for f in failures] == ["dogs/broken.png"]
    assert os.path.isabs(failures[0]["path"])


def test_pandas(parquet_out, expected):
    pd = pytest.importorskip("pandas")
    for where in (parquet_out / "data", parquet_out):
        df = pd.read_parquet(where)
        _check(np.stack(df["vector"].to_numpy()), df["id"].tolist(), expected)


def test_pyarrow(parquet_out, expected):
    import pyarrow.parquet as pq

    for where in (parquet_out / "data", parquet_out):
        table = pq.read_table(where)
        vtype = table.schema.field("vector").type
        assert vtype.list_size == expected[0].shape[1] and str(vtype.value_type) == "float"
        vec = table.column("vector").combine_chunks()
        _check(vec.values.to_numpy().reshape(len(vec), -1), table.column("id").to_pylist(),
               expected)


def test_polars(parquet_out, expected):
    pl = pytest.importorskip("polars")
    df = pl.read_parquet(parquet_out / "data")
    assert df.schema["vector"] == pl.Array(pl.Float32, expected[0].shape[1])
    _check(df["vector"].to_numpy(), df["id"].to_list(), expected)
    lazy = pl.scan_parquet(parquet_out / "data").select("id", "vector").collect()
    _check(lazy["vector"].to_numpy(), lazy["id"].to_list(), expected)


def test_duckdb(parquet_out, expected):
    duckdb = pytest.importorskip("duckdb")
    import pyarrow.dataset as pds

    d = expected[0].shape[1]
    con = duckdb.connect()
    glob = (parquet_out / "data" / "*.parquet").as_posix()
    rows = con.sql(f"select id, vector from read_parquet('{glob}')").fetchall()
    _check(np.array([r[1] for r in rows], dtype=np.float32), [r[0] for r in rows], expected)
    # the fixed size comes with the Arrow schema: DuckDB scanning the folder as an Arrow dataset
    # has FLOAT[D] and its array functions with no cast (its own Parquet reader keeps no sizes)
    con.register("features", pds.dataset(parquet_out / "data", format="parquet"))
    assert con.sql("select distinct typeof(vector) from features").fetchall() == [(f"FLOAT[{d}]",)]
    sims = con.sql("select array_cosine_similarity(vector, vector) from features").fetchall()
    np.testing.assert_allclose([s[0] for s in sims], 1.0, rtol=1e-5)


def test_hugging_face_datasets(parquet_out, expected, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    data = str(parquet_out / "data")
    for ds in (datasets.load_dataset("parquet", data_dir=data, split="train",
                                     cache_dir=str(tmp_path / "a")),
               datasets.load_dataset(data, split="train", cache_dir=str(tmp_path / "b"))):
        feat = ds.features["vector"]
        assert getattr(feat, "length", None) == expected[0].shape[1]  # a fixed-size list
        np_ds = ds.with_format("numpy")
        _check(np_ds[:]["vector"], list(ds["id"]), expected)


# --- paths and ids ------------------------------------------------------------------------------

def test_paths_are_absolute_and_ids_relative(parquet_out, csv_out, text_labels):
    import pyarrow.parquet as pq

    table = pq.read_table(parquet_out / "data")
    for rid, path in zip(table.column("id").to_pylist(), table.column("path").to_pylist(),
                         strict=True):
        assert not os.path.isabs(rid) and path == str(text_labels.resolve() / rid)
    doc = json.loads((csv_out / "features_ids.json").read_text())
    assert all(os.path.isabs(p) and p.endswith(i) for i, p in zip(doc["ids"], doc["paths"],
                                                                    strict=True))


def test_paths_from_a_relative_source_are_absolute(text_labels, tmp_path, monkeypatch):
    monkeypatch.chdir(text_labels.parent)
    out = _extract(Path(text_labels.name), tmp_path / "feats", "parquet")
    os.chdir(tmp_path)  # a client somewhere else still opens the images
    _, _, ids, meta = load_features(out)
    assert ids[0] == "cats/img0.png" and all(os.path.isfile(p) for p in meta["paths"])


# --- outputs of earlier versions ----------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["parquet", "csv", "npy"])
def test_outputs_of_earlier_versions_still_load(fmt, tmp_path):
    """Written by imgfeat before #22: Parquet parts at the top with the failed row inside, a
    ``Class,n0,…`` CSV, paths relative to where it ran."""
    out = shutil.copytree(OLD_OUTPUTS / fmt, tmp_path / fmt)
    ref = np.load(OLD_OUTPUTS / "expected.npz")
    X, y, ids, meta = load_features(out)
    np.testing.assert_allclose(X, ref["X"], rtol=1e-6, atol=1e-7)
    assert ids == ref["ids"].tolist() and list(y) == ref["labels"].tolist()
    assert [f["id"] for f in meta["failures"]] == ["dogs/broken.png"]
    assert meta["paths"][0] == "imgs/cats/0.png"


def test_an_earlier_parquet_output_is_not_resumed_but_can_be_replaced(text_labels, tmp_path):
    from imgfeat import StoreError

    out = shutil.copytree(OLD_OUTPUTS / "parquet", tmp_path / "old")
    with pytest.raises(StoreError, match="an earlier imgfeat wrote it.*overwrite"):
        _extract(text_labels, out, "parquet", resume=True)
    assert (out / "part-00000.parquet").is_file()  # refused: nothing touched
    _extract(text_labels, out, "parquet", overwrite=True)
    assert not list(out.glob("*.parquet")) and len(load_features(out)[2]) == 12
