"""The baselines' side of ``poisoning.py``: ART 1.20.1's poisoning defences and cleanlab 2.9.0, run as
``python _poisoning_peers.py JOBS REPORT`` in the benchmark's own virtualenv (``benchmarks/.envs/poisoning``),
never in mlwarden's (cleanlab is AGPL: it never enters mlwarden's dependencies).

``JOBS`` is a JSON file written by ``poisoning.py``: a list of ``{"id", "data", "methods"}`` where ``data``
is an ``.npz`` holding ``X`` (the training rows, standardised), ``y``, ``X_trusted``, ``y_trusted``,
``sources`` (a source id per row), ``classes`` (the number of classes) and ``seed``. ``REPORT`` receives, per
job and method, ``{"flagged": [row, ...], "scores": [...] | null, "fits": int, "seconds": float,
"error": str | null, "origin": "library" | "harness" | null, "note": str | null}``: ``origin`` says
whether an error was raised inside ART's or cleanlab's code (or code they called) or in this script's own,
``note`` what the harness measured about the library's behaviour in that run. Only the standard library
is imported at the top. Run without arguments (as ``make bench`` does with every script here), it does
nothing.

How each baseline is driven (defaults of the library unless said):

* ``art_activation`` / ``art_spectral``: ART's ``ActivationDefence`` and ``SpectralSignatureDefense`` need a
  neural network with ``get_activations``; ART's scikit-learn wrappers have none, so a small adapter
  exposes the hidden layer (64 ReLU units) of a scikit-learn ``MLPClassifier`` trained on the poisoned rows
  (the same representation mlwarden's ``"hidden"`` option uses). Spectral: ``expected_pp_poison`` = the true
  poison rate (an oracle hint in ART's favour; at 0 the defence is undefined), scores = its outlier scores.
* ``art_provenance``: ``ProvenanceDefense`` with a ``ScikitlearnLogisticRegression``, one-hot labels and
  one-hot provenance from the sources (as its docstring asks), the trusted rows as ``x_val``, ``eps`` its
  default 0.2, and ``perf_func=accuracy_of_argmax``: ART's default ``"accuracy"`` cannot compare one-hot
  labels with the probabilities its own scikit-learn wrapper predicts (every run raised "Classification
  metrics can't handle a mix of multilabel-indicator and continuous-multioutput targets" before this).
  Before it runs, ``provenance_filter_note`` replays ART's ``filter_input`` per source and notes when it
  drops rows of other sources (ART's value-membership test; it does on digits): recorded, not corrected.
* ``art_roni``: ``RONIDefense`` (calibrated, its defaults) with a ``ScikitlearnLogisticRegression``, the
  trusted rows as its ``x_val``, ``perf_func=accuracy_of_argmax`` (as above), ``np.random`` seeded (it draws
  its quiz set and order from the global generator). It retrains per suspect row and recalibrates per row
  (``1 + n * (1 + 0.2 n)`` fits for ``n`` rows), so it is given a uniform subset of ``ART_RONI_ROWS`` training
  rows (its flags count for those rows; the others count as kept).
* ``cleanlab``: ``cleanlab.filter.find_label_issues(labels, pred_probs)`` with out-of-fold probabilities
  of a ``LogisticRegression`` (5-fold ``cross_val_predict``, one column per class even for a class the
  attack emptied), and ``get_label_quality_scores`` for AUROC.

Model fits are counted by wrapping ``fit`` of the classifiers each defence trains.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

ART_RONI_ROWS = 150
FITS = [0]
NOTE: list[str | None] = [None]
LIBRARIES = ("art", "cleanlab")


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


def accuracy_of_argmax(true: Any, predicted: Any) -> float:
    """ART's ``perf_func`` for one-hot labels and a wrapper that predicts probabilities.

    ``performance_diff`` passes ``perf_func`` the labels as given (one-hot, which ``RONIDefense`` needs: it
    ``np.vstack``s them) and ``classifier.predict``'s output (class probabilities for its scikit-learn
    wrappers); ART's built-in ``"accuracy"`` hands both to ``accuracy_score``, which rejects the mix. The
    callable form is ART's documented alternative: the accuracy of the most probable class.
    """
    import numpy as np

    return float(np.mean(np.argmax(true, axis=1) == np.argmax(predicted, axis=1)))


def provenance_filter_note(x: Any, p: Any) -> str | None:
    """What ART's ``ProvenanceDefense.filter_input`` keeps when it removes each source, if that is wrong.

    ART removes a source by value membership: a row survives when one of its values does not occur anywhere
    in the source's rows (``np.isin(row, segment, invert=True).any()``), not by the row's provenance. On
    continuous features that coincides with the provenance; on discrete features (digits' 17 pixel levels)
    rows of other sources are dropped with it. Measured here, before the defence runs, with ART's own code.
    """
    import numpy as np
    from art.defences.detector.poison import ProvenanceDefense
    from art.utils import segment_by_class

    owner = np.argmax(p, axis=1)
    wrong = []
    for device, segment in enumerate(segment_by_class(x, p, p.shape[1])):
        kept, _ = ProvenanceDefense.filter_input(x, np.arange(len(x)), segment)
        should = int((owner != device).sum())
        if len(kept) != should:
            wrong.append(f"source {device}: keeps {len(kept)} of the other sources' {should} rows")
    if not wrong:
        return None
    return "ART's filter_input drops rows of other sources (value membership): " + "; ".join(wrong)


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
        NOTE[0] = provenance_filter_note(X, p)
        defence = ProvenanceDefense(
            art_logistic(),
            X,
            one_hot(y, k),
            p,
            x_val=d["X_trusted"],
            y_val=one_hot(d["y_trusted"], k),
            perf_func=accuracy_of_argmax,
        )
        _, clean = defence.detect_poison()
        flagged = np.flatnonzero(np.asarray(clean) == 0)
    elif method == "art_roni":
        from art.defences.detector.poison import RONIDefense

        rng = np.random.default_rng(seed)
        subset = np.sort(rng.choice(len(y), min(ART_RONI_ROWS, len(y)), replace=False))
        np.random.seed(seed)  # RONIDefense draws its quiz set and visiting order from the global generator
        defence = RONIDefense(
            art_logistic(),
            X[subset],
            one_hot(y[subset], k),
            d["X_trusted"],
            one_hot(d["y_trusted"], k),
            perf_func=accuracy_of_argmax,
        )
        _, clean = defence.detect_poison()
        flagged = subset[np.asarray(clean) == 0]
        NOTE[0] = f"{len(subset)} rows examined"
    elif method == "cleanlab":
        from cleanlab.filter import find_label_issues  # type: ignore[import-not-found]
        from cleanlab.rank import get_label_quality_scores  # type: ignore[import-not-found]
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import cross_val_predict

        present = np.unique(y)
        proba = np.zeros((len(y), k))  # a class the attack emptied (pair flips at 20%) keeps its column
        proba[:, present] = cross_val_predict(LogisticRegression(max_iter=1000), X, y, cv=5, method="predict_proba")
        FITS[0] += 5
        flagged = np.flatnonzero(find_label_issues(labels=y, pred_probs=proba))
        scores = 1.0 - get_label_quality_scores(labels=y, pred_probs=proba)
    else:
        raise ValueError(f"unknown method {method}")
    return {"flagged": [int(i) for i in flagged], "scores": None if scores is None else [float(s) for s in scores]}


def origin(exc: BaseException) -> str:
    """``"library"`` when the exception was raised inside ART's or cleanlab's code (or in code they called,
    such as scikit-learn), ``"harness"`` when it never entered them (this script's own setup failed)."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    inside = any(
        f"site-packages/{name}/" in frame.filename.replace("\\", "/") for frame in frames for name in LIBRARIES
    )
    return "library" if inside else "harness"


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
            FITS[0], NOTE[0] = 0, None
            started = time.perf_counter()
            try:
                out = run(method, data)
                out["error"] = out["origin"] = None
            except Exception as exc:  # a crash is a result: the issue reports ART's crashes
                out = {"flagged": [], "scores": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
                out["origin"] = origin(exc)
            out["fits"], out["seconds"], out["note"] = FITS[0], time.perf_counter() - started, NOTE[0]
            results[method] = out
        report[job["id"]] = results
    with open(argv[1], "w") as handle:  # noqa: PTH123
        json.dump(report, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
