"""Voxel grids back to events.

Strategies (all deterministic given ``seed``; output sorted by t):

- ``"sample"``: round each cell to a count n (polarity from the sign for C=1, from the
  channel for C=2) and draw n timestamps uniformly inside the cell's time bin
  (E-Deflare's decoder, vectorised with ``np.repeat``).
- ``"spread"``: the same counts, timestamps evenly spaced inside the bin.
- ``"mask"``: keep a subset of the *input* events. In each cell (nearest bin) holding n input
  events, keep round(r * n) of them chosen at random, r = predicted / input value clipped
  to [0, 1] (C=1: the cell's signed input sum; a cell whose input sum is 0 keeps all its
  events). Kept events keep their exact timestamps.

Bin b of a window ``[t0, t1)`` with B bins holds the integer timestamps t with
``floor((t - t0) * B / (t1 - t0)) == b``, so ``sample``/``spread`` output re-encodes (nearest)
to the rounded voxel exactly.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from .events import Events, read_attrs
from .voxel import VoxelSpec
from .windows import Windows

STRATEGIES = ("sample", "spread", "mask")
_DROPPED_ATTRS = ("width", "height", "producer", "t_offset")  # rewritten by write_events / baked into t


def _stable_argsort(key: np.ndarray) -> np.ndarray:
    """Stable argsort of non-negative integers: LSD radix sort over 16-bit digits.

    numpy's stable sort is a radix sort for 16-bit keys; a few such passes beat timsort on
    the int64 keys used here (timestamps within a recording, cell indices).
    """
    top = int(key.max()) if len(key) else 0
    order = None
    shift = 0
    while True:
        digit = ((key >> shift) & 0xFFFF).astype(np.uint16)
        order = np.argsort(digit, kind="stable") if order is None else order[np.argsort(digit[order], kind="stable")]
        shift += 16
        if top >> shift == 0:
            return order


def _check(vox: np.ndarray, windows: Windows, spec: VoxelSpec | None) -> np.ndarray:
    vox = np.asarray(vox)
    if vox.ndim != 5 or vox.shape[1] not in (1, 2):
        raise ValueError(f"voxels must be (S, C, B, H, W) with C in (1, 2), got shape {vox.shape}")
    if vox.shape[0] != len(windows):
        raise ValueError(f"{vox.shape[0]} voxel grids for {len(windows)} windows")
    if spec is not None and vox.shape[1:3] != (spec.channels, spec.bins):
        raise ValueError(f"voxel shape {vox.shape} does not match {spec}")
    if len(windows) and windows.segment_us < vox.shape[2]:
        raise ValueError(f"windows of {windows.segment_us} µs cannot hold {vox.shape[2]} bins of >= 1 µs")
    return vox


def _from_counts(vox: np.ndarray, windows: Windows, strategy: str, rng: np.random.Generator) -> Events:
    """``sample``/``spread``: rebuild events from rounded cell counts."""
    S, C, B, H, W = vox.shape
    flat = vox.reshape(-1)
    # Cells that round to at least one event; the bool mask makes flatnonzero fast, and only
    # these cells get rounded (a cell at exactly 0.5 rounds to an even 0 and adds nothing).
    nonzero = flat >= 0.5
    if C == 1:
        nonzero |= flat <= -0.5
    cells = np.flatnonzero(nonzero)
    n = np.abs(np.rint(flat[cells])).astype(np.int64)
    # Per-plane tables (plane = (s * C + c) * B + b): bin start, bin width, polarity. Integer
    # bin edges match encode's floor((t - t0) * B / span).
    s, c, b = np.unravel_index(np.arange(S * C * B), (S, C, B))
    span = windows.end[s] - windows.start[s]
    lo_tab = (b * span + B - 1) // B
    width_tab = ((b + 1) * span + B - 1) // B - lo_tab
    lo_tab += windows.start[s]
    if C == 1:  # a non-zero count has the sign of the voxel value
        p = np.where(vox.reshape(-1)[cells] > 0, 1, -1).astype(np.int8)
    plane = cells // (H * W)
    if C == 2:
        p = (1 - 2 * c).astype(np.int8)[plane]
    pixel = cells - plane * (H * W)
    y = pixel // W
    x = (pixel - y * W).astype(np.uint16)
    y = y.astype(np.uint16)
    total = int(n.sum())
    t = np.repeat(lo_tab[plane], n)
    width = np.repeat(width_tab[plane], n)
    if strategy == "sample":
        offset = rng.random(total)
        offset *= width
        t += offset.astype(np.int64)
    else:
        rank = np.arange(total, dtype=np.int64)
        rank -= np.repeat(np.cumsum(n) - n, n)
        rank *= 2
        rank += 1
        rank *= width
        rank //= 2 * np.repeat(n, n)
        t += rank
    order = _stable_argsort(t - t.min()) if total else np.zeros(0, np.int64)
    return Events(t[order], np.repeat(x, n)[order], np.repeat(y, n)[order], np.repeat(p, n)[order], W, H)


def _mask(vox: np.ndarray, windows: Windows, events_in: Events, rng: np.random.Generator) -> Events:
    """``mask``: keep round(r * n) of the n input events of every cell."""
    S, C, B, H, W = vox.shape
    if (events_in.width, events_in.height) != (W, H):
        raise ValueError(f"input events are {events_in.width}x{events_in.height}, voxels are {W}x{H}")
    window = windows.locate(events_in.t)
    inside = window >= 0
    ev = events_in
    if not inside.all():
        ev, window = ev.select(inside), window[inside]
    # All windows have one length, so bin and cell maths divide by scalars only; int32 cell
    # indices halve the memory traffic of the scatter/gathers below when they fit.
    B_, span = np.int64(B), np.int64(windows.segment_us)
    itype = np.int32 if vox.size < 2**31 else np.int64
    b = ((ev.t - windows.start[window]) * B_ // span).astype(itype)
    plane = (window.astype(itype) * C + (ev.p < 0).astype(itype) * (C - 1)) * B + b
    cell = (plane * H + ev.y) * W + ev.x
    # Everything below is per event (gathers from the cell grids), not per cell of the grid.
    n_in = np.bincount(cell, minlength=vox.size)[cell]
    value_in = n_in if C == 2 else np.bincount(cell, weights=ev.p, minlength=vox.size)[cell]
    pred = vox.reshape(-1)[cell]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(value_in != 0, np.clip(pred / value_in, 0.0, 1.0), 1.0)
    keep_n = np.rint(ratio * n_in).astype(np.int64)
    keep = keep_n == n_in  # cells kept whole
    mixed = np.flatnonzero((keep_n > 0) & ~keep)
    if len(mixed):
        # Random choice inside each partly kept cell: shuffle, group by cell, keep the first k.
        shuffled = mixed[rng.permutation(len(mixed))]
        order = shuffled[_stable_argsort(cell[shuffled])]
        grouped = cell[order]
        first = np.r_[True, grouped[1:] != grouped[:-1]]
        group_start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
        keep[order] = np.arange(len(order)) - group_start < keep_n[order]
    return ev.select(keep)


def decode_windows(vox: np.ndarray, windows: Windows, strategy: str, *, events_in: Events | None = None,
                   spec: VoxelSpec | None = None, seed: int = 0) -> Events:
    """Decode (S, C, B, H, W) voxel grids of ``windows`` into one time-sorted event stream.

    ``events_in`` (the input events) is required for ``"mask"``; ``spec``, when given, is
    checked against the voxel shape.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown decode strategy {strategy!r}; choose one of {STRATEGIES}")
    vox = _check(vox, windows, spec)
    rng = np.random.default_rng(seed)
    if strategy == "mask":
        if events_in is None:
            raise ValueError("decode strategy 'mask' needs the input events (events_in)")
        return _mask(vox, windows, events_in, rng)
    return _from_counts(vox, windows, strategy, rng)


