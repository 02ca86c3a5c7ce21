"""Bottom-k samples: exactly the k rows with the smallest keys, however the rows arrive."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from mlwarden.quality.sample import KEY, BottomK, merge_samples, without_key


def batches(sizes: list[int]) -> list[pa.RecordBatch]:
    start, out = 0, []
    for n in sizes:
        out.append(
            pa.record_batch({"row": np.arange(start, start + n), "text": [f"r{i}" for i in range(start, start + n)]})
        )
        start += n
    return out


def expected(sizes: list[int], capacity: int, seed: int) -> list[int]:
    keys = np.random.default_rng(seed).random(sum(sizes))
    return sorted(np.argsort(keys)[:capacity].tolist(), key=lambda i: keys[i])


@pytest.mark.parametrize("sizes", [[10], [700], [300, 5, 900, 1], [50] * 30, [2_500, 40]])
def test_the_sample_is_the_rows_with_the_k_smallest_keys(sizes: list[int]) -> None:
    sample = BottomK(200, seed=7)
    for batch in batches(sizes):
        sample.add(batch)
    table = sample.table()
    assert table is not None
    # the keys are one stream of draws, so they do not depend on how the rows were cut into batches
    assert table.column("row").to_pylist() == expected(sizes, 200, 7)
    keys = table.column(KEY).to_pylist()
    assert keys == sorted(keys) and table.column("text").to_pylist() == [
        f"r{i}" for i in table.column("row").to_pylist()
    ]
    assert without_key(table).column_names == ["row", "text"]


def test_merging_samples_gives_the_sample_of_the_union() -> None:
    left, right, both = BottomK(100, seed=1), BottomK(100, seed=2), []
    for sample, sizes in ((left, [400, 30]), (right, [90, 800])):
        for batch in batches(sizes):
            sample.add(batch)
        both.append(sample.table())
    merged = merge_samples([t for t in both if t is not None], 100)
    assert merged is not None
    union = pa.concat_tables([t for t in both if t is not None])
    smallest = sorted(union.column(KEY).to_pylist())[:100]
    assert merged.column(KEY).to_pylist() == smallest
    assert merge_samples([], 100) is None
