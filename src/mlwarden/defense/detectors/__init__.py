"""Poisoning detectors: per-row suspicion scores and decisions, with documented assumptions (docs/defenses.md).

``Detector`` (``interface.py``) is the common shape; ``features.encode`` turns Arrow tables into the numeric
matrix the detectors read; ``gate_step.PoisoningStep`` runs the ones that need only the batch and its
reference inside the ingestion gate.
"""

from mlwarden.defense.detectors.backdoor import ActivationClustering, SpectralSignature
from mlwarden.defense.detectors.duplicates import DuplicateFlood
from mlwarden.defense.detectors.features import Encoded, encode
from mlwarden.defense.detectors.influence import GroupRoni, ProvenanceDefense
from mlwarden.defense.detectors.interface import Detector, DetectorError, GroupScore, RowScores
from mlwarden.defense.detectors.label_noise import ConfidentLabels, KnnLabels
from mlwarden.defense.detectors.outliers import ReferenceOutliers

__all__ = [
    "ActivationClustering",
    "ConfidentLabels",
    "Detector",
    "DetectorError",
    "DuplicateFlood",
    "Encoded",
    "GroupRoni",
    "GroupScore",
    "KnnLabels",
    "ProvenanceDefense",
    "ReferenceOutliers",
    "RowScores",
    "SpectralSignature",
    "encode",
]
