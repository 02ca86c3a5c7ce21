"""One column's running profile: what ``Profiler`` keeps per column, updated batch by batch.

Every update reads each value a bounded number of times, vectorised (numpy, Arrow compute); Python
touches only per-batch results of bounded size (a frequent-items reduction to its capacity, a min and
a max). Batches are processed in slices of ``SLICE_ROWS`` so the temporaries stay a few tens of MB.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from datasketches import kll_doubles_sketch

from mlwarden.data.columns import int64_array
from mlwarden.data.schema import Column, ColumnType
from mlwarden.quality import sketches
from mlwarden.quality.profile import STRING_BOUND, ColumnProfile, Lengths, Scalar
from mlwarden.quality.sketches import FrequentItems, Moments

SLICE_ROWS = 1 << 20
MIN_HASHED_ROWS = 1 << 15  # below this a dictionary is cheap whatever the cardinality
SAMPLE_ROWS = 4096
# Values per KLL update call (~1 ms). The binding holds the GIL for a whole call, and a thread
# hashing strings that needs the GIL back would wait for the interpreter's switch interval (5 ms) at
# every step; so between calls the scan yields the GIL (``time.sleep(0)`` releases it): 5M rows x 20
# columns went from 7.4 s to 4.7 s on two cores.
KLL_CHUNK = 1 << 15

QUANTILED = frozenset(
    {
        ColumnType.INT,
        ColumnType.FLOAT,
        ColumnType.DECIMAL,
        ColumnType.DATE,
        ColumnType.TIMESTAMP,
        ColumnType.TIMESTAMP_UTC,
    }
)
NUMERIC = QUANTILED | {ColumnType.BOOL}
FREQUENT = frozenset({ColumnType.BOOL, ColumnType.INT, ColumnType.DATE, ColumnType.STRING})
VARIABLE = frozenset({ColumnType.STRING, ColumnType.BINARY})
EXACT = frozenset({ColumnType.BOOL, ColumnType.INT, ColumnType.DATE, ColumnType.TIMESTAMP, ColumnType.TIMESTAMP_UTC})
INTEGER_VIEW = {ColumnType.DATE: pa.int32(), ColumnType.TIMESTAMP: pa.int64(), ColumnType.TIMESTAMP_UTC: pa.int64()}

Labels = Callable[[npt.NDArray[np.intp]], list[str]]


class ColumnScan:
    """The mutable state behind one ``ColumnProfile``; touched by one thread at a time."""

    def __init__(self, column: Column, kll_k: int, frequent_k: int) -> None:
        self.column = column
        self.kind = column.type
        self.count = self.nulls = self.nan = self.inf = 0
        self.minimum: Scalar = None
        self.maximum: Scalar = None
        self.moments = Moments()
        self.kll = kll_doubles_sketch(kll_k) if self.kind in QUANTILED else None
        self.registers = sketches.hll_empty()
        self.frequent = FrequentItems(frequent_k) if self.kind in FREQUENT else None
        self.lengths: Lengths | None = None
        self.gil_free = self.kind in VARIABLE  # most of its work runs without the GIL (see Profiler)

    def update(self, array: pa.Array) -> None:
        for start in range(0, len(array), SLICE_ROWS):
            self._update(array.slice(start, SLICE_ROWS))

    def _update(self, array: pa.Array) -> None:
        self.count += len(array)
        self.nulls += array.null_count
        values = pc.drop_null(array) if array.null_count else array
        if not len(values):
            return
        if self.kind in NUMERIC:
            self._numeric(values)
        else:
            self._bytes(values)

    def _numeric(self, values: pa.Array) -> None:
        exact = _numbers(values, self.kind)
        floats = exact.astype(np.float64, copy=False)
        ordered = self._hash_fixed(values, floats)
        if self.kind is ColumnType.FLOAT:
            finite = np.isfinite(floats)
            nonfinite = len(floats) - int(np.count_nonzero(finite))
            if nonfinite:
                nan = int(np.count_nonzero(np.isnan(floats)))
                self.nan += nan
                self.inf += nonfinite - nan
                exact = floats = floats[finite]
        if not len(floats):
            return
        if self.kind is ColumnType.DECIMAL:  # from the decimals: Arrow's cast to double is not correctly rounded
            extremes = pc.min_max(values)
            self._extremes(_float(extremes["min"].as_py()), _float(extremes["max"].as_py()))
        else:
            convert: Callable[[Any], Scalar] = int if self.kind in EXACT else _float
            self._extremes(convert(exact.min()), convert(exact.max()))
        self.moments = self.moments.merge(Moments.of(floats))
        if self.kll is not None:
            _feed(self.kll, ordered if ordered is not None else _writable(floats))

    def _hash_fixed(self, values: pa.Array, floats: npt.NDArray[np.float64]) -> npt.NDArray[np.float64] | None:
        """Registers from every non-null value; kinds with frequent items hash their unique values only.

        Returns the values in sorted order when the counts give them for free: KLL's guarantee holds
        for any input order, and it takes sorted input ~4x faster (its compactions sort).
        """
        if self.frequent is not None:
            uniques, counts, ordered = _number_counts(values, self.kind)
            self._fold(counts, _number_labels(uniques, self.kind), self.frequent)
            sketches.hll_add(self.registers, uniques, sketches.hash_words)
            return np.repeat(uniques.astype(np.float64), counts) if ordered and self.kll is not None else None
        if self.kind is ColumnType.FLOAT:
            sketches.hll_add(self.registers, floats, sketches.hash_floats)
        elif self.kind is ColumnType.DECIMAL:
            sketches.hll_add(self.registers, _decimal_words(values), sketches.hash_decimal_words)
        else:
            sketches.hll_add(self.registers, _numbers(values, self.kind), sketches.hash_words)
        return None

    def _bytes(self, values: pa.Array) -> None:
        lengths = _view(pc.binary_length(values), np.dtype(np.int64))
        found = Lengths(int(lengths.min()), int(lengths.max()), int(lengths.sum()))
        self.lengths = found if self.lengths is None else self.lengths.merge(found)
        many = _mostly_distinct(values)
        if self.frequent is None:  # binary: neither frequent items nor a min and max
            hashes = sketches.hash_bytes(values if many else pc.unique(values))
        else:
            extremes = pc.min_max(values)
            self._extremes(extremes["min"].as_py()[:STRING_BOUND], extremes["max"].as_py()[:STRING_BOUND])
            hashes = self._count_hashes(values, self.frequent) if many else self._count(values, self.frequent)
        sketches.hll_update(self.registers, hashes)  # SHA-256 dominates: no need for cache-sized chunks

    def _count(self, values: pa.Array, frequent: FrequentItems) -> npt.NDArray[np.uint64]:
        """Exact counts of the slice's strings by dictionary encoding; returns the unique values' hashes."""
        uniques, counts = _encoded_counts(values)
        self._fold(counts, lambda at: list(uniques.take(int64_array(at)).to_pylist()), frequent)
        return sketches.hash_bytes(uniques)

    def _count_hashes(self, values: pa.Array, frequent: FrequentItems) -> npt.NDArray[np.uint64]:
        """The same counts for mostly distinct strings, by sorting every value's 64-bit hash: hashing all
        of them costs less than building a hash table of a million strings and then hashing its keys.
        Two strings would share a count only if their SHA-256 prefixes collide (~n^2 / 2^65)."""
        hashes = sketches.hash_bytes(values)
        uniques, counts = np.unique(hashes, return_counts=True)
        self._fold(counts.astype(np.int64), _hash_labels(values, hashes, uniques), frequent)
        return uniques

    def _fold(self, counts: npt.NDArray[np.int64], labels: Labels, frequent: FrequentItems) -> None:
        self.frequent = frequent.merge(FrequentItems.of_counts(counts, labels, frequent.capacity))

    def _extremes(self, low: Scalar, high: Scalar) -> None:
        self.minimum = low if self.minimum is None else min(self.minimum, low)  # type: ignore[type-var]
        self.maximum = high if self.maximum is None else max(self.maximum, high)  # type: ignore[type-var]

    def result(self) -> ColumnProfile:
        moments = self.moments
        return ColumnProfile(
            name=self.column.name,
            type=self.column.type_name,
            count=self.count,
            nulls=self.nulls,
            nan=self.nan,
            inf=self.inf,
            minimum=self.minimum,
            maximum=self.maximum,
            mean=moments.mean if moments.n else None,
            variance=moments.variance,
            quantiles=bytes(self.kll.serialize()) if self.kll is not None else None,
            distinct=self.registers.tobytes(),
            frequent=self.frequent,
            lengths=self.lengths,
        )


SHARING = threading.Event()  # set while a profiler's worker threads run: only then is yielding worth it


def _feed(sketch: Any, floats: npt.NDArray[np.float64]) -> None:
    """Update a KLL sketch, yielding the GIL between calls when other profiling threads wait for it (see
    ``KLL_CHUNK``); ``time.sleep(0)`` costs ~75 us, so a lone thread does not pay it."""
    if not SHARING.is_set():
        sketch.update(floats)
        return
    for start in range(0, len(floats), KLL_CHUNK):
        sketch.update(floats[start : start + KLL_CHUNK])
        time.sleep(0)


def _writable(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The array itself when writable and contiguous, else a copy: the sketch's binding refuses
    read-only arrays, which is what Arrow's zero-copy views are."""
    if values.flags.writeable and values.flags.c_contiguous:
        return values
    return np.array(values, dtype=np.float64)


