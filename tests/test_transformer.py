import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from imgfeat import DecodeError, FeatureExtractor


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
