"""Mergeable summaries behind column profiles: KLL quantiles, HyperLogLog, Misra-Gries, moments.

Each summary of two parts merges into the summary of their union, so a profile can be built per batch,
per partition or per worker and combined in any order:

* **Moments** (count, mean, M2) merge with Chan, Golub & LeVeque's parallel update: exact up to
  floating-point rounding.
* **HyperLogLog** registers merge by elementwise max: the merge of the parts' registers *is* the
  registers of the whole, bit for bit.
* **Misra-Gries** frequent items merge as in Agarwal et al., "Mergeable Summaries" (PODS 2012): every
  reported count is a lower bound and at most ``error`` below the truth.
* **KLL** quantile sketches are Apache DataSketches' (``kll_doubles_sketch``), randomized, merged by
  the library; the error is the sketch's documented normalized rank error (``kll_error``: 1.33% at
  k = 200 with 99% confidence), independent of n and of how many merges.

The hashes that feed HyperLogLog are part of the stored format: they must give the same registers on
every machine and in every version (``splitmix64`` and SHA-256 below; never ``hash()`` or a seeded
engine hash), or registers written by two versions would merge into nonsense.
"""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from datasketches import kll_doubles_sketch

from mlwarden.data.sha import sha256_concat

U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]

KLL_K = 200  # ~1.33% normalized rank error at 99% confidence (kll_error below), ~5 KB serialized
FREQUENT_K = 64
HLL_P = 12
HLL_REGISTERS = 1 << HLL_P
HLL_MAX_RANK = 64 - HLL_P + 1  # the rank of a hash whose 52 low bits are all zero
# Relative standard error of the estimate (Flajolet et al. 2007; Ertl 2017 keeps it over the whole range).
HLL_RELATIVE_ERROR = 1.04 / math.sqrt(HLL_REGISTERS)
HASH_CHUNK = 1 << 14  # values hashed per step: the temporaries stay in cache (2x faster than 1M at once)

_LOW_BITS = np.uint64((1 << (64 - HLL_P)) - 1)
_CANONICAL_NAN = np.uint64(0x7FF8000000000000)


# --- stable 64-bit hashes -------------------------------------------------------------------------


def splitmix64(words: U64) -> U64:
    """SplitMix64's output function (Steele, Lea & Flood, OOPSLA 2014; Vigna's reference ``splitmix64.c``).

    A fixed bijection of 64-bit words with good avalanche, in wrapping uint64 arithmetic, so it is the
    same on every machine. It adds the golden-ratio increment first: unlike the bare murmur3 finalizer,
    it does not map 0 to 0 (a zero would land in the highest HyperLogLog rank).
    """
    z = words + np.uint64(0x9E3779B97F4A7C15)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def hash_words(words: npt.NDArray[Any]) -> U64:
    """Hashes of 8-byte payloads (int64, days, microseconds, 0/1) as two's complement words."""
    return splitmix64(np.asarray(words).astype(np.int64, copy=False).view(np.uint64))


def hash_floats(values: F64) -> U64:
    """Hashes of IEEE 754 doubles after mapping -0.0 to +0.0 and every NaN to one NaN (as row digests do)."""
    bits = (values + 0.0).view(np.uint64)  # -0.0 + 0.0 is +0.0 (IEEE 754); a new array, safe to write
    nan = np.isnan(values)
    if nan.any():
        bits[nan] = _CANONICAL_NAN
    return splitmix64(bits)


def hash_decimal_words(words: U64) -> U64:
    """Hashes of 16-byte decimals given as (n, 2) little-endian words (low, high)."""
    return splitmix64(words[:, 0] ^ splitmix64(words[:, 1]))


def hash_bytes(values: pa.Array) -> U64:
    """The first 8 bytes (little-endian) of SHA-256 of each value of a string or binary array, no nulls.

    SHA-256 (FIPS 180-4) is the one byte-string hash that is both stable by definition and vectorised
    here (DataFusion's kernel, ~10M short values per second); callers hash a slice's unique values, or
    every value of a mostly distinct slice (where that is cheaper than finding the unique ones).
    """
    digests = sha256_concat([values.cast(pa.large_binary())])
    return np.ascontiguousarray(digests[:, :8]).view("<u8").reshape(-1).astype(np.uint64, copy=False)


