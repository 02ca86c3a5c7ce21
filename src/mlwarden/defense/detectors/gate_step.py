"""The poisoning detectors as a step of the ingestion gate (entry point ``mlwarden.detectors``).

The step runs the detectors that need nothing but the batch and its reference, on uniform samples of
at most ``SAMPLE_ROWS`` rows of each (the batch is already a 50,000-row sample; 2,000 rows keep the step
well under a second, and the finding says when rows were sampled):

* with a label column: ``confident_labels`` and ``knn_labels`` (skipped, with an info finding, when there
  is no label column, when the labels cannot be predicted from the features at all: then no row's label
  can look wrong, and every row would; and, with their counts, when there is no accepted reference to
  measure their clean rate on);
* with a reference: ``reference_outliers``, ``spectral_signature`` and ``activation_clustering`` (the
  last two need labels too);
* always: ``duplicate_flood`` (judged only against an accepted reference: rows of a few categorical
  columns repeat naturally, and without accepted rows a flood cannot be told from that; counted
  otherwise, like the label detectors).

A detector's finding fails when the batch holds significantly more flagged rows than clean data would: a
one-sided binomial test (p < ``P_VALUE``) against the rate the detector flags on clean rows (for the
label detectors, measured on the reference sample itself; for the others, their calibrated rate), and
at least ``MIN_FRACTION`` of the rows. Findings carry the flagged fraction and a few flagged rows with
their reasons. The default policy quarantines on a failed ``poisoning`` finding (``STEP_DEFAULTS``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from mlwarden.data.columns import int64_array
from mlwarden.defense.detectors.backdoor import ActivationClustering, SpectralSignature
from mlwarden.defense.detectors.duplicates import DuplicateFlood
from mlwarden.defense.detectors.features import Encoded, encode
from mlwarden.defense.detectors.interface import Detector, RowScores, binomial_sf
from mlwarden.defense.detectors.label_noise import ConfidentLabels, KnnLabels
from mlwarden.defense.detectors.outliers import ReferenceOutliers
from mlwarden.quality.evidence import Evidence
from mlwarden.quality.interface import MAX_SAMPLE_ROWS, Finding, GateStep, Outcome

STEP = "poisoning"
MIN_ROWS = 50
SAMPLE_ROWS = 2_000
P_VALUE = 1e-3
MIN_FRACTION = 0.01
# the rate each detector flags on clean data, where it is not measured on the reference
CLEAN_RATE = {
    "reference_outliers": 0.01,
    "spectral_signature": 0.01,
    "activation_clustering": 0.005,
    "duplicate_flood": 0.002,
    "confident_labels": 0.02,
    "knn_labels": 0.05,
}
MIN_LABEL_SIGNAL = 0.05  # out-of-fold accuracy over the majority class's share, below which labels are noise


class PoisoningStep(GateStep):
    """Row-level poisoning detectors on the batch, against its reference."""

    step: ClassVar[str] = STEP

    def __init__(self, sample_rows: int = SAMPLE_ROWS, seed: int = 0) -> None:
        self.sample_rows, self.seed = sample_rows, seed

    def run(self, evidence: Evidence) -> list[Finding]:
        rows = evidence.current.num_rows
        if rows < MIN_ROWS:
            return [_info("rows", f"{rows} rows: too few for the poisoning detectors (at least {MIN_ROWS})")]
        rng = np.random.default_rng(self.seed)
        current, picked = _sample(evidence.current, self.sample_rows, rng)
        reference = evidence.reference
        if reference is not None and reference.num_rows < MIN_ROWS:
            reference = None
        if reference is not None:
            reference, _ = _sample(reference, self.sample_rows, rng)
        label = evidence.label_column
        if label is not None and label not in current.column_names:
            label = None
        encoded = encode(current, reference, label_column=label)
        if encoded.X.shape[1] == 0:
            return [_info("features", "no column could be encoded as a feature: " + _skipped(encoded))]
        sampled = f" (a uniform sample of {len(picked)} of {evidence.current_rows} rows)" if len(picked) < rows else ""
        findings: list[Finding] = []
        chosen: list[Detector] = [DuplicateFlood()]
        if encoded.y is None:
            findings.append(_info("labels", "no label column: the label-noise detectors did not run"))
        elif len(set(encoded.y)) < 2 and encoded.y_ref is None:
            findings.append(_info("labels", "one label class and no reference: the label detectors did not run"))
        else:
            chosen = [ConfidentLabels("softmax"), KnnLabels(), *chosen]
        if encoded.X_ref is None:
            findings.append(_info("reference", "no accepted reference yet: outlier and backdoor detectors did not run"))
        else:
            chosen.insert(0, ReferenceOutliers())
            if encoded.y is not None and encoded.y_ref is not None:
                chosen[1:1] = [SpectralSignature(), ActivationClustering()]
        for detector in chosen:
            findings += self._judge(detector, encoded, picked, evidence.current_rows, sampled)
        return findings

    def _judge(self, detector: Detector, enc: Encoded, picked: Any, total: int, sampled: str) -> list[Finding]:
        labelled = detector.needs_labels or isinstance(detector, DuplicateFlood)
        y = enc.y if labelled or isinstance(detector, ReferenceOutliers) else None
        y_ref = enc.y_ref if y is not None else None
        result = detector.detect(enc.X, y, X_ref=enc.X_ref, y_ref=y_ref)
        name = f"{STEP}.{detector.name}"
        if result.note and not result.flagged.any():
            return [_info(detector.name, f"{detector.name}: {result.note}")]
        if isinstance(detector, ConfidentLabels | KnnLabels):
            signal = _label_signal(enc, detector, result)
            if signal is not None:
                return [_info(detector.name, signal)]
        if isinstance(detector, ConfidentLabels | KnnLabels | DuplicateFlood):
            unmeasured = _unmeasured(enc, detector, result, sampled)
            if unmeasured is not None:
                return [unmeasured]
        judged = excess(detector, result, enc.X_ref, enc.y_ref, y)
        m, k, fraction, failed = result.rows, int(result.flagged.sum()), judged.fraction, judged.failed
        clean_rate = judged.clean_rate  # for the message below
        scores = {
            "flagged_fraction": fraction,
            "flagged": float(k),
            "rows_judged": float(m),
            "clean_rate": clean_rate,
            "p_value": judged.p_value,
            "fits": float(result.fits),
        }
        verb = "more flagged rows than clean data gives" if failed else "no more flagged rows than clean data gives"
        message = f"{detector.name}: {k} of {m} rows flagged ({fraction:.1%}; clean {clean_rate:.1%}): {verb}{sampled}"
        sample = tuple(
            {
                "row": int(picked[i]),
                "score": round(float(result.scores[i]), 4),
                "reason": result.reasons.get(int(i), ""),
            }
            for i in np.argsort(-result.scores)[:MAX_SAMPLE_ROWS]
            if result.flagged[i]
        )
        return [
            Finding(
                STEP,
                name,
                Outcome.FAILED if failed else Outcome.PASSED,
                message,
                failed_rows=round(fraction * total) if failed else 0,
                sample=sample,
                scores=scores,
            )
        ]


@dataclass(frozen=True)
class Excess:
    """Whether a detector flagged significantly more rows than it flags on clean data."""

    clean_rate: float
    p_value: float  # one-sided binomial test of the flagged count against the clean rate
    fraction: float

    @property
    def failed(self) -> bool:
        return self.p_value < P_VALUE and self.fraction >= MIN_FRACTION


def excess(detector: Detector, result: RowScores, X_ref: Any, y_ref: Any, y: Any = None) -> Excess:  # noqa: N803
    """Judge a detector's flags as the gate does: against the rate it flags on clean rows. With the batch's
    labels ``y``, a distribution detector's flags are also tested class by class (Bonferroni over the
    classes): poison aimed at one class (a backdoor's target) is an excess there long before it is one in
    the whole batch."""
    label_detector = isinstance(detector, ConfidentLabels | KnnLabels)
    clean_rate = _clean_rate(detector, X_ref, y_ref) if label_detector else CLEAN_RATE[detector.name]
    m, k = result.rows, int(result.flagged.sum())
    p_value = binomial_sf(k, m, clean_rate)
    # not the label detectors: how often they flag clean rows differs from class to class (rows of a small
    # or ambiguous class look mislabelled more often), and their rate is measured overall
    if y is not None and len(y) == m and not label_detector:
        labels = np.asarray(y, dtype=object)
        classes = list(dict.fromkeys(labels.tolist()))
        for c in classes:
            in_class = labels == c
            p_class = binomial_sf(int(result.flagged[in_class].sum()), int(in_class.sum()), clean_rate)
            p_value = min(p_value, len(classes) * p_class)
    return Excess(clean_rate, min(1.0, p_value), k / m if m else 0.0)


def _clean_rate(detector: Detector, X_ref: Any, y_ref: Any) -> float:  # noqa: N803
    """A label detector's clean rate: the upper bound of the rate it flags on the reference rows, when there
    are enough of them (how separable the classes are sets it), at least its default."""
    clean_rate = CLEAN_RATE[detector.name]
    if X_ref is None or y_ref is None or len(X_ref) < MIN_ROWS:
        return clean_rate
    on_reference = detector.detect(X_ref, y_ref)
    return max(clean_rate, upper_bound(int(on_reference.flagged.sum()), on_reference.rows))


def upper_bound(flagged: int, rows: int, z: float = 3.09) -> float:
    """The Wilson score upper bound (one-sided 99.9%) of a rate measured as ``flagged`` of ``rows``: the
    clean rate measured on a reference sample is itself an estimate, and a batch is judged against the
    highest rate that sample leaves plausible (else a sample that happened to flag few rows makes an
    ordinary batch look like poison)."""
    if rows <= 0:
        return 1.0
    p = flagged / rows
    centre = p + z * z / (2 * rows)
    margin = z * math.sqrt(p * (1 - p) / rows + z * z / (4 * rows * rows))
    return min(1.0, (centre + margin) / (1 + z * z / rows))


def _unmeasured(enc: Encoded, detector: Detector, result: RowScores, sampled: str) -> Finding | None:
    """How often a label or duplicate detector flags clean rows depends on the data (how separable the
    classes are, how often rows repeat): without accepted rows to measure it on, a count is reported,
    never judged (None: there are)."""
    labels_missing = detector.needs_labels and enc.y_ref is None
    if enc.X_ref is not None and len(enc.X_ref) >= MIN_ROWS and not labels_missing:
        return None
    return _info(
        detector.name,
        f"{detector.name}: {int(result.flagged.sum())} of {result.rows} rows flagged; no accepted"
        f" reference to measure the clean rate on, so not judged{sampled}",
    )


def _label_signal(enc: Encoded, detector: Detector, result: RowScores) -> str | None:
    """Why the label detectors cannot judge these labels (None: they can)."""
    accuracy = result.stats.get("oof_accuracy")
    majority = result.stats.get("majority")
    if accuracy is None or majority is None:
        return None
    if accuracy < majority + MIN_LABEL_SIGNAL:
        return (
            f"{detector.name}: the labels are not predictable from the features (out-of-fold accuracy "
            f"{accuracy:.2f}, majority class {majority:.2f}): no label can look wrong, not judged"
        )
    return None


def _sample(table: pa.Table, rows: int, rng: np.random.Generator) -> tuple[pa.Table, Any]:
    if table.num_rows <= rows:
        return table, np.arange(table.num_rows)
    picked = np.sort(rng.choice(table.num_rows, rows, replace=False))
    return table.take(int64_array(picked)), picked  # pa.array(numpy) would import pandas


def _info(name: str, message: str) -> Finding:
    return Finding(STEP, f"{STEP}.{name}", Outcome.SKIPPED, message)


def _skipped(enc: Encoded) -> str:
    return ", ".join(f"{k} ({v})" for k, v in enc.skipped.items()) or "no columns"
