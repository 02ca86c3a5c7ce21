"""Column profiles: one pass over Arrow batches, mergeable, stored as JSON with each dataset version.

A profile of two tables merges into the profile of their union: counts, nulls, NaN, infinities, min and
max exactly; mean and variance up to rounding; HyperLogLog registers exactly; frequent items and
quantiles within their sketches' documented error (``sketches``). So profiles are built per batch,
per partition or per worker and combined in any order, and a version's profile is its parent's merged
with the appended rows'.

What each column type gets (values of a type are numbers where that makes sense):

=============  ========================  ========  ========  =======  ===========================
type           min/max, mean/variance    KLL       frequent  lengths  HyperLogLog hashes
=============  ========================  ========  ========  =======  ===========================
bool           0/1                       -         yes       -        0/1
int            exact ints                yes       yes       -        int64
float          finite values only        yes       -         -        canonical bits (one NaN)
decimal        as doubles                yes       -         -        16-byte unscaled value
date           days since 1970-01-01     yes       yes       -        days
timestamp(s)   microseconds since epoch  yes       -         -        microseconds
string         lexicographic min/max     -         yes       bytes    SHA-256 of the UTF-8
binary         -                         -         -         bytes    SHA-256 of the bytes
=============  ========================  ========  ========  =======  ===========================

String min/max keep their first ``STRING_BOUND`` characters (truncation is monotone, so merging
stays exact) so that one huge value cannot bloat every stored profile.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mlwarden.data.schema import Schema
from mlwarden.errors import ContractMismatch, InputError
from mlwarden.quality import sketches
from mlwarden.quality.sketches import FREQUENT_K, HLL_REGISTERS, KLL_K, FrequentItems, Moments

if TYPE_CHECKING:
    from mlwarden.quality._scan import ColumnScan

PROFILE_VERSION = 1
STRING_BOUND = 256
PARALLEL_MIN_VALUES = 1 << 18  # below this many values per batch, threads cost more than they save

Scalar = float | int | str | None


class ProfileError(InputError, ValueError):
    """A profile cannot be read or merged: malformed JSON, an unknown version, or different columns."""


@dataclass(frozen=True)
class Lengths:
    """Byte lengths of a string or binary column's non-null values."""

    minimum: int
    maximum: int
    total: int

    def merge(self, other: Lengths | None) -> Lengths:
        if other is None:
            return self
        return Lengths(min(self.minimum, other.minimum), max(self.maximum, other.maximum), self.total + other.total)


