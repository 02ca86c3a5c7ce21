"""Attacks by someone who can write the metadata database. Each must make `audit verify` or
`audit witness` fail and name the place (the first bad seq, or the checkpoint that no longer matches)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, delete, insert, select, text, update

from mlwarden.audit import encoding, merkle
from mlwarden.audit.checkpoint import (
    Checkpoint,
    NoteSigner,
    parse_checkpoint_note,
    sign_checkpoint,
)
from mlwarden.audit.clock import format_ts, utcnow
from mlwarden.audit.keys import generate_signing_key, load_private_key, save_private_key
from mlwarden.cli import main
from mlwarden.errors import IntegrityError
from mlwarden.service.workspace import Workspace
from mlwarden.store.tables import APPEND_ONLY_TABLES, audit_checkpoints, audit_events, audit_nodes
from tests.conftest import Env

EVENTS = 40  # events in the log before the attack (init writes a few more)


@pytest.fixture
def busy(env: Env, admin: Workspace, tmp_path: Path) -> Iterator[tuple[Env, Workspace, Path]]:
    """A workspace with some history, and a witness folder holding a checkpoint exported mid-way."""
    witness = tmp_path / "witness"
    for i in range(EVENTS // 2):
        admin.users.add(f"user{i}")
    admin.audit.checkpoint(export=witness)
    for i in range(EVENTS // 2):
        admin.tokens.create(f"t{i}", user=f"user{i}")
    assert admin.audit.verify().ok
    yield env, admin, witness


def _attacker(ws: Workspace) -> Connection:
    """A raw connection: the attacker bypasses mlwarden entirely."""
    return ws._ctx.db.engine.connect()


def _drop_guards(conn: Connection) -> None:
    for table in APPEND_ONLY_TABLES:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}"))
        else:
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_update"))
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_delete"))


def _size(ws: Workspace) -> int:
    with ws._ctx.db.read() as conn:
        return ws._ctx.log.size(conn)


def _verify_fails_at(ws: Workspace, seq: int | None) -> list[str]:
    report = ws.audit.verify()
    assert not report.ok
    assert report.first_bad_seq == seq
    return [p.message for p in report.problems]


def test_triggers_forbid_update_and_delete(busy: tuple[Env, Workspace, Path]) -> None:
    _, ws, _ = busy
    for statement in (
        update(audit_events).where(audit_events.c.seq == 3).values(actor="x"),
        delete(audit_events).where(audit_events.c.seq == 3),
        update(audit_nodes).values(hash=b"\0" * 32),
        delete(audit_checkpoints),
    ):
        with _attacker(ws) as conn, pytest.raises(Exception, match="append-only"):
            conn.execute(statement)
            conn.commit()


def test_one_byte_of_an_event_changed(busy: tuple[Env, Workspace, Path]) -> None:
    _, ws, _ = busy
    with _attacker(ws) as conn:
        _drop_guards(conn)
        body = bytes(conn.execute(select(audit_events.c.body).where(audit_events.c.seq == 10)).scalar_one())
        at = body.index(b"user")
        forged = body[:at] + b"v" + body[at + 1 :]
        conn.execute(update(audit_events).where(audit_events.c.seq == 10).values(body=forged))
        conn.commit()
    messages = _verify_fails_at(ws, 10)
    assert any("event 10: body does not match its stored leaf hash" in m for m in messages)


def test_a_query_column_changed_but_not_the_body(busy: tuple[Env, Workspace, Path]) -> None:
    _, ws, _ = busy
    with _attacker(ws) as conn:
        _drop_guards(conn)
        conn.execute(update(audit_events).where(audit_events.c.seq == 12).values(actor="someone-else"))
        conn.commit()
    assert any("column 'actor'" in m for m in _verify_fails_at(ws, 12))


def test_a_stored_tree_hash_changed(busy: tuple[Env, Workspace, Path]) -> None:
    _, ws, _ = busy
    with _attacker(ws) as conn:
        _drop_guards(conn)
        conn.execute(
            update(audit_nodes).where(audit_nodes.c.level == 2, audit_nodes.c.idx == 3).values(hash=b"\x01" * 32)
        )
        conn.commit()
    assert any("stored node (2, 3)" in m for m in _verify_fails_at(ws, 12))


def test_an_event_deleted(busy: tuple[Env, Workspace, Path]) -> None:
    _, ws, _ = busy
    with _attacker(ws) as conn:
        _drop_guards(conn)
        conn.execute(delete(audit_events).where(audit_events.c.seq == 7))
        conn.commit()
    assert any("events 7..7 are missing" in m for m in _verify_fails_at(ws, 7))


def test_the_last_k_events_deleted(busy: tuple[Env, Workspace, Path]) -> None:
    _, ws, _ = busy
    size = _size(ws)
    with _attacker(ws) as conn:
        _drop_guards(conn)
        conn.execute(delete(audit_events).where(audit_events.c.seq >= size - 5))
        conn.commit()
    assert any("beyond the log's end" in m for m in _verify_fails_at(ws, size - 5))


def test_two_events_swapped(busy: tuple[Env, Workspace, Path]) -> None:
    _, ws, _ = busy
    with _attacker(ws) as conn:
        _drop_guards(conn)
        rows = {r.seq: r._asdict() for r in conn.execute(select(audit_events).where(audit_events.c.seq.in_([8, 9])))}
        for seq, other in ((8, 9), (9, 8)):
            values = {k: v for k, v in rows[other].items() if k != "seq"}
            conn.execute(update(audit_events).where(audit_events.c.seq == seq).values(**values))
        conn.commit()
    assert any("event stored at seq 8 says it is event 9" in m for m in _verify_fails_at(ws, 8))


def _forged_append(conn: Connection, ws: Workspace, ts: str, respell: Callable[[bytes], bytes] = bytes) -> int:
    """Append a well-formed event with its leaf and tree nodes, exactly as mlwarden would."""
    size = ws._ctx.log.size(conn)
    last = encoding.decode(bytes(conn.execute(select(audit_events.c.body).where(audit_events.c.seq == 1)).scalar_one()))
    event = type(last)(seq=size, ts=ts, record=last.record)
    body = respell(encoding.encode(event))
    leaf = merkle.leaf_hash(body)
    row = {c: getattr(last.record, c, None) for c in ("actor", "action")}
    conn.execute(
        insert(audit_events).values(
            seq=size,
            ts=ts,
            resource_type=last.record.resource.type,
            resource_id=last.record.resource.id,
            project=None,
            outcome="ok",
            body=body,
            leaf=leaf,
            **row,
        )
    )

    def node(level: int, idx: int) -> bytes:
        q = select(audit_nodes.c.hash).where(audit_nodes.c.level == level, audit_nodes.c.idx == idx)
        return bytes(conn.execute(q).scalar_one())

    for level, idx, digest in merkle.append_nodes(size, leaf, node):
        conn.execute(insert(audit_nodes).values(level=level, idx=idx, hash=digest))
    return size


def test_a_back_dated_event_inserted(busy: tuple[Env, Workspace, Path]) -> None:
    _, ws, _ = busy
    with _attacker(ws) as conn:
        seq = _forged_append(conn, ws, "2020-01-01T00:00:00.000000Z")  # no guard needs dropping to append
        conn.commit()
    assert any("back-dated" in m for m in _verify_fails_at(ws, seq))


def test_a_future_dated_event_appended(busy: tuple[Env, Workspace, Path]) -> None:
    _, ws, _ = busy
    with _attacker(ws) as conn:
        seq = _forged_append(conn, ws, "2999-01-01T00:00:00.000000Z")
        conn.commit()
    assert any("in the future" in m for m in _verify_fails_at(ws, seq))


def test_a_non_canonical_event_appended(busy: tuple[Env, Workspace, Path]) -> None:
    _, ws, _ = busy
    with _attacker(ws) as conn:
        seq = _forged_append(conn, ws, format_ts(utcnow()), respell=lambda body: body.replace(b'","', b'", "', 1))
        conn.commit()
    assert any("not a canonical v1 event" in m for m in _verify_fails_at(ws, seq))


def test_an_event_inserted_in_the_middle(busy: tuple[Env, Workspace, Path]) -> None:
    _, ws, _ = busy
    size = _size(ws)
    with _attacker(ws) as conn:
        _drop_guards(conn)
        for seq in range(size - 1, 14, -1):  # shift events 15.. up by one, keeping their bodies
            conn.execute(update(audit_events).where(audit_events.c.seq == seq).values(seq=seq + 1))
        body = bytes(conn.execute(select(audit_events.c.body).where(audit_events.c.seq == 14)).scalar_one())
        row = conn.execute(select(audit_events).where(audit_events.c.seq == 14)).one()._asdict()
        conn.execute(insert(audit_events).values(**{**row, "seq": 15, "body": body}))
        conn.commit()
    assert any("says it is event" in m for m in _verify_fails_at(ws, 15))


def test_trigger_dropped_then_an_event_deleted(busy: tuple[Env, Workspace, Path]) -> None:
    _, ws, _ = busy
    with _attacker(ws) as conn, pytest.raises(Exception, match="append-only"):
        conn.execute(delete(audit_events).where(audit_events.c.seq == 20))
        conn.commit()
    with _attacker(ws) as conn:
        _drop_guards(conn)
        conn.execute(delete(audit_events).where(audit_events.c.seq == 20))
        conn.commit()
    _verify_fails_at(ws, 20)


def _rewrite_history(ws: Workspace, edit_seq: int, signer: NoteSigner | None = None) -> None:
    """The strongest insider: edit an event, rebuild every leaf and node, re-sign every stored checkpoint."""
    signer = signer or NoteSigner(load_private_key(ws._ctx.paths.resolve(ws.config.key_file)), ws.config.key_name)
    with _attacker(ws) as conn:
        _drop_guards(conn)
        body = bytes(conn.execute(select(audit_events.c.body).where(audit_events.c.seq == edit_seq)).scalar_one())
        doc = json.loads(body)
        doc["resource_id"] = doc["resource_id"] + "-rewritten"
        forged = encoding.encode(encoding._from_doc(doc))
        conn.execute(
            update(audit_events)
            .where(audit_events.c.seq == edit_seq)
            .values(body=forged, leaf=merkle.leaf_hash(forged), resource_id=doc["resource_id"])
        )
        leaves = [bytes(r[0]) for r in conn.execute(select(audit_events.c.leaf).order_by(audit_events.c.seq))]
        conn.execute(delete(audit_nodes))
        nodes = [{"level": lv, "idx": i, "hash": h} for lv, i, h in merkle.perfect_nodes(leaves)]
        conn.execute(insert(audit_nodes), nodes)
        for cp in conn.execute(select(audit_checkpoints)).all():
            old, _ = parse_checkpoint_note(cp.note)
            new_root = merkle.root(leaves[: cp.size])
            note = sign_checkpoint(Checkpoint(origin=old.origin, size=cp.size, root=new_root), signer)
            conn.execute(
                update(audit_checkpoints).where(audit_checkpoints.c.size == cp.size).values(root=new_root, note=note)
            )
        conn.commit()


def _signer_record(ws: Workspace) -> Path:
    return ws._ctx.paths.resolve(ws.config.key_file).with_suffix(".last")


def test_whole_tree_recomputed_after_an_edit_is_caught_by_the_signers_record(
    busy: tuple[Env, Workspace, Path],
) -> None:
    """An insider with the database and the key, but not the key folder's record: verify catches it."""
    _, ws, _ = busy
    _rewrite_history(ws, edit_seq=6)
    report = ws.audit.verify()
    assert [p.message for p in report.problems if p.kind == "checkpoint"] == [
        f"the signer's last checkpoint at size {_signed_size(ws)} does not match the events: the log was rewritten"
    ]
    with pytest.raises(IntegrityError, match="refusing to sign a checkpoint: the log no longer matches"):
        ws.audit.checkpoint()  # fail closed: no new signature over the forged history


