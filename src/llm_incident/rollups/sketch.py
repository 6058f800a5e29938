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


def keys_of(values: np.ndarray) -> np.ndarray:
    """The mapping's bucket key of each value above its smallest (`MAPPING.key`, vectorised)."""
    return np.ceil(np.log(values) / _LN_GAMMA).astype(np.int64)


def encode(values: Sequence[float] | np.ndarray) -> bytes:
    """The sketch of `values` (no value: empty bytes)."""
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
    """Buckets added up from many encoded sketches; `value_at_rank` reads a percentile."""

    def __init__(self) -> None:
        self._parts: list[tuple[int, np.ndarray]] = []
        self.zeros = 0

    def add(self, blob: bytes | None) -> None:
        if not blob:
            return
        low, zeros = _HEADER.unpack_from(blob)
        self.zeros += zeros
        if len(blob) > _HEADER.size:
            self._parts.append((low, np.frombuffer(blob, dtype="<u4", offset=_HEADER.size)))

    def add_values(self, values: Iterable[float]) -> None:
        self.add(encode(np.fromiter(values, dtype=np.float64)))

    def counts(self) -> tuple[int, np.ndarray]:
        """(lowest key, count per key from it) of every part added."""
        if not self._parts:
            return 0, np.zeros(0, dtype=np.int64)
        low = min(p[0] for p in self._parts)
        high = max(p[0] + len(p[1]) for p in self._parts)
        total = np.zeros(high - low, dtype=np.int64)
        for start, counts in self._parts:
            total[start - low:start - low + len(counts)] += counts
        return low, total

    @property
    def count(self) -> int:
        return self.zeros + sum(int(c.sum()) for _s, c in self._parts)

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
