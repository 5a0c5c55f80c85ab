import json

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score
from sklearn.neighbors import KNeighborsClassifier

from imgfeat import ConfigError, classify
from imgfeat.cli import main
from imgfeat.evaluate import fewshot, groups, kfold, official


def blobs(n_per=12, classes=4, dim=8, seed=0, spread=1.5):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(c * spread, 1.0, (n_per, dim)) for c in range(classes)])
    y = np.repeat([f"c{c}" for c in range(classes)], n_per)
    return X.astype(np.float32), y


def test_kfold_sizes_stratified_disjoint():
    _, y = blobs(n_per=20, classes=3)
    folds = kfold(y, folds=10, repeats=3, seed=5)
    assert len(folds) == 30
    for r in range(3):
        tested = np.concatenate([f.test for f in folds if f.repeat == r])
        assert sorted(tested) == list(range(len(y)))  # every sample tested once per repeat
    for f in folds:
        assert not set(f.train) & set(f.test) and len(f.train) + len(f.test) == len(y)
        assert all((y[f.test] == c).sum() == 2 for c in np.unique(y))  # stratified
    assert not np.array_equal(folds[0].test, folds[10].test)  # repeats reshuffle
    with pytest.raises(ConfigError, match="fewer than 10 folds"):
        kfold(y[:25], folds=10)


def test_official_groups_fewshot():
    ids = [f"i{k}" for k in range(6)]
    f = official(ids, ["train", "val", "test", "train", "test", None])
    assert list(f[0].train) == [0, 1, 3] and list(f[0].test) == [2, 4]
    proto = {"kind": "splits", "splits": [{"train": ["i0", "i1"], "test": ["i2"]},
                                          {"train": ["i2", "i3"], "test": ["i0", "i5"]}]}
    f = official(ids, None, proto)
    assert [list(x.test) for x in f] == [[2], [0, 5]] and [x.repeat for x in f] == [0, 1]
    g = groups(["a", "a", "b", "b", "c", "d"])
    assert len(g) == 4 and list(g[1].test) == [2, 3] and 2 not in g[1].train
    _, y = blobs(n_per=6, classes=3)
    for fold in fewshot(y, shots=2, repeats=4, seed=1):
        assert all((y[fold.train] == c).sum() == 2 for c in np.unique(y))
        assert not set(fold.train) & set(fold.test) and len(fold.test) == len(y) - 6
    with pytest.raises(ConfigError, match="no official split"):
        official(ids, [None] * 6)


def test_scores_equal_scikit_learn():
    X, y = blobs(spread=0.8)
    report = classify(X, y, classifiers=["knn"], folds=4, repeats=2, seed=3, n_jobs=1)
    res = report.results[0]
    for fold, row in zip(kfold(y, 4, 2, 3), res.folds, strict=True):
        pred = KNeighborsClassifier(1).fit(X[fold.train], y[fold.train]).predict(X[fold.test])
        assert row["accuracy"] == pytest.approx(accuracy_score(y[fold.test], pred))
        assert row["macro_f1"] == pytest.approx(f1_score(y[fold.test], pred, average="macro"))
        assert row["kappa"] == pytest.approx(cohen_kappa_score(y[fold.test], pred))
    s = res.summary()
    rep_means = [np.mean([r["accuracy"] for r in res.folds if r["repeat"] == k]) for k in (0, 1)]
    assert s["accuracy"] == pytest.approx(np.mean(rep_means))
    assert s["accuracy_std"] == pytest.approx(np.std(rep_means))
    assert res.confusion.sum() == 2 * len(y)


def test_any_estimator_and_parallel_equals_serial():
    X, y = blobs(spread=0.8)
    a = classify(X, y, classifiers=["lda", LogisticRegression(max_iter=500)], folds=3,
                 repeats=2, n_jobs=1)
    b = classify(X, y, classifiers=["lda", LogisticRegression(max_iter=500)], folds=3,
                 repeats=2, n_jobs=2)
    assert [r.name for r in a.results] == ["lda", "LogisticRegression"]
    assert [r.folds for r in a.results] == [r.folds for r in b.results]


