"""The hash engine: plain SHA-256, from DataFusion's compiled core alone."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest

from mlwarden.data import sha


def _binary(values: list[bytes]) -> pa.Array:
    return pa.array(values, pa.large_binary())


@pytest.mark.parametrize("columns", [1, 3])
def test_the_engine_hashes_the_concatenation_of_each_row(monkeypatch: pytest.MonkeyPatch, columns: int) -> None:
    monkeypatch.setattr(sha, "ENGINE_MIN_ROWS", 1)
    rng = np.random.default_rng(7)
    rows = [[rng.bytes(int(rng.integers(0, 90))) for _ in range(columns)] for _ in range(500)]
    digests = sha.sha256_concat([_binary([row[c] for row in rows]) for c in range(columns)])
    assert [d.tobytes() for d in digests] == [hashlib.sha256(b"".join(row)).digest() for row in rows]


def test_a_fixed_width_matrix_hashes_row_by_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sha, "ENGINE_MIN_ROWS", 1)
    matrix = np.random.default_rng(3).integers(0, 256, size=(2_000, 65), dtype=np.uint8)
    assert [d.tobytes() for d in sha.sha256_rows(matrix)] == [hashlib.sha256(r.tobytes()).digest() for r in matrix]


def test_the_engine_loads_without_pandas_or_the_datafusion_package() -> None:
    """The Python package around the core imports pandas (~0.3 s of every large ingest): it stays unloaded,
    and a later ``import datafusion`` in the same process still works, on the same core."""
    script = textwrap.dedent(
        """
        import hashlib, sys
        import numpy as np
        from mlwarden.data import sha
        matrix = np.arange(40_000 * 16, dtype=np.uint8).reshape(40_000, 16)
        got = sha.sha256_rows(matrix)
        assert got[123].tobytes() == hashlib.sha256(matrix[123].tobytes()).digest()
        assert "pandas" not in sys.modules, "pandas was imported"
        assert "datafusion" not in sys.modules, "the datafusion package was imported"
        core = sys.modules["datafusion._internal"]
        import datafusion
        assert datafusion.SessionContext().sql("select 41 + 1 as x").to_pydict() == {"x": [42]}
        assert sys.modules["datafusion._internal"] is core
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_small_batches_never_load_the_engine() -> None:
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        from mlwarden.data import sha
        sha.sha256_rows(np.zeros((sha.ENGINE_MIN_ROWS - 1, 8), dtype=np.uint8))
        assert "datafusion._internal" not in sys.modules
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
