import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer, make_column_transformer
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.utils.estimator_checks import parametrize_with_checks

from imgfeat import DecodeError, FeatureExtractor


def tiny(**kw) -> FeatureExtractor:
    """A tiny timm model with random weights: mechanics, not feature quality."""
    return FeatureExtractor("test_efficientnet", pretrained=False, img_size=32, **kw)


def test_in_a_pipeline_with_arrays_and_paths(image_folder):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    X[6:, ..., 0] = 255  # two visibly different classes
    y = np.array([0] * 6 + [1] * 6)
    fe = FeatureExtractor("test_efficientnet", pretrained=False, img_size=64)
    pipe = make_pipeline(fe, LogisticRegression(max_iter=500)).fit(X, y)
    assert pipe.score(X, y) == 1.0
    paths = sorted(str(p) for p in image_folder.rglob("*.png"))
    out = fe.transform(paths)
    assert out.shape == (len(paths), fe.n_features_out_) and out.dtype == np.float32
    with pytest.raises(DecodeError, match="missing.png"):
        fe.transform(paths + [str(image_folder / "missing.png")])


# --- every form of a column of paths ------------------------------------------------------------

@pytest.fixture(scope="module")
def paths_and_features(tmp_path_factory):
    from tests.conftest import make_image

    root = tmp_path_factory.mktemp("imgs")
    paths = []
    for k in range(6):
        p = root / f"img{k}.png"
        make_image(k).save(p)
        paths.append(str(p))
    fe = tiny().fit(paths)
    return paths, fe.transform(paths)


FORMS = {
    "list": list,
    "tuple": tuple,
    "1-D array": np.array,
    "object array": lambda p: np.array(p, dtype=object),
    "Series": lambda p: pd.Series(p, name="path"),
    "one-column DataFrame": lambda p: pd.DataFrame({"path": p}),
    "N×1 array": lambda p: np.array(p)[:, None],
}


@pytest.mark.parametrize("form", FORMS)
def test_paths_in_every_form(paths_and_features, form):
    paths, expected = paths_and_features
    fe = tiny()
    out = fe.fit_transform(FORMS[form](paths))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert out.dtype == np.float32
    if form in ("one-column DataFrame", "N×1 array"):
        assert fe.n_features_in_ == 1  # a table of one column, as scikit-learn counts it
    else:
        assert not hasattr(fe, "n_features_in_")  # a 1-D list of paths has no columns
    assert hasattr(fe, "feature_names_in_") == (form == "one-column DataFrame")
    if form == "one-column DataFrame":
        assert fe.feature_names_in_.tolist() == ["path"]


def test_polars_column_of_paths(paths_and_features):
    pl = pytest.importorskip("polars")
    paths, expected = paths_and_features
    np.testing.assert_allclose(tiny().fit_transform(pl.DataFrame({"path": paths})), expected,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tiny().fit_transform(pl.Series("path", paths)), expected,
                               rtol=1e-5, atol=1e-6)


def test_in_a_column_transformer(paths_and_features):
    paths, expected = paths_and_features
    df = pd.DataFrame({"path": paths, "colour": list("rgbrgb")})
    y = np.array([0, 1, 0, 1, 0, 1])
    for columns in ("path", ["path"]):  # a Series, then a one-column DataFrame
        ct = ColumnTransformer([("img", tiny(), columns),
                                ("colour", OneHotEncoder(), ["colour"])])
        out = ct.fit_transform(df, y)
        d = expected.shape[1]
        assert out.shape == (6, d + 3)
        np.testing.assert_allclose(out[:, :d], expected, rtol=1e-5, atol=1e-6)
        names = ct.get_feature_names_out()
        assert names[0] == "img__n0" and names[d - 1] == f"img__n{d - 1}"
    pipe = make_pipeline(make_column_transformer((tiny(), "path"), (OneHotEncoder(), ["colour"])),
                         LogisticRegression(max_iter=200)).fit(df, y)
    assert pipe.predict(df).shape == (6,)
    pandas_out = ColumnTransformer([("img", tiny(), ["path"])]).set_output(
        transform="pandas").fit_transform(df)
    assert list(pandas_out.columns[:2]) == ["img__n0", "img__n1"]


def test_not_fitted_and_bad_input(paths_and_features):
    paths, _ = paths_and_features
    fe = tiny()
    with pytest.raises(NotFittedError):
        fe.get_feature_names_out()
    with pytest.raises(ValueError, match="not a 6×2 table of numbers"):
        fe.fit(np.zeros((6, 2)))  # fit checks its input before loading any model
    assert not hasattr(fe, "extractor_")
    with pytest.raises(ValueError, match="one column of image paths"):
        fe.fit(pd.DataFrame({"a": paths, "b": paths}))
    with pytest.raises(ValueError, match="row 1 is not an image path"):
        fe.fit(pd.Series([paths[0], None]))
    with pytest.raises(ValueError, match="no images"):
        fe.fit(np.zeros((0, 8, 8)))
    with pytest.raises(ValueError, match="NaN"):
        fe.fit(np.full((2, 8, 8), np.nan))
    with pytest.raises(TypeError, match="sparse"):
        from scipy.sparse import csr_matrix

        fe.fit(csr_matrix(np.eye(3)))
    fe.fit(pd.DataFrame({"path": paths}))
    with pytest.raises(ValueError, match="feature"):  # fitted on one column, given two
        fe.transform(pd.DataFrame({"path": paths, "other": paths}).to_numpy())
    fe.fit(paths)  # refitted on a plain list: no column record left from the table
    assert not hasattr(fe, "n_features_in_") and not hasattr(fe, "feature_names_in_")


