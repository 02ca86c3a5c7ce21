"""Bad input files get a clear InputError (or ContractMismatch) and nothing else."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlwarden.data import readers
from mlwarden.data.columns import conform, infer_schema
from mlwarden.data.ingest import stage
from mlwarden.data.readers import detect_format, from_table, open_file
from mlwarden.data.schema import ColumnType
from mlwarden.data.tree import TreeState
from mlwarden.errors import ContractMismatch, InputError
from mlwarden.store.blobs import LocalBlobStore


def staged(path: Path, tmp_path: Path) -> object:
    return stage(open_file(path), None, TreeState(), LocalBlobStore(tmp_path / "blobs"))


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "is empty"),
        ("header-only.csv", b"a,b\n", "has no rows"),
        ("ragged.csv", b"a,b\n1,2\n3,4,5\n", "Expected 2 columns"),
        ("latin1.csv", b"name\ncaf\xe9\n", "UTF-8"),
        ("dup.csv", b"a,a\n1,2\n", "duplicate column"),
        ("truncated.parquet", b"PAR1\x00\x00\x00", "parquet"),
        ("bad.jsonl", b'{"a": 1}\n{"a": \n', "jsonl"),
        ("not-arrow.arrow", b"ARROW1\x00\x00garbage", "arrow"),
    ],
)
def test_bad_files_are_input_errors(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        staged(write(tmp_path / name, content), tmp_path)


def test_leftover_staging_files_are_removed_after_a_failure(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    source = open_file(write(tmp_path / "late.csv", late_type_change()))
    with pytest.raises(InputError):
        stage(source, None, TreeState(), blobs)
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []
    assert list((tmp_path / "blobs" / "sha256").iterdir()) == []


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "BLOCK_SIZE", 4096)


def late_type_change() -> bytes:
    """A CSV whose column looks like ints for more than one block, then holds a float."""
    return b"n\n" + b"1\n" * (readers.BLOCK_SIZE // 2 + 10) + b"1.5\n"


def test_a_type_change_after_the_first_block_is_explained(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="conversion error to int64: invalid value '1.5'") as caught:
        staged(write(tmp_path / "late.csv", late_type_change()), tmp_path)
    assert "inferred from the first rows" in caught.value.hint


def test_a_directory_or_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a readable file"):
        open_file(tmp_path)
    with pytest.raises(InputError, match="not a readable file"):
        open_file(tmp_path / "missing.csv")


def test_format_is_told_by_content_not_by_name(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1]}), tmp_path / "data.csv")
    write(tmp_path / "data.parquet", b"a\n1\n")
    assert detect_format(tmp_path / "data.csv") == "parquet"
    assert detect_format(tmp_path / "data.parquet") == "csv"


def test_unsupported_column_types_are_refused() -> None:
    with pytest.raises(ContractMismatch, match="unsupported type"):
        infer_schema(pa.schema([("l", pa.list_(pa.int64()))]))


def test_unsupported_objects_and_unconvertible_frames() -> None:
    with pytest.raises(InputError, match="cannot ingest a dict"):
        from_table({"a": [1]})
    with pytest.raises(InputError, match="cannot be converted"):
        from_table(pd.DataFrame({"mixed": [1, "two", 3.0]}))


def test_an_all_null_column_is_text_until_proven_otherwise(tmp_path: Path) -> None:
    result = stage(
        open_file(write(tmp_path / "n.csv", b"a,b\n1,\n2,\n")), None, TreeState(), LocalBlobStore(tmp_path / "b")
    )
    assert result.schema.column("b").type is ColumnType.STRING


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (pa.table({"a": [1]}), "missing column"),
        (pa.table({"a": [1], "b": ["x"], "c": [2]}), "unexpected column"),
        (pa.table({"a": ["one"], "b": ["x"]}), "'a' is int"),
        (pa.table({"a": [1.5], "b": ["x"]}), "do not fit int"),
    ],
)
def test_batches_breaking_the_contract(batch: pa.Table, message: str) -> None:
    schema = infer_schema(pa.schema([("a", pa.int64()), ("b", pa.string())]))
    with pytest.raises(ContractMismatch, match=message):
        conform(batch.to_batches()[0], schema)


def test_lossless_conversions_are_accepted() -> None:
    schema = infer_schema(pa.schema([("a", pa.int64()), ("b", pa.float64())]))
    batch = conform(pa.table({"b": [1, 2], "a": [1.0, 2.0]}).to_batches()[0], schema)
    assert batch.schema == schema.arrow_schema()
    assert batch.column(0).to_pylist() == [1, 2]