def test_classify_cli_writes_results(tmp_path, image_folder, capsys):
    assert main(["extract", str(image_folder), "-o", str(tmp_path / "f"), "--model",
                 "test_efficientnet", "--no-pretrained", "--img-size", "64", "-q"]) == 0
    capsys.readouterr()
    assert main(["classify", str(tmp_path / "f"), "--classifier", "knn", "svm", "--folds", "5",
                 "--repeats", "2", "--jobs", "1", "-o", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "15 samples" in out and "knn" in out and "svm" in out
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert [r["classifier"] for r in summary["results"]] == ["knn", "svm"]
    assert (tmp_path / "r" / "folds.csv").read_text().count("\n") == 1 + 2 * 10
    assert Image.open(tmp_path / "r" / "confusion_knn.png").size[0] > 100


def test_official_protocol_from_split_column(tmp_path, image_folder):
    files = sorted(p for p in image_folder.rglob("*") if p.is_file())
    rows = [f"{p.relative_to(image_folder).parts[0]},{p},"
            f"{'test' if p.stem in ('img1', 'img2') else 'train'}" for p in files]
    (tmp_path / "l.csv").write_text("label,path,split\n" + "\n".join(rows) + "\n")
    import imgfeat

    imgfeat.extract(tmp_path / "l.csv", tmp_path / "f", model="test_efficientnet",
                    pretrained=False, img_size=64, progress=False)
    report = classify(tmp_path / "f", classifiers=["knn"], protocol="official", n_jobs=1)
    fold = report.results[0].folds[0]
    assert (fold["n_train"], fold["n_test"]) == (9, 6)


@pytest.mark.parametrize("classes, n, p", [(2, 15, 20), (6, 7, 40), (30, 11, 300), (20, 2, 200)])
def test_fast_lda_is_scikit_learns(classes, n, p):
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    from imgfeat.evaluate.lda import ShrinkageLDA

    rng = np.random.default_rng(classes)
    X = rng.normal(size=(classes * n, p)) + np.repeat(rng.normal(size=(classes, p)), n, 0)
    X[:, 0] = 3.0  # a constant feature
    y = np.repeat(np.arange(classes), n)
    ref = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(X, y)
    fast = ShrinkageLDA().fit(X, y)
    if n == 2:  # no per-class shrinkage: scikit-learn's covariance is singular; ours is not
        assert fast.shrinkage_mode_ == "pooled"
        assert np.linalg.matrix_rank(ref.covariance_) < p == np.linalg.matrix_rank(fast.covariance_)
        return
    assert fast.shrinkage_mode_ == "per-class"
    np.testing.assert_allclose(fast.covariance_, ref.covariance_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fast.coef_, ref.coef_, rtol=1e-7, atol=1e-9 * np.abs(ref.coef_).max())
    np.testing.assert_allclose(fast.intercept_, ref.intercept_, rtol=1e-7, atol=1e-9)
    assert (fast.predict(X) == ref.predict(X)).all()


def test_lda_two_shot_uses_pooled_shrinkage_and_classifies():
    """2 images per class, more features than within-class degrees of freedom: scikit-learn's
    shrinkage LDA is at chance there; ours shrinks the pooled residuals and classifies."""
    from sklearn.covariance import ledoit_wolf
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    from imgfeat.evaluate.lda import ShrinkageLDA

    rng = np.random.default_rng(0)
    classes, p = 40, 120
    centres = rng.normal(size=(classes, p)) * 0.5
    mix = rng.normal(size=(p, p)) / np.sqrt(p)  # correlated features

    def draw(n):
        return (np.repeat(centres, n, 0) + rng.normal(size=(classes * n, p)) @ mix,
                np.repeat(np.arange(classes), n))

    (Xtr, ytr), (Xte, yte) = draw(2), draw(20)
    assert ShrinkageLDA().fit(Xtr.astype(np.float32), ytr).shrinkage_mode_ == "pooled"
    fast = ShrinkageLDA().fit(Xtr, ytr)
    ref = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(Xtr, ytr)
    acc_fast, acc_ref = fast.score(Xte, yte), ref.score(Xte, yte)
    assert acc_fast > 0.5 and acc_fast > acc_ref + 0.3, (acc_fast, acc_ref)  # 0.61 vs 0.15
    # the pooled estimate is scikit-learn's Ledoit-Wolf of the standardised residuals
    R = Xtr - fast.means_[ytr]
    sc = R.std(0)
    cov = ledoit_wolf(R / sc, assume_centered=True)[0] * np.outer(sc, sc)
    np.testing.assert_allclose(fast.covariance_, cov, rtol=1e-8, atol=1e-12)