# --- HyperLogLog ----------------------------------------------------------------------------------


def hll_empty() -> npt.NDArray[np.uint8]:
    return np.zeros(HLL_REGISTERS, dtype=np.uint8)


def hll_add(registers: npt.NDArray[np.uint8], values: npt.NDArray[Any], hasher: Callable[[Any], U64]) -> None:
    """Hash ``values`` (along the first axis) with ``hasher`` and fold them in, a cache-sized chunk at a time."""
    for start in range(0, len(values), HASH_CHUNK):
        hll_update(registers, hasher(values[start : start + HASH_CHUNK]))


def hll_update(registers: npt.NDArray[np.uint8], hashes: U64) -> None:
    """Fold 64-bit hashes into the registers, in place (Flajolet et al. 2007, with a 64-bit hash).

    The top ``HLL_P`` bits pick the register; the rank is one plus the leading zeros of the other 52
    bits, read off ``frexp``'s exponent (exact: a 52-bit integer is exactly a double). ``np.maximum.at``
    takes ~1.3 ns per value on numpy 2 (it had a slow generic path before numpy 1.25).
    """
    index = (hashes >> np.uint64(64 - HLL_P)).view(np.int64)
    _, exponent = np.frexp((hashes & _LOW_BITS).astype(np.float64))
    rank = (HLL_MAX_RANK - exponent).astype(np.uint8)
    np.maximum.at(registers, index, rank)


def hll_merge(a: bytes, b: bytes) -> bytes:
    """The registers of the union: elementwise max, so merging parts gives the whole exactly."""
    return np.maximum(np.frombuffer(a, np.uint8), np.frombuffer(b, np.uint8)).tobytes()


def hll_estimate(registers: bytes) -> float:
    """Ertl's improved raw estimator ("New cardinality estimation algorithms for HyperLogLog sketches",
    2017, algorithm 6): unbiased from 0 to far beyond 2^32 without the linear-counting switch or bias
    tables of the original, relative standard error ~``HLL_RELATIVE_ERROR`` (1.6% at p = 12)."""
    m = HLL_REGISTERS
    histogram = np.bincount(np.frombuffer(registers, np.uint8), minlength=HLL_MAX_RANK + 1).tolist()
    z = m * _tau(1.0 - histogram[HLL_MAX_RANK] / m)
    for k in range(HLL_MAX_RANK - 1, 0, -1):
        z = 0.5 * (z + histogram[k])
    z += m * _sigma(histogram[0] / m)
    return float(m * m / (2.0 * math.log(2.0)) / z)


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        previous, z = z, z + x * y
        y += y
        if z == previous:
            return z


def _tau(x: float) -> float:
    if x in (0.0, 1.0):
        return 0.0
    y, z = 1.0, 1.0 - x
    while True:
        x = math.sqrt(x)
        previous = z
        y *= 0.5
        z -= (1.0 - x) ** 2 * y
        if z == previous:
            return z / 3.0


# --- Misra-Gries frequent items -------------------------------------------------------------------