def _signed_size(ws: Workspace) -> int:
    return parse_checkpoint_note(_signer_record(ws).read_text())[0].size


def test_whole_tree_recomputed_with_the_signers_record_is_caught_by_the_witness(
    busy: tuple[Env, Workspace, Path],
) -> None:
    """The insider also owns the workspace folder: only the external witness can tell."""
    _, ws, witness = busy
    _rewrite_history(ws, edit_seq=3)  # an audit.checkpoint event: no credential table disagrees
    _signer_record(ws).unlink()
    assert ws.audit.verify().ok  # self-consistent: what verify alone cannot catch (docs/audit.md)
    report, _ = ws.audit.witness(witness)
    assert not report.ok
    assert any("history was rewritten" in p.message for p in report.problems)
    with pytest.raises(IntegrityError, match="not an extension"):
        ws.audit.checkpoint(export=witness)  # the witness folder refuses the forged tree too


def test_deleting_stored_checkpoints_does_not_get_a_forged_history_signed(
    busy: tuple[Env, Workspace, Path],
) -> None:
    _, ws, _ = busy
    with _attacker(ws) as conn:
        _drop_guards(conn)
        conn.execute(delete(audit_checkpoints))
        conn.commit()
    _rewrite_history(ws, edit_seq=8)
    with pytest.raises(IntegrityError, match="refusing to sign"):
        ws.users.add("after-the-rewrite")  # its append is due a checkpoint: none exists in the database
    assert not ws.audit.verify().ok


