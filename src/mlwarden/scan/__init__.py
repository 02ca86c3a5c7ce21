"""Model-file scanner: is this file safe to load?

Formats are recognised by content (never by extension): pickles of every protocol (stacked ones too),
joblib, PyTorch (zip, legacy, tar), NumPy, Keras, TensorFlow SavedModel, ONNX, safetensors, GGUF, and the
archives and compressors they travel in. Pickles run through a symbolic copy of CPython's unpickler that
imports and calls nothing, against an allow-list (docs/scanner.md).

    from mlwarden.scan import scan_path
    report = scan_path("model.pt")
    report.verdict            # Verdict.CLEAN, UNSAFE, MALICIOUS, UNVERIFIABLE or NOT_A_MODEL
"""

from mlwarden.scan.engine import Observer, scan_bytes, scan_file, scan_path
from mlwarden.scan.interface import FormatScanner, ScannerError
from mlwarden.scan.model import FileVerdict, Finding, ScanReport, Severity, Verdict
from mlwarden.scan.policy import AllowList, DenyList, GlobalRef, Limits, Role, ScanPolicy

__all__ = [
    "AllowList",
    "DenyList",
    "FileVerdict",
    "Finding",
    "FormatScanner",
    "GlobalRef",
    "Limits",
    "Observer",
    "Role",
    "ScanPolicy",
    "ScanReport",
    "ScannerError",
    "Severity",
    "Verdict",
    "scan_bytes",
    "scan_file",
    "scan_path",
]
