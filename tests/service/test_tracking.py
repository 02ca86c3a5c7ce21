"""Experiment tracking: runs, batched logging (one event per batch), inputs gated by the ingestion gate."""

from __future__ import annotations

import pytest

from mlwarden.errors import GateBlocked, PermissionDenied, UsageError
from mlwarden.service.tracking import FLUSH_ROWS
from tests.service.access_kit import Person
from tests.service.data_kit import PROJECT, frame


def _events(person: Person, action: str) -> list[object]:
    return [e for e in person.ws.audit.log() if e.record.action == action] if person.ws.actor.is_admin else []


def test_a_run_records_params_metrics_tags_environment_and_inputs(data_team: dict[str, Person]) -> None:
    sam, alice = data_team["sam"].ws, data_team["alice"].ws
    sam.data.add("tx", frame(300), source="vendor-a", project=PROJECT, label_column="label")
    with alice.start_run(PROJECT, "baseline") as run:
        run.log_params({"lr": 0.1, "depth": 4})
        for step in range(5):
            run.log_metric("loss", 1.0 / (step + 1))
        run.log_metric("accuracy", 0.91)
        run.set_tag("team", "fraud")
        run.set_tag("team", "risk")
        used = run.use_dataset("tx@1")
    shown = alice.runs.show_run(run.id)
    assert shown["run"]["status"] == "finished" and shown["params"] == {"lr": "0.1", "depth": "4"}
    assert shown["metrics"] == {"loss": pytest.approx(0.2), "accuracy": 0.91} and shown["tags"] == {"team": "risk"}
    assert shown["inputs"] == [{"dataset": "tx", "version": 1, "digest": used["digest"]}]
    environment = shown["environment"]
    assert environment["python"] and environment["packages_digest"].startswith("sha256:")
    assert "commit" in environment["code"] and environment["command"]
    assert [m["step"] for m in alice.runs.metric_history(run.id, "loss")] == [0, 1, 2, 3, 4]
    assert [r["name"] for r in data_team["vic"].ws.runs.list_runs(project=PROJECT)] == ["baseline"]


def test_metrics_are_committed_in_batches_each_one_audit_event(data_team: dict[str, Person]) -> None:
    alice, root = data_team["alice"].ws, data_team["root"].ws
    run = alice.start_run(PROJECT, "many")
    for i in range(2 * FLUSH_ROWS + 500):
        run.log_metric("loss", float(i), step=i)
    run.end()
    batches = [e for e in root.audit.log() if e.record.action == "run.log"]
    assert [e.record.details["metrics"] for e in batches] == [FLUSH_ROWS, FLUSH_ROWS, 500]
    assert all(str(e.record.digest_after).startswith("sha256:") for e in batches)
    assert len(alice.runs.metric_history(run.id, "loss")) == 2 * FLUSH_ROWS + 500
    assert root.audit.verify().ok


def test_refusals(data_team: dict[str, Person]) -> None:
    alice, bob, vic = data_team["alice"].ws, data_team["bob"].ws, data_team["vic"].ws
    run = alice.start_run(PROJECT, "strict")
    run.log_param("lr", 0.1)
    run.flush()
    run.log_param("lr", 0.2)
    with pytest.raises(UsageError, match="immutable"):
        run.flush()
    with pytest.raises(UsageError, match="finite"):
        run.log_metric("loss", float("nan"))
    with pytest.raises(UsageError, match="invalid key"):
        run.log_metric("bad\nkey", 1.0)
    with pytest.raises(PermissionDenied):  # bob is an approver, not an engineer; and it is not his run
        bob.runs.log_batch(run.id, params={"x": "1"})
    with pytest.raises(PermissionDenied):
        vic.start_run(PROJECT, "viewer")
    alice.runs.end_run(run.id, "killed")
    with pytest.raises(PermissionDenied, match="ended"):
        alice.runs.log_batch(run.id, params={"late": "1"})
    with pytest.raises(UsageError):
        alice.runs.end_run(run.id, "exploded")


def test_a_quarantined_version_is_not_a_training_input(data_team: dict[str, Person]) -> None:
    sam, alice, bob, root = data_team["sam"], data_team["alice"].ws, data_team["bob"], data_team["root"].ws
    sam.ws.data.add("tx", frame(3000), source="vendor-a", project=PROJECT)
    change = sam.ws.data.add(
        "tx",
        frame(3000, seed=5, start=3000).assign(amount=lambda f: f["amount"] + 40),
        source="vendor-b",
        project=PROJECT,
    )
    assert change.verdict == "quarantined"
    with alice.start_run(PROJECT, "on-poison") as run:
        with pytest.raises(GateBlocked, match="quarantined"):
            run.use_dataset("tx@2")
        assert run.use_dataset("tx@1")["version"] == 1
    denied = [e for e in root.audit.log() if e.record.action == "run.input" and e.record.outcome == "denied"]
    assert denied and "quarantined" in denied[-1].record.reason
    bob.ws.approvals.approve(change.accept_request, totp=bob.code())
    with alice.start_run(PROJECT, "accepted") as run:
        assert run.use_dataset("tx@2")["version"] == 2