def test_truncation_with_rebuilt_tree_is_caught_by_the_signers_record_and_the_witness(
    busy: tuple[Env, Workspace, Path],
) -> None:
    _, ws, witness = busy
    exported_size = parse_checkpoint_note(next(witness.glob("checkpoint-*.txt")).read_text())[0].size
    with _attacker(ws) as conn:
        _drop_guards(conn)
        conn.execute(delete(audit_events).where(audit_events.c.seq >= exported_size - 3))
        conn.execute(delete(audit_nodes))
        conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.size > exported_size - 3))
        leaves = [bytes(r[0]) for r in conn.execute(select(audit_events.c.leaf).order_by(audit_events.c.seq))]
        conn.execute(
            insert(audit_nodes), [{"level": a, "idx": b, "hash": c} for a, b, c in merkle.perfect_nodes(leaves)]
        )
        conn.commit()
    report = ws.audit.verify()
    log_problems = [p for p in report.problems if p.kind != "state"]
    assert [p.seq for p in log_problems] == [exported_size - 3]
    assert "the signer's last checkpoint" in log_problems[0].message
    # the deleted events created tokens that are still in the database: reconciliation notices them
    assert any("no audit event created it" in p.message for p in report.problems if p.kind == "state")
    _signer_record(ws).unlink()
    assert [p for p in ws.audit.verify().problems if p.kind != "state"] == []
    witnessed, _ = ws.audit.witness(witness)
    assert [p.seq for p in witnessed.problems] == [exported_size - 3]
    assert "truncated" in witnessed.problems[0].message