@dataclass(frozen=True)
class FrequentItems:
    """A Misra-Gries summary of at most ``capacity`` counters, mergeable (Agarwal et al. 2012).

    Each reduction subtracts the (capacity+1)-th largest count from every counter and drops those left
    at zero or below; ``error`` is the sum of what was subtracted. So a value's true count lies in
    ``[count, count + error]`` (count 0 for an absent value), and since each reduction removes at least
    capacity+1 times what it adds to ``error``, ``error <= n / (capacity + 1)``: every value with more
    than n/(capacity+1) occurrences is always present. ``error == 0`` means the counts are exact and
    complete. Items are sorted by count (descending), then value, so equal inputs give equal summaries.
    """

    capacity: int = FREQUENT_K
    error: int = 0
    items: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of_counts(
        cls, counts: npt.NDArray[np.int64], labels: Callable[[npt.NDArray[np.intp]], list[str]], capacity: int
    ) -> FrequentItems:
        """The summary of exact counts of distinct values; ``labels`` names the values at given positions.

        Only the kept positions are labelled, so a million distinct values cost one partition, not a
        million Python strings.
        """
        threshold = 0
        if len(counts) > capacity:
            threshold = _largest(counts, capacity + 1)
            keep = np.flatnonzero(counts > threshold)
        else:
            keep = np.arange(len(counts), dtype=np.intp)
        kept = (counts[keep] - threshold).tolist()
        return cls.of_pairs(capacity, threshold, zip(labels(keep), kept, strict=True))

    @classmethod
    def of_pairs(cls, capacity: int, error: int, pairs: Iterable[tuple[str, int]]) -> FrequentItems:
        """A summary of (value, count) counters, dropping non-positive counts, in canonical order."""
        items = sorted(((value, int(count)) for value, count in pairs if count > 0), key=lambda vc: (-vc[1], vc[0]))
        return cls(capacity, error, tuple(items))

    def merge(self, other: FrequentItems) -> FrequentItems:
        """Add the counters, then reduce to ``capacity`` again; the errors add up, plus the reduction's."""
        if self.capacity != other.capacity:
            raise ValueError(f"cannot merge frequent items of capacity {self.capacity} and {other.capacity}")
        counters = dict(self.items)
        for value, count in other.items:
            counters[value] = counters.get(value, 0) + count
        threshold = 0
        if len(counters) > self.capacity:
            threshold = sorted(counters.values(), reverse=True)[self.capacity]
        pairs = ((value, count - threshold) for value, count in counters.items())
        return self.of_pairs(self.capacity, self.error + other.error + threshold, pairs)

    def bounds(self, value: str) -> tuple[int, int]:
        """Guaranteed (lower, upper) bounds of the value's true count."""
        count = dict(self.items).get(value, 0)
        return count, count + self.error

    def top(self, k: int) -> list[tuple[str, int, int]]:
        """The k largest counters as (value, lower bound, upper bound)."""
        return [(value, count, count + self.error) for value, count in self.items[: max(k, 0)]]


def _largest(counts: npt.NDArray[np.int64], rank: int) -> int:
    """The rank-th largest of positive counts (rank <= len(counts)).

    From a histogram of the counts: O(n + max count), and a few ms for a million counts, where
    ``np.partition`` takes ~60 ms on the mostly-equal counts of a high-cardinality column.
    """
    histogram = np.bincount(counts)
    at_least = np.cumsum(histogram[::-1])  # at_least[j]: how many counts are >= max - j
    return int(len(histogram) - 1 - np.searchsorted(at_least, rank))


