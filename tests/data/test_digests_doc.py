"""The known-answer vectors of docs/digests.md hold for the fast implementation and for the reference."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from mlwarden.data.columns import conform
from mlwarden.data.fingerprint import row_digests
from mlwarden.data.schema import Schema
from mlwarden.data.tree import tree_of
from mlwarden.data.versions import version_digest
from tests.data import reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "digests.md"
_NAMES = {"dt": dt, "Decimal": Decimal}


def vector_blocks() -> list[dict[str, Any]]:
    blocks = re.findall(r"```vectors\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    parsed = []
    for block in blocks:
        entry: dict[str, Any] = {"rows": [], "row_digests": []}
        for line in block.strip().splitlines():
            key, _, value = line.partition(": ")
            if key == "schema":
                entry["schema"] = Schema.from_json(json.loads(value))
            elif key == "row":
                entry["rows"].append(eval(value, {"__builtins__": {"float": float}}, _NAMES))  # noqa: S307 - our own doc
            elif key == "row digest":
                entry["row_digests"].append(value)
            else:
                entry[key] = value
        parsed.append(entry)
    return parsed


BLOCKS = vector_blocks()


def test_the_document_has_vectors() -> None:
    assert len(BLOCKS) >= 2
    assert sum(len(b["rows"]) for b in BLOCKS) >= 6


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: ",".join(b["schema"].names))
def test_vectors(block: dict[str, Any]) -> None:
    schema: Schema = block["schema"]
    rows = block["rows"]
    assert "sha256:" + schema.digest().hex() == block["schema digest"]
    columns = {c.name: pa.array([r[i] for r in rows], c.arrow_type()) for i, c in enumerate(schema.columns)}
    batch = conform(pa.table(columns).to_batches()[0], schema)
    fast = [d.tobytes().hex() for d in row_digests(batch, schema)]
    slow = [reference.row_digest(schema, r).hex() for r in rows]
    assert fast == slow == block["row_digests"]
    assert str(version_digest(schema, tree_of(row_digests(batch, schema)))) == block["version digest"]
    assert reference.version_digest(schema, rows) == block["version digest"]