def test_a_forged_checkpoint_signature(busy: tuple[Env, Workspace, Path]) -> None:
    _, ws, _ = busy
    with _attacker(ws) as conn:
        _drop_guards(conn)
        cp = conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.size.desc())).first()
        assert cp is not None
        body, _, sig_line = cp.note.rpartition("\n\n")
        name, _, b64 = sig_line.strip().rpartition(" ")
        forged_sig = b64[:10] + ("A" if b64[10] != "A" else "B") + b64[11:]
        conn.execute(
            update(audit_checkpoints)
            .where(audit_checkpoints.c.size == cp.size)
            .values(note=f"{body}\n\n{name} {forged_sig}\n")
        )
        conn.commit()
    report = ws.audit.verify()
    assert not report.ok
    assert [p.kind for p in report.problems] == ["checkpoint"]


def test_the_signing_key_replaced(busy: tuple[Env, Workspace, Path]) -> None:
    env, ws, witness = busy
    key_path = ws._ctx.paths.resolve(ws.config.key_file)
    key_path.unlink()
    new_key = generate_signing_key()
    save_private_key(new_key, key_path)
    # The attacker also re-signs every stored checkpoint with the new key, after rewriting an event.
    _rewrite_history(ws, edit_seq=5, signer=NoteSigner(new_key, ws.config.key_name))
    with env.open() as reopened:
        report = reopened.audit.verify()
        assert not report.ok
        assert any("signing key differs" in p.message for p in report.problems)
        witnessed, _ = reopened.audit.witness(witness)
        assert any("not the key the witness pinned" in p.message for p in witnessed.problems)


