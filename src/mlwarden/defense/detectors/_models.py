"""Out-of-fold class probabilities: small NumPy models for the gate, any scikit-learn classifier otherwise.

Every probability of a row comes from a model that did not see that row (k folds, stratified), so a
flipped label cannot vouch for itself. Trusted rows (``X_ref``/``y_ref``), when given, join the training
side of every fold: their labels are known good.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlwarden.defense.detectors._numeric import neighbours
from mlwarden.defense.detectors.interface import Floats, Ints


def folds_of(y: Ints, folds: int, rng: np.random.Generator) -> Ints:
    """A fold number per row, stratified by class (each class dealt round-robin after a shuffle)."""
    fold = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        fold[rows] = (np.arange(len(rows)) + int(rng.integers(folds))) % folds
    return fold


def softmax_fit(X: Floats, y: Ints, k: int, l2: float = 1e-2, iterations: int = 300) -> Floats:
    """Multinomial logistic regression (weights with a bias row), full-batch gradient descent with the
    step 1/L of the loss's Lipschitz bound: no line search, no scikit-learn, deterministic."""
    Xb = np.hstack([X, np.ones((len(X), 1))])
    Y = np.zeros((len(X), k))
    Y[np.arange(len(X)), y] = 1.0
    W = np.zeros((Xb.shape[1], k))
    lipschitz = 0.5 * float(np.linalg.norm(Xb, 2) ** 2) / max(1, len(X)) + l2
    step = 1.0 / lipschitz
    for _ in range(iterations):
        P = softmax(Xb @ W)
        grad = Xb.T @ (P - Y) / len(X) + l2 * W
        W -= step * grad
    return W


def softmax_predict(W: Floats, X: Floats) -> Floats:
    return softmax(np.hstack([X, np.ones((len(X), 1))]) @ W)


def softmax(Z: Floats) -> Floats:
    Z = Z - Z.max(axis=1, keepdims=True)
    E = np.exp(Z)
    return np.asarray(E / E.sum(axis=1, keepdims=True), dtype=np.float64)


def knn_proba(
    X: Floats, y: Ints, k_classes: int, k: int, X_ref: Floats | None, y_ref: Ints | None, ref_weight: float = 1.0
) -> Floats:
    """Each row's class shares among its ``k`` nearest other rows (the batch without the row itself, plus
    the trusted rows, each of which counts ``ref_weight`` times), Laplace-smoothed; no folds needed, a row
    is never its own neighbour."""
    pool_x = X if X_ref is None else np.vstack([X, X_ref])
    pool_y = y if y_ref is None else np.concatenate([y, y_ref])
    idx, _ = neighbours(X, k + 1, pool_x)
    not_self = idx != np.arange(len(X))[:, None]
    keep = np.cumsum(not_self, axis=1) <= k  # the first k neighbours that are not the row itself
    weights = (not_self & keep).astype(np.float64) * np.where(idx >= len(X), ref_weight, 1.0)
    counts = np.zeros((len(X), k_classes))
    np.add.at(counts, (np.repeat(np.arange(len(X)), idx.shape[1]), pool_y[idx].ravel()), weights.ravel())
    return np.asarray((counts + 1.0 / k_classes) / (weights.sum(axis=1, keepdims=True) + 1.0), dtype=np.float64)


def oof_proba(
    X: Floats,
    y: Ints,
    k_classes: int,
    *,
    estimator: Any,
    folds: int,
    rng: np.random.Generator,
    X_ref: Floats | None = None,
    y_ref: Ints | None = None,
    k_neighbours: int = 10,
    ref_weight: float = 1.0,
) -> tuple[Floats, int]:
    """Out-of-fold probabilities (rows x classes) and the number of model fits spent.

    ``estimator``: ``"softmax"`` (NumPy multinomial logistic regression), ``"knn"`` (neighbour label
    shares), ``"ensemble"`` (the mean of both), or a scikit-learn classifier (cloned per fold). Each trusted
    row counts ``ref_weight`` times (rounded, for the models: it is repeated).
    """
    if estimator == "knn":
        return knn_proba(X, y, k_classes, k_neighbours, X_ref, y_ref, ref_weight), 0
    if estimator == "ensemble":
        soft, fits = oof_proba(
            X, y, k_classes, estimator="softmax", folds=folds, rng=rng, X_ref=X_ref, y_ref=y_ref, ref_weight=ref_weight
        )
        near = knn_proba(X, y, k_classes, k_neighbours, X_ref, y_ref, ref_weight)
        return (soft + near) / 2.0, fits
    fold = folds_of(y, folds, rng)
    proba = np.zeros((len(X), k_classes))
    fits = 0
    repeat = max(1, round(ref_weight))
    for f in range(folds):
        test = fold == f
        if not test.any():
            continue
        train_x, train_y = X[~test], y[~test]
        if X_ref is not None and y_ref is not None:
            ref_x, ref_y = np.repeat(X_ref, repeat, axis=0), np.repeat(y_ref, repeat)
            train_x, train_y = np.vstack([train_x, ref_x]), np.concatenate([train_y, ref_y])
        proba[test] = _fit_predict(estimator, train_x, train_y, X[test], k_classes)
        fits += 1
    return proba, fits


def _fit_predict(estimator: Any, train_x: Floats, train_y: Ints, test_x: Floats, k_classes: int) -> Floats:
    if estimator == "softmax":
        return softmax_predict(softmax_fit(train_x, train_y, k_classes), test_x)
    from sklearn.base import clone

    model = clone(estimator).fit(train_x, train_y)
    out = np.full((len(test_x), k_classes), 0.0)
    out[:, np.asarray(model.classes_, dtype=np.int64)] = model.predict_proba(test_x)
    return out