# --- moments --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Moments:
    """Count, mean and M2 (sum of squared deviations) of finite values; population variance M2/n."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    @classmethod
    def of(cls, values: F64) -> Moments:
        if not len(values):
            return cls()
        with np.errstate(over="ignore", invalid="ignore"):
            mean = float(np.mean(values))
            if not math.isfinite(mean):  # the sum overflowed; the mean itself always fits
                scale = float(np.max(np.abs(values)))
                mean = float(np.mean(values / scale)) * scale
            deviations = values - mean
            m2 = float(np.square(deviations, out=deviations).sum())  # not np.dot: BLAS threads spin
        return cls(len(values), mean, m2)

    def merge(self, other: Moments) -> Moments:
        """Chan, Golub & LeVeque (1979): exact in real arithmetic, order independent up to rounding.

        The mean is a convex combination (it cannot overflow); M2 adds the between-part term.
        """
        if not other.n:
            return self
        if not self.n:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean * (self.n / n) + other.mean * (other.n / n)
        m2 = self.m2 + other.m2 + delta * delta * (self.n * other.n / n)
        return Moments(n, mean, m2)

    @property
    def variance(self) -> float | None:
        return self.m2 / self.n if self.n else None


# --- KLL ------------------------------------------------------------------------------------------


def kll_error(k: int = KLL_K) -> float:
    """The normalized rank error of single-rank queries (quantile, rank) at 99% confidence: a value
    returned for rank q has a true rank within q +- this. It does not grow with n or with merges."""
    return float(kll_doubles_sketch.get_normalized_rank_error(k, False))


def kll_load(data: bytes) -> Any:
    """A serialized sketch, or ``ValueError`` for bytes that are not a well-formed one.

    The bytes are checked here first (``check_kll``): the library's deserializer trusts the level
    offsets it reads, and crafted or corrupted bytes crash the interpreter (found by fuzzing).
    """
    try:
        check_kll(data)
    except struct.error as exc:
        raise ValueError(f"malformed KLL sketch: {exc}") from None
    try:
        return kll_doubles_sketch.deserialize(data)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise ValueError(f"not a serialized KLL sketch: {exc}") from None


_KLL_FAMILY = 15
_KLL_M = 8
_KLL_FULL_HEADER = 20


def check_kll(data: bytes) -> None:
    """Validate a serialized ``kll_doubles_sketch`` (DataSketches' format: 8-byte preamble; then for a
    sketch of two or more items n, min k, the level offsets, min, max and the retained items)."""
    if len(data) < 8:
        raise ValueError("a KLL sketch has at least 8 bytes")
    preamble, version, family, flags, k, m = struct.unpack_from("<BBBBHB", data)
    if family != _KLL_FAMILY or m != _KLL_M or k < 8 or flags & ~0b111:
        raise ValueError("not a KLL doubles sketch (family, k, m or flags)")
    if flags & 1:  # empty
        if (preamble, len(data), flags & 0b100) != (2, 8, 0):
            raise ValueError("malformed empty KLL sketch")
        return
    if flags & 0b100:  # a single item
        if (preamble, version, len(data)) != (2, 2, 16) or not math.isfinite(struct.unpack_from("<d", data, 8)[0]):
            raise ValueError("malformed single-item KLL sketch")
        return
    if (preamble, version) != (5, 1) or len(data) < _KLL_FULL_HEADER:
        raise ValueError("malformed KLL sketch preamble")
    n, min_k, num_levels = struct.unpack_from("<QHB", data, 8)
    if not 1 <= num_levels <= 61 or not 8 <= min_k <= k:
        raise ValueError("malformed KLL sketch: levels or min k out of range")
    capacity = _kll_capacity(k, num_levels)
    items_at = _KLL_FULL_HEADER + 4 * num_levels + 16
    if len(data) < items_at:
        raise ValueError("malformed KLL sketch: truncated")
    levels = [*struct.unpack_from(f"<{num_levels}I", data, _KLL_FULL_HEADER), capacity]
    if any(a > b for a, b in itertools.pairwise(levels)) or levels[0] >= capacity:
        raise ValueError("malformed KLL sketch: level offsets")
    if len(data) != items_at + 8 * (capacity - levels[0]):
        raise ValueError("malformed KLL sketch: size does not match its levels")
    if n != sum((b - a) << i for i, (a, b) in enumerate(itertools.pairwise(levels))):
        raise ValueError("malformed KLL sketch: n does not match the retained weights")
    _check_kll_items(data, items_at - 16, levels, sorted_zero=bool(flags & 0b10))


def _check_kll_items(data: bytes, at: int, levels: list[int], *, sorted_zero: bool) -> None:
    low, high = struct.unpack_from("<dd", data, at)
    items = np.frombuffer(data, dtype="<f8", offset=at + 16)
    if not (np.isfinite(items).all() and math.isfinite(low) and math.isfinite(high)):
        raise ValueError("malformed KLL sketch: non-finite values")
    if len(items) and (items.min() < low or items.max() > high):
        raise ValueError("malformed KLL sketch: items outside its min and max")
    for level, (a, b) in enumerate(itertools.pairwise(levels)):
        segment = items[a - levels[0] : b - levels[0]]
        if (level or sorted_zero) and (segment[1:] < segment[:-1]).any():
            raise ValueError("malformed KLL sketch: a level is not sorted")


def _kll_capacity(k: int, num_levels: int) -> int:
    """Total item capacity of a sketch with this many levels (``kll_helper::compute_total_capacity``)."""
    return sum(max(_KLL_M, _kll_level_capacity(k, num_levels - height - 1)) for height in range(num_levels))


def _kll_level_capacity(k: int, depth: int) -> int:
    if depth <= 30:  # 2k scaled by (2/3)^depth, rounded half up, in integers as the C++ does
        return int((((2 * k) << depth) // 3**depth + 1) >> 1)
    half = depth // 2
    return _kll_level_capacity(_kll_level_capacity(k, half), depth - half)


def kll_merge(a: bytes, b: bytes) -> bytes:
    sketch = kll_load(a)
    sketch.merge(kll_load(b))
    return bytes(sketch.serialize())