def test_an_exception_ends_the_run_as_failed_with_what_it_logged(data_team: dict[str, Person]) -> None:
    alice = data_team["alice"].ws
    with pytest.raises(RuntimeError), alice.start_run(PROJECT, "crash") as run:
        run.log_metric("loss", 0.5)
        raise RuntimeError("training blew up")
    shown = alice.runs.show_run(run.id)
    assert shown["run"]["status"] == "failed" and shown["metrics"] == {"loss": 0.5}


def test_compare_shows_param_differences_and_metric_deltas(data_team: dict[str, Person]) -> None:
    alice = data_team["alice"].ws
    with alice.start_run(PROJECT, "a") as a:
        a.log_params({"lr": 0.1, "depth": 4})
        a.log_metric("accuracy", 0.90)
    with alice.start_run(PROJECT, "b") as b:
        b.log_params({"lr": 0.05, "depth": 4})
        b.log_metric("accuracy", 0.93)
    compared = alice.runs.compare_runs(a.id, b.id)
    assert compared["params"] == {"lr": ["0.1", "0.05"]}
    assert compared["metrics"]["accuracy"]["delta"] == pytest.approx(0.03)


def test_a_metric_forged_or_deleted_in_the_database_is_named_by_audit_verify(data_team: dict[str, Person]) -> None:
    from sqlalchemy import insert, text

    from mlwarden.store.tables import run_ends, run_metrics

    alice, root = data_team["alice"].ws, data_team["root"].ws
    with alice.start_run(PROJECT, "honest") as run:
        run.log_params({"lr": 0.1})
        run.log_metrics({"accuracy": 0.71, "loss": 0.4})
    assert root.audit.verify().ok
    with root._ctx.db.write() as conn:  # noqa: SLF001 - an insider writes the tables directly
        conn.execute(
            insert(run_metrics).values(
                run_id=run.id, key="accuracy", step=1, value=0.99, at="2099-01-01T00:00:00Z", batch=1
            )
        )
    problems = [str(p) for p in root.audit.verify().problems]
    assert any("run batch" in p and run.id in p for p in problems), problems
    with root._ctx.db.write() as conn:  # noqa: SLF001
        if conn.dialect.name == "postgresql":  # the insider owns the tables: triggers are a speed bump
            conn.execute(text("DROP TRIGGER IF EXISTS run_ends_append_only ON run_ends"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS run_ends_no_delete"))
        conn.execute(run_ends.delete().where(run_ends.c.run_id == run.id))  # pretend it is still running
    problems = [str(p) for p in root.audit.verify().problems]
    assert any("run end" in p and "missing" in p for p in problems), problems


def test_the_sklearn_helper_logs_params_metrics_and_a_pickle_free_model(data_team: dict[str, Person]) -> None:
    import skops.io as sio
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from mlwarden.tracking.sklearn import MODEL_ARTIFACT, log_model

    alice, root = data_team["alice"].ws, data_team["root"].ws
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    model = LogisticRegression(max_iter=5000).fit(X_train, y_train)
    with alice.start_run(PROJECT, "logreg") as run:
        metrics = log_model(run, model, X_test, y_test, prefix="test_")
    assert metrics["test_accuracy"] > 0.9 and 0.9 < metrics["test_roc_auc"] <= 1.0
    shown = alice.runs.show_run(run.id)
    assert shown["params"]["max_iter"] == "5000" and shown["tags"]["model_class"].endswith("LogisticRegression")
    artifact = next(a for a in shown["artifacts"] if a["name"] == MODEL_ARTIFACT)
    from mlwarden.domain.digests import Digest

    stored = alice._ctx.blobs.get_bytes(Digest.parse(artifact["digest"]))  # noqa: SLF001
    loaded = sio.loads(stored, trusted=sio.get_untrusted_types(data=stored))
    assert (loaded.predict(X_test) == model.predict(X_test)).all()
    with pytest.raises(PermissionDenied, match="ended"):
        alice.runs.log_artifact(run.id, b"late", "late.bin")
    with alice.start_run(PROJECT, "twice") as again:
        again.log_artifact(b"a", "same")
        with pytest.raises(UsageError, match="already has an artifact"):
            again.log_artifact(b"b", "same")
    assert root.audit.verify().ok
