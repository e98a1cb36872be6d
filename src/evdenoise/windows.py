"""Fixed-length time windows over event streams: make, split, merge.

Windows are half-open ``[start, end)`` intervals of ``segment_us`` microseconds laid
end to end. A noisy/clean pair is split on the *noisy* stream's windows so that the
two sides of every training pair cover exactly the same time span.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from .defaults import GRID, SEGMENT_US
from .events import Events

GRIDS = ("relative", "absolute")


@dataclass(frozen=True, eq=False)
class Windows:
    """``S`` windows ``[start[i], end[i])`` of equal length, sorted and non-overlapping.

    ``partial[i]`` marks a window the data does not fully cover: the last window when the
    stream ends before the window does, and (absolute grid only) a first window that starts
    before the stream's first event.
    """

    start: np.ndarray  # int64 (S,)
    end: np.ndarray  # int64 (S,) = start + segment_us
    partial: np.ndarray  # bool (S,)
    grid: str = GRID

    def __post_init__(self) -> None:
        start = np.asarray(self.start, dtype=np.int64).reshape(-1)
        end = np.asarray(self.end, dtype=np.int64).reshape(-1)
        partial = np.asarray(self.partial, dtype=bool).reshape(-1)
        if not (len(start) == len(end) == len(partial)):
            raise ValueError(f"windows: start/end/partial lengths differ ({len(start)}, {len(end)}, {len(partial)})")
        length = end - start
        if len(start) and (length[0] <= 0 or np.any(length != length[0])):
            raise ValueError("windows must all have the same positive length")
        if len(start) > 1 and np.any(start[1:] < end[:-1]):
            raise ValueError("windows must be sorted and must not overlap")
        if self.grid not in GRIDS:
            raise ValueError(f"grid must be one of {GRIDS}, got {self.grid!r}")
        # Canonical dtypes, still frozen for callers.
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        object.__setattr__(self, "partial", partial)

    def __len__(self) -> int:
        return int(self.start.shape[0])

    @property
    def segment_us(self) -> int:
        """Window length in µs (0 when there are no windows)."""
        return int(self.end[0] - self.start[0]) if len(self) else 0

    def locate(self, t: np.ndarray) -> np.ndarray:
        """Index of the window holding each timestamp, -1 where no window holds it."""
        t = np.asarray(t, dtype=np.int64)
        if len(self) == 1:  # common single-window case: two comparisons, no search
            return np.where((t >= self.start[0]) & (t < self.end[0]), 0, -1)
        idx = np.searchsorted(self.start, t, side="right") - 1
        inside = idx >= 0
        inside[inside] = t[inside] < self.end[idx[inside]]
        return np.where(inside, idx, -1)

    def select(self, index: int | slice | np.ndarray) -> Windows:
        """A subset of the windows (``index`` as for numpy; an int keeps one window)."""
        if isinstance(index, (int, np.integer)):
            index = slice(int(index), int(index) + 1 or None)
        return Windows(self.start[index], self.end[index], self.partial[index], self.grid)

    def equals(self, other: Windows) -> bool:
        return self.grid == other.grid and all(
            np.array_equal(getattr(self, f), getattr(other, f)) for f in ("start", "end", "partial"))

    @staticmethod
    def empty(grid: str = GRID) -> Windows:
        return Windows(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool), grid)


def make_windows(t_first: int, t_last: int, segment_us: int = SEGMENT_US, grid: str = GRID) -> Windows:
    """Windows covering timestamps ``t_first..t_last`` (both inclusive).

    ``grid="relative"`` starts the first window at ``t_first``; ``"absolute"`` puts window
    starts on multiples of ``segment_us``. The last window is kept even when the data stops
    before its end, and flagged partial. E.g. t in [t0, t0 + 99999] gives 5 full 20 ms windows.
    """
    t_first, t_last, segment_us = int(t_first), int(t_last), int(segment_us)
    _check_grid(segment_us, grid)
    if t_last < t_first:
        raise ValueError(f"t_last ({t_last}) is before t_first ({t_first})")
    origin = window_origin(t_first, segment_us, grid)
    count = (t_last - origin) // segment_us + 1
    return windows_at(np.arange(count, dtype=np.int64), t_first, t_last, segment_us, grid)


def _check_grid(segment_us: int, grid: str) -> None:
    if segment_us <= 0:
        raise ValueError(f"segment_us must be positive, got {segment_us}")
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")


def _window_ids(t: np.ndarray, origin: int, segment_us: int) -> tuple[np.ndarray, np.ndarray]:
    """(the grid numbers of the windows a sorted ``t`` falls in, the index of each one's first event)."""
    ids = (t - origin) // segment_us
    first = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, np.int64)
    return ids[first], first


