"""Mergeable percentile sketches for rollups: DDSketch buckets at 1 % relative error.

The bucket of a value is the `ddsketch` library's `LogarithmicMapping` key (γ = 1.0202 for
α = 0.01): every value in a bucket is within 1 % of the value the bucket stands for, so a
percentile read from merged buckets is within 1 % of the exact nearest-rank percentile of the
same values. Values at or below the mapping's smallest (0 and below) go to a zero count.

Stored compactly (little-endian): int32 lowest key, uint32 zero count, then one uint32 count per
key from the lowest to the highest — decoded with `numpy.frombuffer`, merged by adding counts.
`to_ddsketch` gives the library's own sketch of the same buckets.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence

import numpy as np
from ddsketch import DDSketch
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.mapping import LogarithmicMapping
from ddsketch.store import DenseStore

RELATIVE_ACCURACY = 0.01
MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
_LN_GAMMA = float(np.log(MAPPING.gamma))
_HEADER = struct.Struct("<iI")
_EMPTY = b""
_FEW = 16


def keys_of(values: np.ndarray) -> np.ndarray:
    """The mapping's bucket key of each value above its smallest (`MAPPING.key`, vectorised)."""
    return np.ceil(np.log(values) / _LN_GAMMA).astype(np.int64)


def _encode_few(values: Sequence[float]) -> bytes:
    """`encode` for a handful of values, without numpy's per-call cost."""
    counts: dict[int, int] = {}
    zeros = 0
    for value in values:
        if value > MAPPING.min_possible:
            key = math.ceil(math.log(value) / _LN_GAMMA)
            counts[key] = counts.get(key, 0) + 1
        else:
            zeros += 1
    if not counts:
        return _HEADER.pack(0, zeros)
    low = min(counts)
    body = [0] * (max(counts) - low + 1)
    for key, count in counts.items():
        body[key - low] = count
    return _HEADER.pack(low, zeros) + struct.pack(f"<{len(body)}I", *body)


def encode(values: Sequence[float] | np.ndarray) -> bytes:
    """The sketch of `values` (no value: empty bytes)."""
    if isinstance(values, list) and len(values) <= _FEW:
        return _encode_few(values) if values else _EMPTY
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return _EMPTY
    positive = array[array > MAPPING.min_possible]
    zeros = int(array.size - positive.size)
    if positive.size == 0:
        return _HEADER.pack(0, zeros)
    keys = keys_of(positive)
    low = int(keys.min())
    counts = np.bincount(keys - low).astype("<u4")
    return _HEADER.pack(low, zeros) + counts.tobytes()


class Merged:
    """Buckets added up from many encoded sketches; `values_at_ranks` reads percentiles. Adding
    only keeps the bytes; they are decoded together, in a few numpy operations, when read."""

    def __init__(self) -> None:
        self._blobs: list[bytes] = []
        self._resolved: tuple[int, int, np.ndarray] | None = None

    def add(self, blob: bytes | None) -> None:
        if blob:
            self._blobs.append(blob)
            self._resolved = None

    def absorb(self, other: Merged) -> None:
        """Add every sketch `other` holds."""
        if other._blobs:
            self._blobs += other._blobs
            self._resolved = None

    def add_values(self, values: Iterable[float]) -> None:
        self.add(encode(np.fromiter(values, dtype=np.float64)))

    def _resolve(self) -> tuple[int, int, np.ndarray]:
        """(zero count, lowest key, count per key from it) of every sketch added."""
        if self._resolved is None:
            zeros, lows, sizes, bodies = 0, [], [], []
            for blob in self._blobs:
                low, zero = _HEADER.unpack_from(blob)
                zeros += zero
                if len(blob) > _HEADER.size:
                    lows.append(low)
                    sizes.append((len(blob) - _HEADER.size) // 4)
                    bodies.append(blob[_HEADER.size:])
            if not lows:
                self._resolved = (zeros, 0, np.zeros(0, dtype=np.int64))
            else:
                counts = np.frombuffer(b"".join(bodies), dtype="<u4")
                low_keys, size = np.asarray(lows, dtype=np.int64), np.asarray(sizes)
                base = int(low_keys.min())
                starts = np.cumsum(size) - size
                index = np.arange(counts.size) - np.repeat(starts - (low_keys - base), size)
                self._resolved = (zeros, base,
                                  np.bincount(index, weights=counts).astype(np.int64))
        return self._resolved

    def counts(self) -> tuple[int, np.ndarray]:
        """(lowest key, count per key from it) of every sketch added."""
        _zeros, low, total = self._resolve()
        return low, total

    @property
    def zeros(self) -> int:
        return self._resolve()[0]

    @property
    def count(self) -> int:
        zeros, _low, total = self._resolve()
        return zeros + int(total.sum())

    def values_at_ranks(self, ranks: Sequence[int]) -> list[float]:
        """The values at 1-based `ranks` (nearest-rank positions), each within 1 %."""
        low, counts = self.counts()
        cumulative = np.cumsum(counts)
        out = []
        for rank in ranks:
            if rank <= self.zeros:
                out.append(0.0)
                continue
            index = int(np.searchsorted(cumulative, rank - self.zeros, side="left"))
            out.append(float(MAPPING.value(low + index)))
        return out

    def encoded(self) -> bytes | None:
        """The merged buckets in `encode`'s form (None: nothing added), so hours store what
        their minutes add up to; zero counts at either end are left out."""
        if not self._blobs:
            return None
        if len(self._blobs) == 1:
            return self._blobs[0]
        zeros, low, counts = self._resolve()
        used = np.flatnonzero(counts)
        if used.size == 0:
            return _HEADER.pack(0, zeros)
        body = counts[used[0]:used[-1] + 1].astype("<u4")
        return _HEADER.pack(low + int(used[0]), zeros) + body.tobytes()

    def to_ddsketch(self) -> BaseDDSketch:
        """The same buckets as the library's sketch (its quantiles, merge and protobuf form)."""
        low, counts = self.counts()
        store = DenseStore()
        for offset in np.flatnonzero(counts):
            store.add(low + int(offset), float(counts[offset]))
        return BaseDDSketch(mapping=MAPPING, store=store, negative_store=DenseStore(),
                            zero_count=float(self.zeros))


def library_sketch(values: Iterable[float]) -> DDSketch:
    """The library's own sketch of `values` (what tests compare `Merged` with)."""
    sketch = DDSketch(RELATIVE_ACCURACY)
    for value in values:
        sketch.add(value)
    return sketch
