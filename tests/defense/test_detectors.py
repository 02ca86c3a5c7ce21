"""Each detector finds its attack on small synthetic data and stays quiet on clean data."""

from __future__ import annotations

import numpy as np
import pytest

from mlwarden.defense.detectors import (
    ActivationClustering,
    ConfidentLabels,
    Detector,
    DetectorError,
    DuplicateFlood,
    GroupRoni,
    KnnLabels,
    ProvenanceDefense,
    ReferenceOutliers,
    SpectralSignature,
)
from tests.defense.kit import backdoor, blobs, flip

FPR_BOUND = 0.03


def rates(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    return float(flagged[truth].mean()), float(flagged[~truth].mean())


@pytest.mark.parametrize(
    "detector", [ConfidentLabels(), ConfidentLabels("knn"), ConfidentLabels("softmax"), KnnLabels()]
)
def test_label_detectors_find_flips_and_stay_quiet_on_clean_labels(detector: Detector) -> None:
    X, y = blobs(600)
    clean = detector.detect(X, y)
    assert clean.flagged_fraction <= FPR_BOUND
    noisy, truth = flip(y, 0.1)
    found = detector.detect(X, noisy)
    tpr, fpr = rates(found.flagged, truth)
    assert tpr >= 0.9 and fpr <= FPR_BOUND, (tpr, fpr)
    assert found.scores[truth].mean() > found.scores[~truth].mean() + 0.3
    assert set(found.reasons) == set(found.flagged_rows.tolist())
    assert (
        "labelled" in found.reasons[int(found.flagged_rows[0])]
        or "nearest" in found.reasons[int(found.flagged_rows[0])]
    )


def test_a_batch_relabelling_a_whole_class_is_caught_against_trusted_rows() -> None:
    X, y = blobs(900, spread=2.0)
    X_ref, y_ref, X, y = X[:150], y[:150], X[150:], y[150:]
    relabelled = np.where(y == 0, 1, y)  # class 0 gone: every one of its rows now says 1
    truth = y == 0
    alone = ConfidentLabels().detect(X, relabelled)
    assert rates(alone.flagged, truth)[0] < 0.2  # with no one to say otherwise, the batch is its own truth
    anchored = ConfidentLabels().detect(X, relabelled, X_ref=X_ref, y_ref=y_ref)
    tpr, fpr = rates(anchored.flagged, truth)
    assert tpr >= 0.6 and fpr <= FPR_BOUND, (tpr, fpr)
    # counted once each, the trusted rows are outvoted by the relabelled ones
    unweighted = ConfidentLabels(trusted_weight=1.0).detect(X, relabelled, X_ref=X_ref, y_ref=y_ref)
    assert rates(unweighted.flagged, truth)[0] < tpr / 2


def test_confident_labels_accepts_a_scikit_learn_estimator_and_counts_fits() -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = blobs(300)
    noisy, truth = flip(y, 0.1)
    found = ConfidentLabels(LogisticRegression(max_iter=500), folds=3).detect(X, noisy)
    assert found.fits == 3 and rates(found.flagged, truth)[0] >= 0.9


def test_reference_outliers_flag_triggers_calibrated_on_the_reference() -> None:
    X, y = blobs(900)
    X_ref, y_ref, X, y = X[:400], y[:400], X[400:], y[400:]
    for method in ("mahalanobis", "isolation_forest"):
        detector = ReferenceOutliers(method)
        clean = detector.detect(X, y, X_ref=X_ref, y_ref=y_ref)
        assert clean.flagged_fraction <= FPR_BOUND, method
        Xp, yp, truth = backdoor(X, y, 0.05)
        found = detector.detect(Xp, yp, X_ref=X_ref, y_ref=y_ref)
        tpr, fpr = rates(found.flagged, truth)
        assert tpr == 1.0 and fpr <= FPR_BOUND, (method, tpr, fpr)
    with pytest.raises(DetectorError, match="X_ref"):
        ReferenceOutliers().detect(X, y)


@pytest.mark.parametrize("detector", [SpectralSignature(), ActivationClustering(), SpectralSignature("hidden")])
def test_backdoor_detectors_find_an_all_to_one_trigger(detector: Detector) -> None:
    X, y = blobs(1200, d=8)
    X_ref, y_ref, X, y = X[:400], y[:400], X[400:], y[400:]
    clean = detector.detect(X, y, X_ref=X_ref, y_ref=y_ref)
    assert clean.flagged_fraction <= FPR_BOUND
    Xp, yp, truth = backdoor(X, y, 0.05)
    found = detector.detect(Xp, yp, X_ref=X_ref, y_ref=y_ref)
    tpr, fpr = rates(found.flagged, truth)
    assert tpr >= 0.95 and fpr <= FPR_BOUND, (tpr, fpr)


def test_with_a_reference_backdoor_detectors_survive_poison_that_is_most_of_a_class() -> None:
    X, y = blobs(1200, d=8)
    X_ref, y_ref, X, y = X[:400], y[:400], X[400:], y[400:]
    Xp, yp, truth = backdoor(X, y, 0.4)  # class 0 is now mostly poison
    for detector in (SpectralSignature(), ActivationClustering()):
        found = detector.detect(Xp, yp, X_ref=X_ref, y_ref=y_ref)
        tpr, fpr = rates(found.flagged, truth)
        assert tpr >= 0.95 and fpr <= FPR_BOUND, (detector.name, tpr, fpr)


def test_activation_clustering_does_not_flag_a_cluster_in_every_clean_class() -> None:
    X, y = blobs(900, classes=5)
    assert ActivationClustering().detect(X, y).flagged_fraction == 0.0  # ART's "smaller" rule: ~1/3 of rows


def test_duplicate_floods_are_found_and_named_by_group() -> None:
    X, y = blobs(500)
    rng = np.random.default_rng(3)
    copies = np.repeat(X[:1], 30, axis=0) + rng.normal(0, 0.005, (30, X.shape[1]))
    Xd, yd = np.vstack([X, copies]), np.concatenate([y, np.repeat(y[:1], 30)])
    groups = np.array([f"s{i % 4}" for i in range(500)] + ["flooder"] * 30)
    found = DuplicateFlood().detect(Xd, yd, groups=groups, X_ref=X, y_ref=y)
    assert found.flagged[-30:].all() and found.flagged[1:500].sum() == 0
    assert found.suspicious_groups() == ["flooder"]
    assert "from 'flooder'" in found.reasons[510]
    assert DuplicateFlood().detect(X, y, X_ref=X, y_ref=y).flagged_fraction == 0.0


@pytest.mark.parametrize("block", [1 << 20, 7])
def test_copies_found_through_the_projection_are_exactly_the_brute_force_ones(
    block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlwarden.defense.detectors import duplicates

    monkeypatch.setattr(duplicates, "PAIRS_PER_BLOCK", block)  # 7: a flood spans many blocks

    rng = np.random.default_rng(11)
    X = np.round(rng.normal(size=(400, 6)), 1)  # coarse values: some rows coincide by chance
    X = np.vstack([X, np.repeat(X[:3], 20, axis=0) + rng.normal(0, 0.004, (60, 6))])
    y = rng.integers(0, 2, len(X))
    bound = 0.05**2 * 6
    gap = ((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(gap, np.inf)
    brute = ((gap <= bound) & (y[:, None] == y[None, :])).sum(axis=1)
    near, counts = duplicates._copies(X, y, X, y, bound, same=True)
    assert np.array_equal(counts, np.minimum(brute, 64)) and brute.max() >= 8
    assert all(len(v) == min(brute[i], 64) for i, v in near.items())


def test_provenance_names_the_malicious_source_with_two_fits_at_most_per_source() -> None:
    X, y = blobs(1000)
    X_ref, y_ref, X, y = X[:300], y[:300], X[300:], y[300:]
    groups = np.array([f"source-{i % 7}" for i in range(len(y))])
    bad = groups == "source-3"
    noisy = y.copy()
    noisy[bad] = (y[bad] + 1) % 3
    found = ProvenanceDefense().detect(X, noisy, groups=groups, X_ref=X_ref, y_ref=y_ref)
    assert found.suspicious_groups() == ["source-3"] and found.fits == 8
    assert found.flagged[bad].all() and not found.flagged[~bad].any()
    assert ProvenanceDefense().detect(X, y, groups=groups, X_ref=X_ref, y_ref=y_ref).suspicious_groups() == []


def test_roni_flags_harmful_groups_with_the_right_sign_and_few_fits() -> None:
    X, y = blobs(900, spread=2.5)
    X_ref, y_ref, X, y = X[:300], y[:300], X[300:], y[300:]
    noisy, truth = flip(y, 0.1)
    found = GroupRoni().detect(X, noisy, X_ref=X_ref, y_ref=y_ref)
    tpr, fpr = rates(found.flagged, truth)
    assert tpr >= 0.5 and fpr <= 0.05, (tpr, fpr)
    assert found.fits < 3 * np.sqrt(len(y)) + 1  # O(n^1.5) in all, not a fit per row
    clean = GroupRoni().detect(X, y, X_ref=X_ref, y_ref=y_ref)
    assert clean.flagged_fraction <= 0.05  # helpful rows are never rejected for helping


def test_group_aggregates_name_the_group_holding_the_flips() -> None:
    X, y = blobs(800)
    groups = np.array([f"g{i % 5}" for i in range(800)])
    noisy = y.copy()
    bad = groups == "g2"
    noisy[bad] = (y[bad] + 1) % 3
    found = ConfidentLabels().detect(X, noisy, groups=groups)
    assert found.suspicious_groups() == ["g2"]
    g2 = next(g for g in found.groups if g.group == "g2")
    assert g2.flagged_fraction > 0.8 and g2.to_json()["suspicious"]


# -- bad inputs ------------------------------------------------------------------------------------------------

ALL = [ConfidentLabels(), KnnLabels(), SpectralSignature(), ActivationClustering(), DuplicateFlood()]


@pytest.mark.parametrize("detector", ALL, ids=lambda d: d.name)
def test_bad_inputs_give_results_or_clear_errors(detector: Detector) -> None:
    X, y = blobs(200)
    one_class = detector.detect(X, np.zeros(200, dtype=np.int64))
    assert not one_class.flagged.any()
    tiny = detector.detect(X[:5], y[:5])
    assert tiny.rows == 5 and not tiny.flagged.any() and "too few" in tiny.note
    constant = detector.detect(np.ones((200, 3)), y)
    assert constant.rows == 200 and np.isfinite(constant.scores).all()
    assert ((constant.scores >= 0) & (constant.scores <= 1)).all()
    with pytest.raises(DetectorError, match="NaN"):
        detector.detect(np.full((50, 2), np.nan), y[:50])
    with pytest.raises(DetectorError, match="labels"):
        detector.detect(X, y[:10])
    with pytest.raises(DetectorError, match="features"):
        detector.detect(X, y, X_ref=X[:, :2], y_ref=y)


def test_labels_are_required_where_needed_and_any_hashable_labels_work() -> None:
    X, y = blobs(300)
    with pytest.raises(DetectorError, match="needs labels"):
        ConfidentLabels().detect(X)
    names = np.array(["cat", "dog", "eel"])[flip(y, 0.1)[0]]
    assert ConfidentLabels().detect(X, names).flagged.sum() >= 25