def test_cli_verify_exits_1_and_names_the_first_bad_seq(
    busy: tuple[Env, Workspace, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env, ws, witness = busy
    with _attacker(ws) as conn:
        _drop_guards(conn)
        conn.execute(delete(audit_events).where(audit_events.c.seq == 9))
        conn.commit()
    monkeypatch.setenv("MLWARDEN_TOKEN", env.admin_token)
    assert main(["--workspace", str(env.root), "audit", "verify", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["first_bad_seq"] == 9
    assert main(["--workspace", str(env.root), "audit", "verify"]) == 1
    assert "first bad seq: 9" in capsys.readouterr().out
    assert main(["--workspace", str(env.root), "audit", "witness", str(witness), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False


def test_verify_reports_garbage_bodies_without_crashing(busy: tuple[Env, Workspace, Path]) -> None:
    _, ws, _ = busy
    with _attacker(ws) as conn:
        _drop_guards(conn)
        for seq, body in ((3, b"\xff\xfe not utf-8"), (4, b'{"v": 2}'), (5, b"[1, 2]")):
            conn.execute(update(audit_events).where(audit_events.c.seq == seq).values(body=body))
        conn.execute(text("UPDATE audit_events SET body = :body WHERE seq = 6"), {"body": "text, not bytes"})
        dialect = conn.dialect.name
        conn.commit()
    messages = _verify_fails_at(ws, 3)
    assert any("event 3: body is not valid UTF-8 JSON" in m for m in messages)
    assert any("event 4: body is not a v1 event" in m for m in messages)
    if dialect == "sqlite":  # PostgreSQL casts the text to bytea
        assert any("event 6: body is not stored as bytes" in m for m in messages)
    assert any(m.startswith("event 6:") for m in messages)


def test_events_with_very_large_integers_verify(admin: Workspace) -> None:
    from mlwarden.domain.events import AuditRecord, AuthMethod, Outcome, Resource

    record = AuditRecord(
        actor="x", auth_method=AuthMethod.SYSTEM, action="test.big", resource=Resource("t", "1"),
        outcome=Outcome.OK, details={"n": 2**70, "m": -(2**65)},
    )  # fmt: skip
    with admin._ctx.db.write() as conn:
        admin._ctx.log.append(conn, record)
    assert admin.audit.verify().ok


def test_credential_tables_are_reconciled_with_the_log(busy: tuple[Env, Workspace, Path]) -> None:
    """Database writes behind the log's back: a new admin, a swapped password hash, an un-revoked or
    minted token, a deleted user. None has an audit event; verify names each."""
    from argon2 import PasswordHasher

    from mlwarden.identity.tokens import issue_token
    from mlwarden.store.tables import api_tokens, users

    _, ws, _ = busy
    revoked = ws.tokens.create("old", user="user3")
    ws.tokens.revoke(revoked.info.id)
    minted = issue_token()
    with _attacker(ws) as conn:
        admin_id = conn.execute(select(users.c.id).where(users.c.name == "admin")).scalar_one()
        conn.execute(
            insert(users).values(
                id="usr_evil", name="evil", is_admin=True, disabled=False, password_hash=None, created_at="2026"
            )
        )
        known = PasswordHasher().hash("attacker-knows-this")
        conn.execute(update(users).where(users.c.name == "admin").values(password_hash=known))
        conn.execute(update(users).where(users.c.name == "user2").values(is_admin=True))
        conn.execute(update(api_tokens).where(api_tokens.c.id == revoked.info.id).values(revoked_at=None))
        conn.execute(
            update(api_tokens).where(api_tokens.c.name == "t4").values(expires_at="2999-01-01T00:00:00.000000Z")
        )
        conn.execute(
            insert(api_tokens).values(
                id=minted.token_id, user_id=admin_id, name="backdoor", secret_hash=minted.secret_hash,
                created_at="2026", expires_at=None, revoked_at=None,
            )
        )  # fmt: skip
        conn.execute(delete(api_tokens).where(api_tokens.c.user_id == conn.execute(
            select(users.c.id).where(users.c.name == "user7")).scalar_one()))  # fmt: skip
        conn.execute(delete(users).where(users.c.name == "user7"))
        conn.commit()
    messages = [p.message for p in ws.audit.verify().problems if p.kind == "state"]
    expected = [
        "user 'evil' is in the database but no audit event created it",
        "user 'admin': password in the database differs from the audit log",
        "user 'user2': admin in the database differs from the audit log",
        f"token '{revoked.info.id}': revoked in the database differs from the audit log",
        f"token '{minted.token_id}' is in the database but no audit event created it",
        "expires in the database differs from the audit log",
        "user 'user7' (created at seq",
    ]
    for fragment in expected:
        assert any(fragment in m for m in messages), (fragment, messages)