# --- the scikit-learn contract, on images (the checks below cannot feed images) ---------------

def test_estimator_contract_on_images(paths_and_features):
    paths, expected = paths_and_features
    images = np.random.default_rng(1).integers(0, 256, (5, 24, 24, 3), dtype=np.uint8)
    fe = tiny()
    assert fe.fit(images) is fe  # fit returns self
    state = dict(fe.__dict__)
    first = fe.transform(images)
    assert fe.__dict__ == state  # transform changes nothing
    np.testing.assert_array_equal(fe.fit(images).transform(images), first)  # idempotent fit
    order = np.array([3, 0, 4, 1, 2])
    np.testing.assert_allclose(fe.transform(images[order]), first[order], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fe.transform(images[:2]), first[:2], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fe)).transform(images), first)
    assert clone(fe).get_params() == fe.get_params() and not hasattr(clone(fe), "extractor_")
    grey = images[..., 0]  # N×H×W
    assert tiny().fit_transform(grey).shape == first.shape
    assert tiny().transform(images.astype(np.float32) / 255).dtype == np.float32  # unfitted
    np.testing.assert_allclose(tiny().transform(paths), expected, rtol=1e-5, atol=1e-6)


# scikit-learn's generic checks fit on numeric N×D tables (iris-like blobs, random floats). An
# image transformer has no meaning for such a table: FeatureExtractor refuses it with a
# ValueError naming what it takes. Each check that needs one to be accepted is listed with that
# reason; test_estimator_contract_on_images checks the same properties on images.
_NUMERIC = "fits on a numeric N×D table, which is not images or paths (refused with ValueError)"
EXPECTED_FAILED = {
    "check_fit_score_takes_y": _NUMERIC,
    "check_estimators_overwrite_params": _NUMERIC,
    "check_dont_overwrite_parameters": _NUMERIC,
    "check_estimators_fit_returns_self": _NUMERIC,
    "check_readonly_memmap_input": _NUMERIC,
    "check_n_features_in_after_fitting": _NUMERIC + "; n_features_in_ is checked on a "
                                         "one-column table of paths here instead",
    "check_positive_only_tag_during_fit": _NUMERIC + " (negative values or not)",
    "check_estimators_dtypes": _NUMERIC + " in float32, int64 and int32",
    "check_dtype_object": "fits on an N×10 table of numbers stored as objects; a table of paths "
                          "must have one column",
    "check_pipeline_consistency": _NUMERIC,
    "check_estimators_nan_inf": "fits on a finite numeric table first (refused); NaN and inf in "
                                "image arrays raise ValueError (tested on images)",
    "check_estimators_pickle": _NUMERIC,
    "check_f_contiguous_array_estimator": _NUMERIC,
    "check_transformer_data_not_an_array": _NUMERIC + " wrapped in a non-array container",
    "check_transformer_general": _NUMERIC,
    "check_transformer_preserve_dtypes": _NUMERIC + " (float32 images give float32)",
    "check_transformers_unfitted_stateless": _NUMERIC,
    "check_methods_sample_order_invariance": _NUMERIC,
    "check_methods_subset_invariance": _NUMERIC,
    "check_fit2d_1sample": "expects a '1 sample' error for a 1×10 numeric table; it is refused "
                           "as a table of numbers, whatever its size",
    "check_fit2d_1feature": "expects an 'n_features = 1' error for a 10×1 numeric table; it is "
                            "refused as numbers, not as one column",
    "check_dict_unchanged": _NUMERIC,
    "check_fit_idempotent": _NUMERIC,
    "check_fit_check_is_fitted": _NUMERIC,
    "check_n_features_in": _NUMERIC,
    "check_fit2d_predict1d": _NUMERIC,
}


@parametrize_with_checks([tiny()], expected_failed_checks=lambda est: EXPECTED_FAILED,
                         xfail_strict=True)
def test_sklearn_checks(estimator, check):
    check(estimator)


def test_an_exported_runtime_gives_torchs_features_and_pickles(paths_and_features, tmp_path,
                                                               monkeypatch):
    from imgfeat.runtimes import installed_runtimes

    exported = installed_runtimes()[1:]
    if not exported:
        pytest.skip("no exported runtime installed")
    paths, _ = paths_and_features
    ref = tiny(runtime="torch").fit(paths)
    fe = tiny(runtime=exported[-1]).fit(paths)
    assert ref.extractor_.runtime == "torch" and fe.extractor_.runtime == exported[-1]
    a, b = ref.transform(paths), fe.transform(paths)
    assert np.abs(b - a).max() <= 1e-4 * np.abs(a).max()
    monkeypatch.setenv("IMGFEAT_CACHE_DIR", str(tmp_path / "elsewhere"))  # as on another machine
    again = pickle.loads(pickle.dumps(fe))
    np.testing.assert_array_equal(again.transform(paths), b)
    assert clone(fe).get_params()["runtime"] == exported[-1]
