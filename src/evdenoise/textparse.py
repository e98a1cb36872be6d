"""Reading text event files of whole numbers with every CPU: lines parsed by a compiled loop, in threads.

pandas parses a CSV/TXT file of events at the speed of its general parser (quotes, floats, missing values,
dates) and streams it through its chunked reader at a fraction of that. Event files are mostly lines of
integers, so those are read here: the byte range is cut at line ends into one part per thread, and a numba loop
(GIL released) turns each part's digits into int64 columns. A part holding anything else (a decimal point, a
sign other than a leading ``-``, quotes, a blank line, a row of another width) gives None, and the caller reads
that range through pandas as before, so odd files read exactly as they always did.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from .threads import cpu_threads

_NL, _CR, _SPACE, _TAB, _MINUS, _ZERO = 10, 13, 32, 9, 45, 48
_MAX_DIGITS = 18  # below int64's 19, so a value can never overflow


@njit(cache=True, nogil=True)
def _lines(buf: np.ndarray, start: int, stop: int) -> int:  # pragma: no cover - compiled by numba
    n = 0
    for i in range(start, stop):
        n += buf[i] == _NL
    return n


@njit(cache=True, nogil=True)
def _parse(buf: np.ndarray, start: int, stop: int, sep: int, out: np.ndarray,
           row: int) -> int:  # pragma: no cover - compiled by numba
    """Parse the lines of ``buf[start:stop]`` into ``out[:, row:]``; the rows parsed, or -1 where a byte
    falls outside lines of ``out.shape[0]`` integers separated by ``sep`` (0: runs of spaces and tabs)."""
    ncols, first = out.shape[0], row
    col, value, digits, negative, in_field = 0, 0, 0, False, False
    for i in range(start, stop + 1):
        c = buf[i] if i < stop else _NL  # the last line may lack its newline
        if i == stop and not in_field and col == 0:
            break
        if _ZERO <= c <= _ZERO + 9:
            value, digits, in_field = value * 10 + (c - _ZERO), digits + 1, True
            if digits > _MAX_DIGITS:
                return -1
            continue
        if c == _MINUS and not in_field:
            negative, in_field = True, True
            continue
        if c == _CR and i + 1 < stop and buf[i + 1] == _NL:
            continue
        field_end = c == _NL or c == sep or (sep == 0 and (c == _SPACE or c == _TAB))
        if not field_end or (in_field and digits == 0) or (c == sep and sep and not in_field):
            return -1
        ended_field = in_field  # a newline right after a field, not after a separator
        if in_field:
            if col == ncols:
                return -1
            out[col, row] = -value if negative else value
            col, value, digits, negative, in_field = col + 1, 0, 0, False, False
        if c == _NL:
            if col != ncols or (sep and not ended_field):  # a blank line, a short or long row, a trailing separator
                return -1
            row, col = row + 1, 0
    return row - first


@njit(cache=True, nogil=True)
def _line_end(buf: np.ndarray, at: int, stop: int) -> int:  # pragma: no cover - compiled by numba
    """The position just after the first newline from ``at`` on, or ``stop``."""
    for i in range(at, stop):
        if buf[i] == _NL:
            return i + 1
    return stop


def _cuts(buf: np.ndarray, start: int, stop: int, parts: int) -> list[int]:
    """Part boundaries from ``start`` to ``stop``, each just after a newline (or at ``stop``)."""
    edges = [start]
    for k in range(1, parts):
        edges.append(_line_end(buf, max(start + (stop - start) * k // parts, edges[-1]), stop))
    return [*edges, stop]


def line_end(buf: np.ndarray, at: int, stop: int | None = None) -> int:
    """The position just after the first newline of ``buf`` from ``at`` on (before ``stop``), else ``stop`` or the
    buffer's end."""
    stop = len(buf) if stop is None else min(stop, len(buf))
    return int(_line_end(buf, at, stop)) if at < stop else stop


def bytes_per_line(buf: np.ndarray, start: int, probe: int = 1 << 16) -> int:
    """About how many bytes a line takes, from the first ``probe`` bytes after ``start`` (at least 1)."""
    stop = min(len(buf), start + probe)
    return max(1, (stop - start) // max(1, int(_lines(buf, start, stop))))


def parse_integers(buf: np.ndarray, start: int, stop: int, ncols: int, sep: int) -> np.ndarray | None:
    """(ncols, rows) int64 of the lines of whole numbers in ``buf[start:stop]`` (uint8; ``start`` at a line's
    start, ``stop`` at a line end or the buffer's end), parsed in threads; None if any part is not such lines.
    ``sep``: the separator's byte, or 0 for runs of spaces and tabs."""
    edges = _cuts(buf, start, stop, max(1, min(cpu_threads(), (stop - start) >> 20)))
    spans = list(zip(edges[:-1], edges[1:]))
    with ThreadPoolExecutor(len(spans)) as pool:
        lines = list(pool.map(lambda s: _lines(buf, *s), spans))
        offsets = np.concatenate([[0], np.cumsum(lines)]).astype(int)
        out = np.empty((ncols, offsets[-1] + 1), np.int64)
        rows = list(pool.map(lambda k: _parse(buf, *spans[k], sep, out, int(offsets[k])), range(len(spans))))
    # Every part but the last ends at a newline, so it holds as many rows as newlines; the last may add one.
    if any(r < 0 for r in rows) or any(r != n for r, n in zip(rows[:-1], lines[:-1])):
        return None
    return out[:, :offsets[-2] + rows[-1]]
