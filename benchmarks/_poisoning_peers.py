"""The baselines' side of ``poisoning.py``: ART 1.20.1's poisoning defences and cleanlab 2.9.0, run as
``python _poisoning_peers.py JOBS REPORT`` in the benchmark's own virtualenv (``benchmarks/.envs/poisoning``),
never in mlwarden's (cleanlab is AGPL: it never enters mlwarden's dependencies).

``JOBS`` is a JSON file written by ``poisoning.py``: a list of ``{"id", "data", "methods"}`` where ``data``
is an ``.npz`` holding ``X`` (the training rows, standardised), ``y``, ``X_trusted``, ``y_trusted``,
``sources`` (a source id per row), ``classes`` (the number of classes) and ``seed``. ``REPORT`` receives, per
job and method, ``{"flagged": [row, ...], "scores": [...] | null, "fits": int, "seconds": float,
"error": str | null}``. Only the standard library is imported at the top. Run without arguments (as
``make bench`` does with every script here), it does nothing.

How each baseline is driven (defaults of the library unless said):

* ``art_activation`` / ``art_spectral``: ART's ``ActivationDefence`` and ``SpectralSignatureDefense`` need a
  neural network with ``get_activations``; ART's scikit-learn wrappers have none, so a small adapter
  exposes the hidden layer (64 ReLU units) of a scikit-learn ``MLPClassifier`` trained on the poisoned rows
  (the same representation mlwarden's ``"hidden"`` option uses). Spectral: ``expected_pp_poison`` = the true
  poison rate (an oracle hint in ART's favour; at 0 the defence is undefined), scores = its outlier scores.
* ``art_provenance``: ``ProvenanceDefense`` with a ``ScikitlearnLogisticRegression``, one-hot provenance
  from the sources, the trusted rows as ``x_val``.
* ``art_roni``: ``RONIDefense`` with a ``ScikitlearnLogisticRegression``, the trusted rows as its ``x_val``.
  It retrains per suspect row, so it is given a uniform subset of ``ART_RONI_ROWS`` training rows (its
  flags count for those rows; the others count as kept).
* ``cleanlab``: ``cleanlab.filter.find_label_issues(labels, pred_probs)`` with out-of-fold probabilities
  of a ``LogisticRegression`` (5-fold ``cross_val_predict``), and ``get_label_quality_scores`` for AUROC.

Model fits are counted by wrapping ``fit`` of the classifiers each defence trains.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

ART_RONI_ROWS = 150
FITS = [0]


def _count_fits(cls: Any) -> Any:
    class Counted(cls):  # type: ignore[misc]
        def fit(self, *args: Any, **kwargs: Any) -> Any:
            FITS[0] += 1
            return super().fit(*args, **kwargs)

    Counted.__name__ = cls.__name__
    return Counted


class HiddenLayer:
    """The minimum of ART's neural-network classifier interface over a scikit-learn MLP."""

    def __init__(self, x: Any, y: Any, classes: int, seed: int) -> None:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        self.model = MLPClassifier(hidden_layer_sizes=(64,), max_iter=300, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(x, y)
        FITS[0] += 1
        self.nb_classes = classes
        self.layer_names = ["hidden"]
        self.input_shape = (x.shape[1],)
        self.clip_values = None
        self.channels_first = False

    def get_activations(self, x: Any, layer: Any = None, batch_size: int = 128, framework: bool = False) -> Any:
        import numpy as np

        return np.maximum(x @ self.model.coefs_[0] + self.model.intercepts_[0], 0.0)

    def predict(self, x: Any, batch_size: int = 128, **kwargs: Any) -> Any:
        import numpy as np

        out = np.zeros((len(x), self.nb_classes))
        out[:, self.model.classes_] = self.model.predict_proba(x)
        return out


def one_hot(y: Any, k: int) -> Any:
    import numpy as np

    out = np.zeros((len(y), k))
    out[np.arange(len(y)), y] = 1.0
    return out


def art_logistic() -> Any:
    from art.estimators.classification.scikitlearn import ScikitlearnLogisticRegression  # type: ignore[import-not-found]
    from sklearn.linear_model import LogisticRegression

    return _count_fits(ScikitlearnLogisticRegression)(LogisticRegression(max_iter=500))


def run(method: str, d: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    X, y, k, seed = d["X"], d["y"], int(d["classes"]), int(d["seed"])
    scores = None
    if method == "art_activation":
        from art.defences.detector.poison import ActivationDefence  # type: ignore[import-not-found]

        defence = ActivationDefence(HiddenLayer(X, y, k, seed), X, one_hot(y, k))
        _, clean = defence.detect_poison(nb_clusters=2, nb_dims=10, reduce="PCA", cluster_analysis="smaller")
        flagged = np.flatnonzero(np.asarray(clean) == 0)
    elif method == "art_spectral":
        from art.defences.detector.poison import SpectralSignatureDefense

        rate = max(float(d["rate"]), 0.01)
        defence = SpectralSignatureDefense(HiddenLayer(X, y, k, seed), X, one_hot(y, k), expected_pp_poison=rate)
        report, clean = defence.detect_poison()
        flagged = np.flatnonzero(np.asarray(clean) == 0)
        # its scores: recompute per class as ART does (uncentred projection), for AUROC
        acts = defence.classifier.get_activations(X)
        scores = np.zeros(len(y))
        for c in range(k):
            rows = np.flatnonzero(y == c)
            if len(rows):
                scores[rows] = SpectralSignatureDefense.spectral_signature_scores(acts[rows]).ravel()
    elif method == "art_provenance":
        from art.defences.detector.poison import ProvenanceDefense

        sources = d["sources"]
        names = {s: i for i, s in enumerate(sorted(set(sources.tolist())))}
        p = one_hot(np.array([names[s] for s in sources.tolist()]), len(names))
        defence = ProvenanceDefense(
            art_logistic(), X, one_hot(y, k), p, x_val=d["X_trusted"], y_val=one_hot(d["y_trusted"], k)
        )
        _, clean = defence.detect_poison()
        flagged = np.flatnonzero(np.asarray(clean) == 0)
    elif method == "art_roni":
        from art.defences.detector.poison import RONIDefense

        rng = np.random.default_rng(seed)
        subset = np.sort(rng.choice(len(y), min(ART_RONI_ROWS, len(y)), replace=False))
        defence = RONIDefense(
            art_logistic(), X[subset], one_hot(y[subset], k), d["X_trusted"], one_hot(d["y_trusted"], k)
        )
        _, clean = defence.detect_poison()
        flagged = subset[np.asarray(clean) == 0]
    elif method == "cleanlab":
        from cleanlab.filter import find_label_issues  # type: ignore[import-not-found]
        from cleanlab.rank import get_label_quality_scores  # type: ignore[import-not-found]
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import cross_val_predict

        proba = cross_val_predict(LogisticRegression(max_iter=1000), X, y, cv=5, method="predict_proba")
        FITS[0] += 5
        flagged = np.flatnonzero(find_label_issues(labels=y, pred_probs=proba))
        scores = 1.0 - get_label_quality_scores(labels=y, pred_probs=proba)
    else:
        raise ValueError(f"unknown method {method}")
    return {"flagged": [int(i) for i in flagged], "scores": None if scores is None else [float(s) for s in scores]}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        return 0
    import warnings

    import numpy as np

    warnings.simplefilter("ignore")
    jobs = json.loads(open(argv[0]).read())  # noqa: SIM115, PTH123 - standard library only, short-lived
    report: dict[str, dict[str, Any]] = {}
    for job in jobs:
        with np.load(job["data"], allow_pickle=False) as loaded:
            data = {name: loaded[name] for name in loaded.files}
        results = {}
        for method in job["methods"]:
            FITS[0] = 0
            started = time.perf_counter()
            try:
                out = run(method, data)
                out["error"] = None
            except Exception as exc:  # a crash is a result: the issue reports ART's crashes
                out = {"flagged": [], "scores": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
            out["fits"], out["seconds"] = FITS[0], time.perf_counter() - started
            results[method] = out
        report[job["id"]] = results
    with open(argv[1], "w") as handle:  # noqa: PTH123
        json.dump(report, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
