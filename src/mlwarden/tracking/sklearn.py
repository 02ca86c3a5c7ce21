"""One call that records a scikit-learn model in a run: its parameters, its metrics on given data, and
the fitted model itself, saved with skops (no pickle: loading it back never runs arbitrary code)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlwarden.service.tracking import Run

MODEL_ARTIFACT = "model.skops"


def log_model(run: Run, estimator: Any, X: Any, y: Any, *, prefix: str = "") -> dict[str, float]:  # noqa: N803
    """Log ``estimator``'s params, its metrics on (X, y), and the model; return the metrics.

    Classifiers: accuracy and macro F1 (and ROC AUC for two classes with ``predict_proba``); regressors:
    R², MAE and RMSE. ``prefix`` names the data, e.g. "test_" gives "test_accuracy".
    """
    import skops.io as sio
    from sklearn.base import is_classifier

    run.log_params({k: _param(v) for k, v in estimator.get_params(deep=True).items()})
    metrics = (
        classification_metrics(estimator, X, y) if is_classifier(estimator) else regression_metrics(estimator, X, y)
    )
    named = {prefix + k: v for k, v in metrics.items()}
    run.log_metrics(named)
    run.set_tag("model_class", f"{type(estimator).__module__}.{type(estimator).__qualname__}")
    run.log_artifact(sio.dumps(estimator), MODEL_ARTIFACT)
    run.flush()
    return named


def _param(value: Any) -> str:
    if hasattr(value, "get_params"):  # a nested estimator: its class, its own params are logged flat
        return f"{type(value).__module__}.{type(value).__qualname__}"
    return str(value)


def classification_metrics(estimator: Any, X: Any, y: Any) -> dict[str, float]:  # noqa: N803
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

    predicted = estimator.predict(X)
    metrics = {
        "accuracy": float(accuracy_score(y, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
        "f1_macro": float(f1_score(y, predicted, average="macro")),
    }
    classes = getattr(estimator, "classes_", [])
    if len(classes) == 2 and hasattr(estimator, "predict_proba"):
        metrics["roc_auc"] = float(roc_auc_score(y, estimator.predict_proba(X)[:, 1]))
    return metrics


def regression_metrics(estimator: Any, X: Any, y: Any) -> dict[str, float]:  # noqa: N803
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    predicted = estimator.predict(X)
    return {
        "r2": float(r2_score(y, predicted)),
        "mae": float(mean_absolute_error(y, predicted)),
        "rmse": float(mean_squared_error(y, predicted) ** 0.5),
    }