@dataclass(frozen=True)
class ColumnProfile:
    """The summary of one column; see the module docstring for what each type gets.

    ``quantiles`` is a serialized KLL sketch of the finite values (None for types without one);
    ``distinct`` the HyperLogLog registers; ``frequent`` a Misra-Gries summary; ``lengths`` byte
    lengths. ``mean``/``variance`` (population) are None when there is no finite value.
    """

    name: str
    type: str
    count: int = 0
    nulls: int = 0
    nan: int = 0
    inf: int = 0
    minimum: Scalar = None
    maximum: Scalar = None
    mean: float | None = None
    variance: float | None = None
    quantiles: bytes | None = None
    distinct: bytes = field(default=bytes(HLL_REGISTERS), repr=False)
    frequent: FrequentItems | None = None
    lengths: Lengths | None = None

    @property
    def finite(self) -> int:
        """Non-null values that are not NaN or infinite: the ones moments and quantiles describe."""
        return self.count - self.nulls - self.nan - self.inf

    def _sketch(self) -> Any:
        """The KLL sketch, or None if there is no value to ask about. Loaded afresh on each call
        (~40 us with its checks): a cached one would be shared mutable state (the library sorts
        lazily on queries) and would not pickle, e.g. to send a profile between Dask workers."""
        if self.quantiles is None:
            return None
        sketch = sketches.kll_load(self.quantiles)
        return None if sketch.is_empty() else sketch

    def quantile(self, q: float) -> float | None:
        """The value at normalized rank q (0..1), within ``sketches.kll_error()`` in rank; None if no values."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"a quantile's rank must be between 0 and 1, not {q}")
        sketch = self._sketch()
        return None if sketch is None else float(sketch.get_quantile(q))

    def rank(self, x: float) -> float | None:
        """The approximate fraction of finite values below x; None if there are none."""
        sketch = self._sketch()
        return None if sketch is None else float(sketch.get_rank(x))

    def histogram(self, bins: int = 20) -> list[tuple[float, float, float]]:
        """Equal-width bins between the smallest and largest finite value as (low, high, fraction);
        each fraction is within the sketch's rank error. Empty when there is no finite value."""
        sketch = self._sketch()
        if sketch is None or bins < 1:
            return []
        low, high = float(sketch.get_min_value()), float(sketch.get_max_value())
        # A convex combination of low and high: (high - low) would overflow for -1e308..1e308.
        inner = (low * (1 - i / bins) + high * (i / bins) for i in range(1, bins))
        edges = sorted({low, high} | {min(max(edge, low), high) for edge in inner})
        if len(edges) < 2:
            return [(low, high, 1.0)]
        masses = sketch.get_pmf(edges[1:-1]) if len(edges) > 2 else [1.0]
        return [(edges[i], edges[i + 1], float(m)) for i, m in enumerate(masses)]

    def distinct_estimate(self) -> float:
        """Distinct non-null values: exact when the frequent items never had to drop one (error 0),
        else the HyperLogLog estimate (relative standard error ~1.6%), capped at the non-null count."""
        if self.frequent is not None and self.frequent.error == 0:
            return float(len(self.frequent.items))
        return min(sketches.hll_estimate(self.distinct), float(self.count - self.nulls))

    def top(self, k: int) -> list[tuple[str, int, int]]:
        """The k most frequent values as (value, lower bound, upper bound) of their counts."""
        return self.frequent.top(k) if self.frequent is not None else []

    def merge(self, other: ColumnProfile) -> ColumnProfile:
        """The profile of both columns' values together."""
        if (self.name, self.type) != (other.name, other.type):
            raise ProfileError(f"cannot merge column {self.name!r} ({self.type}) with {other.name!r} ({other.type})")
        moments = _moments(self).merge(_moments(other))
        quantiles = None
        if self.quantiles is not None and other.quantiles is not None:
            quantiles = sketches.kll_merge(self.quantiles, other.quantiles)
        frequent = None
        if self.frequent is not None and other.frequent is not None:
            frequent = _merge_frequent(self.frequent, other.frequent)
        return ColumnProfile(
            name=self.name,
            type=self.type,
            count=self.count + other.count,
            nulls=self.nulls + other.nulls,
            nan=self.nan + other.nan,
            inf=self.inf + other.inf,
            minimum=_pick(min, self.minimum, other.minimum),
            maximum=_pick(max, self.maximum, other.maximum),
            mean=moments.mean if moments.n else None,
            variance=moments.variance,
            quantiles=quantiles,
            distinct=sketches.hll_merge(self.distinct, other.distinct),
            frequent=frequent,
            lengths=other.lengths if self.lengths is None else self.lengths.merge(other.lengths),
        )


def _moments(column: ColumnProfile) -> Moments:
    if column.mean is None or column.variance is None or column.finite <= 0:
        return Moments()
    return Moments(column.finite, column.mean, column.variance * column.finite)


def _merge_frequent(a: FrequentItems, b: FrequentItems) -> FrequentItems:
    try:
        return a.merge(b)
    except ValueError as exc:
        raise ProfileError(str(exc)) from None


def _pick(choose: Any, a: Scalar, b: Scalar) -> Scalar:
    if a is None:
        return b
    if b is None:
        return a
    return choose(a, b)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Profile:
    """Per-column summaries of a table: stored as JSON with each dataset version, mergeable."""

    rows: int
    columns: tuple[ColumnProfile, ...]

    def column(self, name: str) -> ColumnProfile:
        for column in self.columns:
            if column.name == name:
                return column
        raise ProfileError(f"the profile has no column {name!r}", hint="columns: " + ", ".join(self._names()))

    def _names(self) -> list[str]:
        return [c.name for c in self.columns]

    def merge(self, other: Profile) -> Profile:
        """The profile of both tables' rows; they must have the same columns, in order, of the same types."""
        mine = [(c.name, c.type) for c in self.columns]
        theirs = [(c.name, c.type) for c in other.columns]
        if mine != theirs:
            raise ProfileError(
                "cannot merge profiles of different schemas",
                hint=f"one has {_describe(mine)}, the other {_describe(theirs)}",
            )
        columns = tuple(a.merge(b) for a, b in zip(self.columns, other.columns, strict=True))
        return Profile(self.rows + other.rows, columns)

    def to_json(self) -> dict[str, Any]:
        """The stored form (``"version": 1``); strict JSON: no NaN or Infinity literals."""
        from mlwarden.quality import _codec  # imported here: it imports this module

        return _codec.profile_to_json(self)

    @classmethod
    def from_json(cls, data: Any) -> Profile:
        """Read the stored form back; anything malformed raises ``ProfileError`` (a ``ValueError``)."""
        from mlwarden.quality import _codec

        return _codec.profile_from_json(data)

    def summary(self) -> dict[str, Any]:
        """Per column: counts, min, max, mean, std, p01..p99, distinct and the top 5 values (JSON-able)."""
        from mlwarden.quality import _report

        return _report.summary(self)