def decode(vox: np.ndarray, t0: int, t1: int, strategy: str, *, events_in: Events | None = None,
           spec: VoxelSpec | None = None, seed: int = 0) -> Events:
    """Decode one (C, B, H, W) voxel grid of the window ``[t0, t1)`` into time-sorted events."""
    vox = np.asarray(vox)
    if vox.ndim != 4:
        raise ValueError(f"decode expects one (C, B, H, W) grid, got shape {vox.shape}")
    if int(t1) <= int(t0):
        raise ValueError(f"empty time span [{t0}, {t1})")
    window = Windows(np.array([t0]), np.array([t1]), np.array([False]))
    return decode_windows(vox[None], window, strategy, events_in=events_in, spec=spec, seed=seed)


def within_input(out: Events, events: Events) -> Events:
    """Decoded events inside the input's time range: decoders spread events over whole
    windows, and the last window may reach past the input's last event."""
    if len(events) and len(out):
        out = out.select((out.t >= events.t[0]) & (out.t <= events.t[-1]))
    return out


def output_attrs(in_path: str | os.PathLike, strategy: str) -> dict[str, Any]:
    """Root attributes of a denoised file: the input's own, plus where it came from and how."""
    attrs = {k: v for k, v in read_attrs(in_path).items() if k not in _DROPPED_ATTRS}
    attrs["denoised_from"] = str(in_path)
    attrs["decode"] = strategy
    return attrs
