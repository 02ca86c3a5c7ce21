"""Measuring a model on a dataset version: the metrics promotion policies read.

Classifiers: accuracy, balanced accuracy, macro F1 (and ROC AUC for two classes with probabilities);
regressors: R², MAE, RMSE. The features are the version's columns but the label, in the order the model
was fitted with when it recorded one (scikit-learn's ``feature_names_in_``).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from mlwarden.errors import UsageError


def evaluate_on(model: Any, table: pa.Table, label: str) -> dict[str, float]:
    from sklearn.base import is_classifier, is_regressor

    from mlwarden.tracking.sklearn import classification_metrics, regression_metrics

    if not hasattr(model, "predict"):
        raise UsageError(
            f"a {type(model).__name__} cannot be evaluated here: it has no predict()",
            hint="evaluate scikit-learn-compatible models (skops, joblib, XGBoost/LightGBM sklearn wrappers)",
        )
    if label not in table.column_names:
        raise UsageError(f"the dataset has no label column {label!r}")
    if table.num_rows == 0:
        raise UsageError("the dataset version has no rows to evaluate on")
    frame = table.to_pandas()
    y = frame.pop(label)
    wanted = getattr(model, "feature_names_in_", None)
    if wanted is not None:
        missing = [str(c) for c in wanted if c not in frame.columns]
        if missing:
            raise UsageError(f"the dataset lacks the model's features: {', '.join(missing[:5])}")
        frame = frame[list(wanted)]
    if is_classifier(model):
        return classification_metrics(model, frame, y)
    if is_regressor(model):
        return regression_metrics(model, frame, y)
    raise UsageError(f"{type(model).__name__} is neither a classifier nor a regressor", hint="evaluate estimators")