def _float(value: Any) -> float:
    return float(value) + 0.0  # -0.0 becomes 0.0: min and max must not depend on the merge order


def _numbers(values: pa.Array, kind: ColumnType) -> npt.NDArray[Any]:
    """A null-free numeric array as numpy: ints, days and microseconds exactly, decimals as doubles."""
    if kind is ColumnType.DECIMAL:
        values = pc.cast(values, pa.float64())
    elif kind is ColumnType.BOOL:
        values = pc.cast(values, pa.int8())
    elif kind in INTEGER_VIEW:
        values = values.view(INTEGER_VIEW[kind])
    floating = pa.types.is_floating(values.type)
    return _view(values, np.dtype(np.float64 if floating else f"int{values.type.bit_width}"))


def _view(values: pa.Array, dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """A null-free fixed-width array's values, read-only, straight from its data buffer (no copy)."""
    if values.null_count:
        raise ValueError("expected no nulls")
    data = values.buffers()[1]
    if data is None or not len(values):
        return np.empty(0, dtype=dtype)
    return np.frombuffer(data, dtype=dtype, count=values.offset + len(values))[values.offset :]


def _decimal_words(values: pa.Array) -> npt.NDArray[np.uint64]:
    """The (n, 2) little-endian words of a null-free decimal128 array's unscaled values."""
    count = (values.offset + len(values)) * 2
    words = np.frombuffer(values.buffers()[1], dtype="<u8", count=count)[values.offset * 2 :]
    return words.reshape(-1, 2).astype(np.uint64, copy=False)


def _encoded_counts(values: pa.Array) -> tuple[pa.Array, npt.NDArray[np.int64]]:
    """(unique values, their counts): dictionary encoding plus a bincount of the indices is ~1.5x
    faster than Arrow's ``value_counts``."""
    encoded = pc.dictionary_encode(values)
    indices = _view(encoded.indices, np.dtype(np.int32))
    return encoded.dictionary, np.bincount(indices, minlength=len(encoded.dictionary)).astype(np.int64)


def _mostly_distinct(values: pa.Array) -> bool:
    """Whether a large slice looks mostly distinct (ids, free text), where counting by sorting every
    value's hash beats a dictionary (a speed choice only: both give the same summary).

    Judged by the birthday paradox on ``SAMPLE_ROWS`` evenly spaced values: s values drawn from D
    equally likely ones repeat ~s^2 / 2D times, so fewer than s^2 / n repeats means D > n / 2.
    """
    n = len(values)
    if n < MIN_HASHED_ROWS:
        return False
    sample = values.take(int64_array(np.linspace(0, n - 1, SAMPLE_ROWS)))
    repeats = SAMPLE_ROWS - int(pc.count_distinct(sample).as_py())
    return repeats * n < SAMPLE_ROWS * SAMPLE_ROWS


def _hash_labels(values: pa.Array, hashes: npt.NDArray[np.uint64], uniques: npt.NDArray[np.uint64]) -> Labels:
    """Labels for positions into the sorted unique hashes: the first value with each wanted hash."""

    def labels(at: npt.NDArray[np.intp]) -> list[str]:
        if not len(at):
            return []
        wanted = uniques[at]  # sorted, since positions come in increasing order
        slot = np.minimum(np.searchsorted(wanted, hashes), len(wanted) - 1)
        rows = np.flatnonzero(wanted[slot] == hashes)
        _, first = np.unique(slot[rows], return_index=True)
        return list(values.take(int64_array(rows[first])).to_pylist())

    return labels


def _number_counts(values: pa.Array, kind: ColumnType) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], bool]:
    """(unique values as int64, their counts, whether the uniques are sorted) of a null-free bool, int
    or date array.

    Values in a narrow range (flags, codes, small counts, dates) are counted with one bincount, ~3x
    faster than any hash table; wide-ranged ones fall back to dictionary encoding (and are sorted if few).
    """
    numbers = _numbers(values, kind).astype(np.int64, copy=False)
    low, high = int(numbers.min()), int(numbers.max())
    if high - low < 2 * len(numbers) + 4096:
        counts = np.bincount(numbers - low, minlength=high - low + 1)
        present = np.flatnonzero(counts)
        return present.astype(np.int64) + low, counts[present].astype(np.int64), True
    encoded, counts = _encoded_counts(values)
    uniques = _numbers(encoded, kind).astype(np.int64, copy=False)
    if len(uniques) * 8 > len(numbers):
        return uniques, counts, False
    order = np.argsort(uniques)
    return uniques[order], counts[order], True


def _number_labels(numbers: npt.NDArray[np.int64], kind: ColumnType) -> Labels:
    """How the frequent items name values: canonical text ("true", "42", "2024-01-31")."""
    if kind is ColumnType.BOOL:
        return lambda at: ["true" if v else "false" for v in numbers[at].tolist()]
    if kind is ColumnType.DATE:
        return lambda at: list(np.datetime_as_string(numbers[at].astype("datetime64[D]")).tolist())
    return lambda at: [str(v) for v in numbers[at].tolist()]
