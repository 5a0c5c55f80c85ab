"""Linear discriminant analysis with Ledoit-Wolf shrinkage, computed in O(n² p) per class.

scikit-learn's ``LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")`` builds several
p × p matrices for every class; with 191 classes and 1280 features that is most of a USPtex
evaluation's time. The same estimate follows from each class's n × n Gram matrix (n ≈ 11), and
the pooled covariance from one weighted product. The result is scikit-learn's, to rounding
(tests/test_evaluate.py checks the coefficients).

One deliberate difference: with 2 images per class every standardised class has Ledoit-Wolf
shrinkage 0, so scikit-learn's covariance is singular whenever there are fewer within-class
degrees of freedom than features, and its least-squares coefficients classify at chance (0.2 %
on USPtex 2-shot). Then, and only then, the pooled within-class residuals get one Ledoit-Wolf
shrinkage instead (``shrinkage_mode_ == "pooled"``), the textbook shrinkage LDA (97-99 % there).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis


def ledoit_wolf_shrinkage_gram(Z: np.ndarray) -> tuple[float, float]:
    """scikit-learn's Ledoit-Wolf shrinkage of centred data ``Z`` (n × p), via Z Zᵀ, and the
    mean variance ``trace(Zᵀ Z / n) / p`` that the shrinkage pulls the diagonal towards."""
    n, p = Z.shape
    sq = np.einsum("ij,ij->i", Z, Z)  # squared row norms
    emp_trace = sq.sum() / n
    mu = emp_trace / p
    beta_ = float(np.sum(sq**2))  # Σ (X2ᵀ X2) = Σ_n ||z_n||⁴
    gram = Z @ Z.T
    delta_ = float(np.sum(gram**2)) / n**2  # ||Zᵀ Z||_F² = ||Z Zᵀ||_F²
    beta = (beta_ / n - delta_) / (p * n)
    delta = (delta_ - 2.0 * mu * emp_trace + p * mu**2) / p
    beta = min(beta, delta)
    return (0.0 if beta == 0 else beta / delta), mu


def pooled_ledoit_wolf(X: np.ndarray, y: np.ndarray, classes: np.ndarray,
                       means: np.ndarray) -> np.ndarray:
    """Ledoit-Wolf estimate of the covariance of every class's residuals pooled together
    (standardised by the pooled scale, as scikit-learn standardises each class)."""
    R = X - means[np.searchsorted(classes, y)]
    scale = R.std(0)
    scale[scale == 0] = 1.0
    Z = R / scale
    n, p = Z.shape
    delta, mu = ledoit_wolf_shrinkage_gram(Z)
    cov = (1.0 - delta) * (Z.T @ Z) / n
    cov[np.diag_indices(p)] += delta * mu
    return cov * scale[:, None] * scale[None, :]


class ShrinkageLDA(LinearDiscriminantAnalysis):
    """``LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")``, fast for many classes."""

    def __init__(self, *, priors=None, tol=1e-4):
        super().__init__(solver="lsqr", shrinkage="auto", priors=priors, tol=tol)

    def _solve_lstsq(self, X, y, shrinkage, covariance_estimator):
        from scipy import linalg

        X = np.asarray(X, dtype=np.float64)  # float32 rounding would hide a singular estimate
        classes = np.unique(y)
        p = X.shape[1]
        means, rows, diag = [], [], np.zeros(p)
        for k, c in enumerate(classes):
            Xg = X[y == c]
            n = len(Xg)
            mean = Xg.mean(0)
            Xc = Xg - mean
            scale = Xc.std(0)
            scale[scale == 0] = 1.0  # as StandardScaler does
            delta, mu = ledoit_wolf_shrinkage_gram(Xc / scale)
            prior = self.priors_[k]
            rows.append(Xc * np.sqrt(prior * (1.0 - delta) / n))
            diag += prior * delta * mu * scale**2
            means.append(mean)
        W = np.concatenate(rows)
        self.means_ = np.asarray(means)
        self.covariance_ = W.T @ W + np.diag(diag)
        self.shrinkage_mode_ = "per-class"
        if len(X) - len(classes) < p and diag.sum() <= 1e-9 * np.trace(self.covariance_):
            self.shrinkage_mode_ = "pooled"  # scikit-learn's estimate is singular: see above
            self.covariance_ = pooled_ledoit_wolf(X, y, classes, self.means_)
        try:  # shrunk, the covariance is usually well conditioned: a Cholesky solve is exact
            with warnings.catch_warnings():
                warnings.simplefilter("error", linalg.LinAlgWarning)
                self.coef_ = linalg.solve(self.covariance_, self.means_.T, assume_a="pos").T
        except (linalg.LinAlgError, linalg.LinAlgWarning):
            # singular or nearly (no shrinkage, e.g. 2 images per class): scikit-learn's lstsq
            self.coef_ = linalg.lstsq(self.covariance_, self.means_.T)[0].T
        self.intercept_ = -0.5 * np.diag(self.means_ @ self.coef_.T) + np.log(self.priors_)
