"""A scan report as a SARIF 2.1.0 log (https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html),
for code-scanning dashboards: one rule per finding code, one result per finding and per file whose
verdict has no finding to carry it (not-a-model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from mlwarden.scan.model import FileVerdict, ScanReport, Severity, Verdict

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
RULES = {
    "denied-global": "A pickle imports a global on the deny-list (code execution, files, network)",
    "unlisted-global": "A pickle imports a global that is not on the allow-list",
    "role-exceeded": "A pickle calls or instantiates a global the allow-list allows only in a weaker role",
    "computed-callable": "A pickle calls or instantiates a value computed at load time (a trampoline)",
    "computed-global": "STACK_GLOBAL with arguments that are not strings: the import is decided at load time",
    "mutates-import": "BUILD or item assignment on an imported module or class rewrites it for the process",
    "extension-code": "An EXT opcode imports whatever copyreg's extension registry maps the code to",
    "malformed-pickle": "The pickle stream is invalid; what preceded the error would still run",
    "trailing-data": "Bytes after the last pickle that are not a pickle",
    "limit-exceeded": "A size, depth or expansion limit stopped the scan (zip bomb or huge file)",
    "truncated": "The file ends before its structure does",
    "scanner-error": "The scanner could not check this content",
    "encrypted": "Encrypted content cannot be checked",
    "unsupported-format": "A format or compression the scanner cannot read",
    "corrupt-member": "An archive member cannot be decompressed or read",
    "unreadable-entry": "An archive entry's data cannot be located",
    "zip-anomaly": "The ZIP structure differs between its views (flags, names, directory)",
    "zip-bomb": "ZIP entries overlap: a zip bomb",
    "torchscript-code": "TorchScript code is present and not analysed",
    "legacy-storages": "Raw storage data of a legacy PyTorch file could not be walked fully",
    "malformed-npy": "The NumPy header is invalid",
    "npy-size": "NumPy data length differs from its header",
    "keras-lambda": "A Keras Lambda layer: loading runs Python code",
    "keras-function": "A Keras config refers to a Python function outside Keras",
    "keras-module": "A Keras config makes Keras import a module outside Keras",
    "malformed-config": "A model configuration is not valid JSON",
    "malformed-safetensors": "The safetensors header fails the format's checks",
    "hidden-pickle": "Metadata holds a pickle or archive",
    "gguf-template": "A GGUF chat template reaches Python internals (template injection)",
    "tf-op": "A TensorFlow graph uses an op that runs Python or touches files",
    "onnx-external-data": "ONNX external data points outside the model folder (path traversal)",
    "not-a-model": "Not a model file: no supported format was recognised",
}
_LEVEL = {
    Severity.MALICIOUS: "error",
    Severity.UNSAFE: "error",
    Severity.UNVERIFIABLE: "warning",
    Severity.INFO: "note",
}


def to_sarif(report: ScanReport, *, tool_version: str) -> dict[str, Any]:
    rule_ids = sorted({f.code for v in report.files for f in v.findings} | {"not-a-model"})
    rules = [
        {"id": rid, "name": rid, "shortDescription": {"text": RULES.get(rid, rid)}, "helpUri": _HELP}
        for rid in rule_ids
    ]
    results: list[dict[str, Any]] = []
    for verdict in report.files:
        results.extend(_results(verdict, rule_ids))
    driver = {"name": "mlwarden", "version": tool_version, "informationUri": _HELP, "rules": rules}
    run = {
        "tool": {"driver": driver},
        "results": results,
        "invocations": [{"executionSuccessful": True}],
        "properties": {"verdict": report.verdict.value, "allowlistDigest": report.allowlist_digest},
    }
    return {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}


_HELP = "https://github.com/mlwarden/mlwarden/blob/main/docs/scanner.md"


def _results(verdict: FileVerdict, rule_ids: list[str]) -> list[dict[str, Any]]:
    uri = _uri(verdict.path)
    out = []
    for finding in verdict.findings:
        location: dict[str, Any] = {"physicalLocation": {"artifactLocation": {"uri": uri}}}
        if finding.location:
            location["logicalLocations"] = [{"fullyQualifiedName": finding.location, "kind": "member"}]
        out.append(
            {
                "ruleId": finding.code,
                "ruleIndex": rule_ids.index(finding.code),
                "level": _LEVEL[finding.severity],
                "message": {"text": finding.message + (f" — {finding.chain}" if finding.chain else "")},
                "locations": [location],
                "properties": {"severity": finding.severity.value, "verdict": verdict.verdict.value,
                               "globals": list(finding.globals)},
            }
        )  # fmt: skip
    if verdict.verdict is Verdict.NOT_A_MODEL:
        out.append(
            {
                "ruleId": "not-a-model",
                "ruleIndex": rule_ids.index("not-a-model"),
                "level": "warning",
                "message": {"text": "not a model file: no supported format was recognised"},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}}}],
                "properties": {"verdict": verdict.verdict.value},
            }
        )
    return out


def _uri(path: str) -> str:
    p = Path(path)
    return p.resolve().as_uri() if p.is_absolute() else quote(p.as_posix())
