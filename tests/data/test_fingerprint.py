"""Row fingerprints: the same data gives the same digests through every reader and library, and any change
to a value, its type, its nullness or the column order changes them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.ipc as ipc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.data.columns import conform, infer_schema
from mlwarden.data.fingerprint import CHUNK_ROWS, row_digests
from mlwarden.data.ingest import stage
from mlwarden.data.readers import from_table, open_file
from mlwarden.data.schema import Column, ColumnType, Schema
from mlwarden.data.tree import TreeState, tree_of
from mlwarden.store.blobs import LocalBlobStore
from tests.data import reference


def digests_of(table: pa.Table, schema: Schema | None = None) -> list[str]:
    schema = schema or infer_schema(table.schema)
    batch = conform(table.combine_chunks().to_batches()[0], schema)
    return [d.tobytes().hex() for d in row_digests(batch, schema)]


def sample(n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            "x": rng.normal(size=n),
            "name": [f"n{i % 37}-é" for i in range(n)],
            "flag": rng.integers(0, 2, n).astype(bool),
            "at": pd.date_range("2025-03-01", periods=n, freq="37s"),
        }
    )
    frame.loc[5, "x"] = np.nan
    frame.loc[6, "x"] = -0.0
    frame.loc[7, "name"] = None
    frame.loc[8, "name"] = ""
    return frame


def test_same_table_same_digests_through_every_format_and_library(tmp_path: Path) -> None:
    frame = sample()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pa_csv.write_csv(table, tmp_path / "t.csv")  # quotes strings: "" stays an empty string, not a null
    frame.drop(index=8).to_csv(tmp_path / "pandas.csv", index=False)  # pandas writes "" as a null
    frame.to_parquet(tmp_path / "t.parquet")
    pl.from_pandas(frame).write_ndjson(tmp_path / "t.jsonl")
    pl.from_pandas(frame).write_parquet(tmp_path / "t-polars.parquet")
    with ipc.new_file(str(tmp_path / "t.arrow"), table.schema) as writer:
        writer.write_table(table)
    with ipc.new_stream(str(tmp_path / "t.arrows"), table.schema) as writer:
        writer.write_table(table)
    blobs = LocalBlobStore(tmp_path / "blobs")
    sources = [
        open_file(tmp_path / name)
        for name in ("t.csv", "t.parquet", "t.jsonl", "t-polars.parquet", "t.arrow", "t.arrows")
    ]
    sources += [from_table(frame), from_table(pl.from_pandas(frame)), from_table(table)]
    roots = {source.name: stage(source, None, TreeState(), blobs).segment_tree.root().hex() for source in sources}
    assert len(set(roots.values())) == 1, roots
    from_pandas_csv = stage(open_file(tmp_path / "pandas.csv"), None, TreeState(), blobs)
    assert (
        from_pandas_csv.segment_tree.root()
        == stage(from_table(frame.drop(index=8)), None, TreeState(), blobs).segment_tree.root()
    )
    assert {s.format for s in sources} == {"csv", "parquet", "jsonl", "arrow", "pandas", "polars"}


def test_digests_match_the_reference_encoder_row_by_row() -> None:
    frame = sample(500)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    schema = infer_schema(table.schema)
    rows = [tuple(row.values()) for row in table.to_pylist()]
    assert digests_of(table) == [reference.row_digest(schema, r).hex() for r in rows]


def test_batches_larger_than_one_chunk_hash_like_small_ones() -> None:
    n = CHUNK_ROWS * 2 + 17
    table = pa.table({"i": np.arange(n), "s": [str(i % 101) for i in range(n)]})
    whole = digests_of(table)
    schema = infer_schema(table.schema)
    pieces = [digests_of(table.slice(a, 1000), schema) for a in (0, CHUNK_ROWS - 3, n - 1000)]
    assert pieces == [whole[0:1000], whole[CHUNK_ROWS - 3 : CHUNK_ROWS + 997], whole[n - 1000 :]]


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (pa.array([float("nan")]), pa.array(np.array([0x7FF8DEADBEEF0001], dtype=np.uint64).view(np.float64))),
        (pa.array([0.0]), pa.array([-0.0])),
    ],
)
def test_normalized_floats_hash_alike(left: pa.Array, right: pa.Array) -> None:
    assert digests_of(pa.table({"x": left})) == digests_of(pa.table({"x": right}))


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (pa.array([None], pa.string()), pa.array([""])),  # null is not empty
        (pa.array([None], pa.int64()), pa.array([0])),  # null is not zero
        (pa.array(["\u00e9"]), pa.array(["e\u0301"])),  # no Unicode normalization: bytes are bytes
        (pa.array([1]), pa.array([1.0])),  # the type is part of the row
        (pa.array(["1"]), pa.array([1])),
        (pa.array([True]), pa.array([1])),
        (pa.array([b"a"]), pa.array(["a"])),
    ],
)
def test_different_values_or_types_hash_apart(left: pa.Array, right: pa.Array) -> None:
    assert digests_of(pa.table({"x": left})) != digests_of(pa.table({"x": right}))


def test_string_boundaries_cannot_shift_between_columns() -> None:
    a = pa.table({"s": ["ab"], "t": ["c"]})
    b = pa.table({"s": ["a"], "t": ["bc"]})
    assert digests_of(a) != digests_of(b)


def test_column_order_is_part_of_the_digest_but_batches_are_put_in_schema_order() -> None:
    table = pa.table({"a": [1, 2], "b": ["x", "y"]})
    swapped = table.select(["b", "a"])
    assert digests_of(table) != digests_of(swapped)  # two schemas
    assert digests_of(table) == digests_of(swapped, infer_schema(table.schema))  # one schema, conformed


def test_timestamps_with_zones_are_instants() -> None:
    utc = pa.array([dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)], pa.timestamp("us", tz="UTC"))
    paris = utc.cast(pa.timestamp("ns", tz="Europe/Paris"))
    schema = infer_schema(pa.schema([("t", utc.type)]))
    assert digests_of(pa.table({"t": utc})) == digests_of(pa.table({"t": paris}), schema)


def test_integer_widths_and_decimal_scales_are_canonical() -> None:
    assert digests_of(pa.table({"i": pa.array([1, 2], pa.int8())})) == digests_of(
        pa.table({"i": pa.array([1, 2], pa.uint32())})
    )
    decimal = Schema((Column("d", ColumnType.DECIMAL, 10, 2),))
    narrow = pa.table({"d": pa.array([Decimal("1.5")], pa.decimal128(5, 1))})
    wide = pa.table({"d": pa.array([Decimal("1.50")], pa.decimal128(10, 2))})
    assert digests_of(narrow, decimal) == digests_of(wide, decimal)


def test_one_changed_row_after_row_10000_changes_the_version_digest() -> None:
    n = 12_000
    table = pa.table({"i": np.arange(n), "x": np.arange(n) / 3})
    changed = table.set_column(1, "x", pa.array(np.where(np.arange(n) == 11_000, 0.5, np.arange(n) / 3)))
    schema = infer_schema(table.schema)
    before = tree_of(np.frombuffer(b"".join(bytes.fromhex(d) for d in digests_of(table)), np.uint8).reshape(-1, 32))
    after = tree_of(
        np.frombuffer(b"".join(bytes.fromhex(d) for d in digests_of(changed, schema)), np.uint8).reshape(-1, 32)
    )
    assert before.root() != after.root()


_values = {
    ColumnType.INT: st.integers(-(2**63), 2**63 - 1),
    ColumnType.FLOAT: st.floats(allow_nan=True, allow_infinity=True),
    ColumnType.STRING: st.text(max_size=20),
    ColumnType.BOOL: st.booleans(),
    ColumnType.BINARY: st.binary(max_size=20),
}


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_property_fast_equals_reference(data: st.DataObject) -> None:
    kinds = data.draw(st.lists(st.sampled_from(sorted(_values)), min_size=1, max_size=6))
    schema = Schema(tuple(Column(f"c{i}", kind) for i, kind in enumerate(kinds)))
    rows = data.draw(st.lists(st.tuples(*[st.none() | _values[k] for k in kinds]), min_size=1, max_size=30))
    columns = {c.name: pa.array([r[i] for r in rows], c.arrow_type()) for i, c in enumerate(schema.columns)}
    assert digests_of(pa.table(columns), schema) == [reference.row_digest(schema, r).hex() for r in rows]


@pytest.mark.parametrize("engine_min", [1, 10**9])
def test_the_engine_and_the_hashlib_loop_give_the_same_digests(
    monkeypatch: pytest.MonkeyPatch, engine_min: int
) -> None:
    from mlwarden.data import sha

    table = pa.Table.from_pandas(sample(700), preserve_index=False)
    schema = infer_schema(table.schema)
    rows = [tuple(row.values()) for row in table.to_pylist()]
    monkeypatch.setattr(sha, "ENGINE_MIN_ROWS", engine_min)
    monkeypatch.setattr(sha, "ENGINE_MIN_ROWS_LOADED", engine_min)
    assert digests_of(table) == [reference.row_digest(schema, r).hex() for r in rows]
    leaves = np.frombuffer(b"".join(bytes.fromhex(d) for d in digests_of(table)), np.uint8).reshape(-1, 32)
    assert tree_of(leaves).root() == reference.merkle.root([row.tobytes() for row in leaves])
