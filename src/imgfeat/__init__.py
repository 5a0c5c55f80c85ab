"""imgfeat: images to feature vectors for classic machine learning, and how good they are."""

__version__ = "0.1.0"