def _describe(columns: list[tuple[str, str]]) -> str:
    text = ", ".join(f"{name} {kind}" for name, kind in columns)
    return text if len(text) <= 200 else text[:197] + "..."


class Profiler:
    """Profiles a table incrementally: ``add`` conformed batches any number of times, then ``result``.

    Memory stays bounded whatever the row count: per column a KLL sketch (~5 KB), 4 KB of registers,
    at most ``frequent_k`` counters and a few numbers; large batches are processed in slices.

    Columns of a large batch are profiled on several threads, string and binary columns preferably
    on the workers: their heavy steps (dictionary encoding, SHA-256) run in Arrow and DataFusion
    without the GIL, whereas KLL updates hold it (the binding does not release it; see
    ``_scan.KLL_CHUNK`` for how the scan yields it).
    """

    def __init__(
        self, schema: Schema, *, kll_k: int = KLL_K, frequent_k: int = FREQUENT_K, threads: int | None = None
    ) -> None:
        if frequent_k < 1 or not 8 <= kll_k <= 65535:
            raise ValueError(f"frequent_k must be at least 1 and kll_k in 8..65535, not {frequent_k}, {kll_k}")
        from mlwarden.quality._scan import ColumnScan

        self._schema = schema
        self._types = [c.arrow_type() for c in schema.columns]
        self._scans = [ColumnScan(column, kll_k, frequent_k) for column in schema.columns]
        self._threads = threads if threads is not None else _default_threads()
        self._rows = 0
        self._failed = False

    def add(self, batch: pa.RecordBatch) -> None:
        """Fold in a batch already conformed to the schema (``mlwarden.data.columns.conform``)."""
        self._check(batch)
        # String and binary columns first: worker threads take tasks from the front, this thread
        # from the back, so the GIL-free work goes to the workers and the load balances itself.
        tasks = deque(sorted(zip(self._scans, batch.columns, strict=True), key=lambda task: not task[0].gil_free))
        workers = min(self._threads - 1, len(tasks) - 1)
        self._failed = True  # until every column took the batch: a half-added batch spoils the profile
        if workers < 1 or batch.num_rows * len(tasks) < PARALLEL_MIN_VALUES:
            _drain(tasks.pop)
        else:
            from mlwarden.quality._scan import SHARING

            SHARING.set()
            try:
                with ThreadPoolExecutor(workers, "mlwarden-profile") as pool:
                    futures = [pool.submit(_drain, tasks.popleft) for _ in range(workers)]
                    _drain(tasks.pop)
                    for future in futures:
                        future.result()
            finally:
                SHARING.clear()
        self._rows += batch.num_rows
        self._failed = False

    def _check(self, batch: pa.RecordBatch) -> None:
        if self._failed:
            raise RuntimeError("an earlier add() failed part-way: this profiler's state is inconsistent")
        names, types = batch.schema.names, list(batch.schema.types)
        if names != self._schema.names or types != self._types:
            raise ContractMismatch(
                "the batch does not have the profiled schema's columns and canonical types",
                hint="conform it first with mlwarden.data.columns.conform(batch, schema)",
            )

    def result(self) -> Profile:
        """The profile of every row added so far (the profiler can go on adding afterwards)."""
        if self._failed:
            raise RuntimeError("an earlier add() failed part-way: this profiler's state is inconsistent")
        return Profile(self._rows, tuple(scan.result() for scan in self._scans))


def _drain(take: Callable[[], tuple[ColumnScan, pa.Array]]) -> None:
    """Update columns with their arrays until no task is left (``deque`` pops are atomic)."""
    while True:
        try:
            scan, array = take()
        except IndexError:
            return
        scan.update(array)


def _default_threads() -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, 4))


def profile_batches(batches: Iterable[pa.RecordBatch], schema: Schema) -> Profile:
    """The profile of all rows of ``batches`` (each conformed to ``schema``), in one pass."""
    profiler = Profiler(schema)
    for batch in batches:
        profiler.add(batch)
    return profiler.result()


def profile_html(profile: Profile, title: str) -> str:
    """A self-contained HTML page (no script, no external asset): per column its summary and a histogram."""
    from mlwarden.quality import _report

    return _report.html(profile, title)