def window_origin(t_first: int, segment_us: int, grid: str) -> int:
    """Start of window 0: the first event (relative grid) or the multiple of ``segment_us`` below it."""
    return int(t_first) if grid == "relative" else (int(t_first) // segment_us) * segment_us


def windows_at(index: np.ndarray, t_first: int, t_last: int, segment_us: int, grid: str) -> Windows:
    """The windows numbered ``index`` (sorted) of the grid over a stream spanning ``t_first..t_last``."""
    start = window_origin(t_first, segment_us, grid) + segment_us * np.asarray(index, dtype=np.int64)
    end = start + segment_us
    # A window is partial when the data does not reach both of its ends.
    partial = (end > t_last + 1) | (start < t_first)
    return Windows(start, end, partial, grid)


def window_chunks(blocks: Iterable[Events], t_first: int, t_last: int, segment_us: int, grid: str,
                  chunk: int) -> Iterator[tuple[Windows, Events]]:
    """Consecutive runs of ``chunk`` windows *holding events* and their events, from a sorted stream read in blocks.

    Windows without events are never made, so a gap of days costs nothing; the runs depend only on the
    stream, not on how it was cut into blocks (an in-memory stream is one block).
    """
    origin = window_origin(t_first, segment_us, grid)
    carry: list[Events] = []
    for block, last in _with_last(blocks):
        events = Events.concatenate([*carry, block])
        ids, first = _window_ids(events.t, origin, segment_us)
        # Hold back the last window (the next block may continue it) and any run shorter than ``chunk``.
        ready = len(ids) if last else (len(ids) - 1) // chunk * chunk
        for i in range(0, ready, chunk):
            stop = first[i + chunk] if i + chunk < len(ids) else len(events)
            yield windows_at(ids[i:i + chunk], t_first, t_last, segment_us, grid), events.select(slice(first[i], stop))
        carry = [events.select(slice(first[ready], None))] if ready < len(ids) else []


def _with_last(items: Iterable[Events]) -> Iterator[tuple[Events, bool]]:
    it = iter(items)
    previous = next(it, None)
    for item in it:
        yield previous, False
        previous = item
    if previous is not None:
        yield previous, True


def windows_for(events: Events, segment_us: int = SEGMENT_US, grid: str = GRID) -> Windows:
    """The windows of a sorted event stream's grid that hold events (those :func:`window_chunks` makes); no
    events give no windows. Windows without events are left out, so a gap of days in a recording costs nothing
    (no window table, no voxels, no metrics rows per empty window)."""
    if len(events) == 0:
        return Windows.empty(grid)
    t_first, t_last, segment_us = int(events.t[0]), int(events.t[-1]), int(segment_us)
    _check_grid(segment_us, grid)
    ids, _ = _window_ids(events.t, window_origin(t_first, segment_us, grid), segment_us)
    return windows_at(ids, t_first, t_last, segment_us, grid)


def split(events: Events, windows: Windows) -> list[Events]:
    """Events of each window (sorted stream; events outside every window are dropped)."""
    bounds = np.searchsorted(events.t, np.stack([windows.start, windows.end]), side="left")
    return [events.select(slice(int(i0), int(i1))) for i0, i1 in bounds.T]


def split_pair(noisy: Events, clean: Events, segment_us: int = SEGMENT_US, grid: str = GRID
               ) -> tuple[Windows, list[Events], list[Events]]:
    """Split a noisy/clean pair on the noisy stream's windows so both sides align.

    Clean events outside the noisy stream's windows are dropped.
    """
    if (noisy.width, noisy.height) != (clean.width, clean.height):
        raise ValueError(f"noisy sensor {noisy.width}x{noisy.height} differs from clean "
                         f"{clean.width}x{clean.height}")
    windows = windows_for(noisy, segment_us, grid)
    return windows, split(noisy, windows), split(clean, windows)


def merge(parts: Sequence[Events], width: int | None = None, height: int | None = None) -> Events:
    """Concatenate per-window streams back into one (inverse of :func:`split`).

    Parts must be in window order; ``width``/``height`` are needed only when ``parts`` is empty.
    """
    parts = list(parts)
    if any((p.width, p.height) != (parts[0].width, parts[0].height) for p in parts):
        raise ValueError("cannot merge parts recorded on different sensor sizes")
    merged = Events.concatenate(parts, width, height)
    if len(merged) > 1 and np.any(np.diff(merged.t) < 0):
        raise ValueError("merged parts are not in time order (pass them in window order)")
    return merged
