"""The tracking step of `mlwarden demo`: a training run refuses the version holding quarantined rows,
trains on the accepted one, and records params, metrics, the model (skops) and its input by digest."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from mlwarden.cli.demo_data import DATASET, PROJECT
from mlwarden.cli.render import Output
from mlwarden.errors import GateBlocked
from mlwarden.service.workspace import Workspace


def train(out: Output, alice: Workspace, base: Path) -> int:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mlwarden.tracking.sklearn import log_model

    failures = 0
    with alice.start_run(PROJECT, "diagnosis-logreg") as run:
        try:
            run.use_dataset(f"{DATASET}@3")
            out.line(Text(f"  {DATASET}@3 (labeler-x's quarantined rows) accepted as input: MISSED", style="bold red"))
            failures += 1
        except GateBlocked as refused:
            out.line(Text(f"  {DATASET}@3 as input: refused ({refused.message})", style="green"))
        used = run.use_dataset(f"{DATASET}@4")
        exported = base / "training.parquet"
        alice.data.export(f"{DATASET}@4", exported, project=PROJECT)
        frame = pd.read_parquet(exported)
        X, y = frame.drop(columns="target"), frame["target"]  # noqa: N806
        X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)  # noqa: N806
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X_train, y_train)
        metrics = log_model(run, model, X_test, y_test, prefix="test_")
    shown = alice.runs.show_run(run.id)
    code = shown["environment"]["code"].get("commit") or "no git checkout"
    out.line(f"  run {run.id}: trained on {DATASET}@4 ({used['digest'][:23]}…), code {code[:12]}")
    out.line(
        f"  test accuracy {metrics['test_accuracy']:.3f}, ROC AUC {metrics['test_roc_auc']:.3f}; "
        f"{len(shown['params'])} params, model saved with skops ({shown['artifacts'][0]['size']:,} bytes)"
    )
    return failures + (0 if metrics["test_accuracy"] > 0.9 else 1)
