"""A file's raw event arrays converted to ``Events``' dtypes, with what validation needs, in one compiled call.

Readers hand over arrays of whatever dtype the file holds; checking them with NumPy one property at a time took
seven passes (bounds, polarity, order, then the conversions), more than reading the file itself. This kernel
does it all per part of the arrays, the parts split over threads (numba, GIL released), straight from the
reader's buffers (strided fields of a memory-mapped .npy too); an array already of its target type is not
copied. ``events._validated`` turns the facts into errors.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numba import njit

from .threads import cpu_threads

_PARALLEL_FROM = 1 << 16  # fewer events are scanned in the calling thread: a pool costs more than it saves
_BIG = np.int64(1 << 62)


@dataclass(frozen=True)
class Scan:
    """The converted arrays (t int64 with the offset added, x/y uint16, p int8 ±1) and what was seen."""

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    p: np.ndarray
    low: tuple[int, int, int]  # least x, y, p
    high: tuple[int, int, int]  # largest x, y, p
    p_zero: bool  # some p == 0
    decreases: int  # how many t are below their predecessor


@njit(cache=True, nogil=True)
def _scan_part(t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray, offset: int, k: int, parts: int,
               out: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], write: tuple[bool, bool, bool],
               facts: np.ndarray) -> None:  # pragma: no cover - compiled by numba
    """Part ``k`` of ``parts``: converted values into ``out`` (t, x, y only where ``write`` says; p always); x, y,
    p lows and highs, the count of p == 0 and
    of decreasing t into ``facts[k]``. The loops run over slices from 0 (numba then drops its negative-index
    check, and they vectorise: 4x faster); the part's first t is compared with the last of the part before."""
    n = len(t)
    lo, hi = n * k // parts, n * (k + 1) // parts
    dec = np.int64(0 < lo < hi and t[lo] < t[lo - 1])
    t, x, y, p = t[lo:hi], x[lo:hi], y[lo:hi], p[lo:hi]
    ot, ox, oy, op = out[0][lo:hi], out[1][lo:hi], out[2][lo:hi], out[3][lo:hi]
    xl, yl, pl, xh, yh, ph, zero = _BIG, _BIG, _BIG, -_BIG, -_BIG, -_BIG, 0
    for i in range(len(t)):
        xi, yi, pi = np.int64(x[i]), np.int64(y[i]), np.int64(p[i])
        xl, xh, yl, yh, pl, ph = min(xl, xi), max(xh, xi), min(yl, yi), max(yh, yi), min(pl, pi), max(ph, pi)
        zero += pi == 0
    for i in range(1, len(t)):
        dec += t[i] < t[i - 1]
    if write[0]:  # each conversion a loop of its own: a test inside one loop stops it vectorising
        for i in range(len(t)):
            ot[i] = np.int64(t[i]) + offset
    if write[1]:
        for i in range(len(t)):
            ox[i] = np.uint16(x[i])
    if write[2]:
        for i in range(len(t)):
            oy[i] = np.uint16(y[i])
    for i in range(len(t)):
        op[i] = (p[i] > 0) * 2 - 1
    facts[k, 0], facts[k, 1], facts[k, 2], facts[k, 3] = xl, yl, pl, xh
    facts[k, 4], facts[k, 5], facts[k, 6], facts[k, 7] = yh, ph, zero, dec


def scan_events(t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray, offset: int = 0) -> Scan:
    """Convert and inspect four equally long one-dimensional numeric arrays (floats must hold whole numbers,
    but p) in one compiled call."""
    n = len(t)
    # numba reads native byte order only; a big-endian file's arrays are swapped first (a copy, rare)
    t, x, y, p = (a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("=")) for a in (t, x, y, p))
    # An array already of its target type, with no offset to add, is handed on as it is, not copied (most readers
    # give t, x, y so).
    targets = ((t, np.int64, offset), (x, np.uint16, 0), (y, np.uint16, 0))
    write = tuple(not (a.dtype == dtype and a.flags.c_contiguous and not shift) for a, dtype, shift in targets)
    out = (*(np.empty(n if w else 0, dtype) for w, (_, dtype, _) in zip(write, targets)), np.empty(n, np.int8))
    if p.dtype.kind == "b":
        p = p.view(np.uint8)
    parts = max(1, min(cpu_threads(), n // _PARALLEL_FROM))
    facts = np.zeros((parts, 8), np.int64)
    scan = lambda k: _scan_part(t, x, y, p, np.int64(offset), k, parts, out, write, facts)  # noqa: E731
    if parts == 1:
        scan(0)
    else:
        with ThreadPoolExecutor(parts) as pool:
            list(pool.map(scan, range(parts)))
    low, high = facts[:, :3].min(axis=0), facts[:, 3:6].max(axis=0)
    arrays = [o if w else a for o, w, a in zip(out, write, (t, x, y))]
    return Scan(*arrays, out[3], low=tuple(map(int, low)), high=tuple(map(int, high)), p_zero=bool(facts[:, 6].any()),
                decreases=int(facts[:, 7].sum()))
