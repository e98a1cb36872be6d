"""Voxel grids back to events.

Strategies (all deterministic given ``seed``; output sorted by t):

- ``"sample"``: round each cell to a count n (polarity from the sign for C=1, from the
  channel for C=2) and draw n timestamps uniformly inside the cell's time bin
  (E-Deflare's decoder, vectorised with ``np.repeat``).
- ``"spread"``: the same counts, timestamps evenly spaced inside the bin.

  Both read every cell as a count of its bin, also in a ``bilinear`` grid (where an event's weight
  is split between two bins, so a lone event can round away in both).
- ``"mask"``: keep a subset of the *input* events. In each cell (nearest bin) holding n input
  events, keep k = floor(r * n + 1 - keep_threshold) of them chosen uniformly at random,
  r = predicted / input value clipped to [0, 1] (C=1: the cell's signed input sum; a cell whose
  input sum is 0 keeps all its events): the fraction of r * n earns one more event once it
  reaches ``keep_threshold`` (0.5: plain rounding). Kept events keep their exact timestamps.
  A ``bilinear`` prediction (``spec.assignment``) first becomes nearest-bin counts: each input
  event takes the kept share (predicted / input value) of its two bins, weighted as the encoder
  split it, and a cell's prediction is the sum of its events' shares.

  The default threshold, ``KEEP_THRESHOLD`` = 0.25, leans towards keeping: a network
  trained for the kept share predicts its expectation, and a real event wrongly dropped costs the
  F1 scores (binarised cells) more than a flare event wrongly kept; on unseen data the F1s are the
  margins that tip into losses first (docs/ablations.md).

Bin b of a window ``[t0, t1)`` with B bins holds the integer timestamps t with
``floor((t - t0) * B / (t1 - t0)) == b``, so ``sample``/``spread`` output re-encodes (nearest)
to the rounded voxel exactly.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
from numba import njit

from .events import Events, read_attrs
from .voxel import VoxelSpec, bilinear_split, encode_windows
from .windows import Windows, merge, window_chunks
from .defaults import DECODE_SEED, KEEP_THRESHOLD

STRATEGIES = ("sample", "spread", "mask")
RUN_WINDOWS = 8  # windows decoded together (streaming: encoded and predicted too); bounds memory (bench_denoise)
_DROPPED_ATTRS = ("width", "height", "producer", "t_offset")  # rewritten by write_events / baked into t


def _stable_argsort(key: np.ndarray) -> np.ndarray:
    """Stable argsort of non-negative integers: LSD radix sort over 16-bit digits.

    numpy's stable sort is a radix sort for 16-bit keys; a few such passes beat timsort on
    the int64 keys used here (timestamps within a recording).
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


@njit(cache=True, nogil=True)
def _event_cells(t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray, cell: np.ndarray, start: np.ndarray,
                 dt: int, shape: tuple[int, int, int, int, int]) -> None:  # pragma: no cover - compiled by numba
    """Overwrite each event's window in ``cell`` (-1: none) with its voxel cell (nearest bin)."""
    S, C, B, H, W = shape
    for i in range(t.shape[0]):
        w = cell[i]
        if w >= 0:
            plane = (w * C + np.int64(p[i] < 0) * (C - 1)) * B + (t[i] - start[w]) * B // dt
            cell[i] = (plane * H + np.int64(y[i])) * W + np.int64(x[i])


@njit(cache=True, nogil=True)
def _kept_share(pred: float, value: float) -> float:  # pragma: no cover - compiled by numba
    """A cell's kept share: predicted / input value clipped to [0, 1]; a cell of value 0 keeps all."""
    return 1.0 if value == 0 else min(max(pred / value, 0.0), 1.0)


@njit(cache=True, nogil=True)
def _mask_keep(p: np.ndarray, cell: np.ndarray, vox: np.ndarray, seed: int, round_up: float, tally: np.ndarray,
               keep: np.ndarray) -> None:  # pragma: no cover - compiled by numba
    """Mark in ``keep`` the events ``mask`` keeps. ``cell`` holds each event's voxel cell (-1: none;
    ``_event_cells``); ``tally`` (zeros, two per voxel cell) is scratch.

    Two passes over the events: the first counts each cell's events and sums their value, the
    second picks the kept ones by selection sampling (Knuth's Algorithm S: keep each event with
    probability still-to-keep / still-to-see, which gives a uniformly random subset of exactly k).
    """
    C = vox.shape[1]
    pred = vox.reshape(-1)
    # A loop of its own: fused into the cell computation, the scattered additions ran three times slower.
    for i in range(p.shape[0]):
        if cell[i] >= 0:
            tally[cell[i], 0] += 1
            tally[cell[i], 1] += p[i] if C == 1 else 1
    np.random.seed(seed)
    for i in range(p.shape[0]):
        c = cell[i]
        if c < 0:
            continue
        # A cell's first event turns its (count, value) into (-events still to see, events still to keep).
        to_see, left = tally[c, 0], tally[c, 1]
        if to_see > 0:
            ratio = _kept_share(np.float64(pred[c]), left)
            to_see, left = -to_see, np.int32(np.floor(ratio * to_see + round_up))
        # Cells kept whole or dropped draw no random number.
        kept = left == -to_see or (left > 0 and np.random.random() * -to_see < left)
        keep[i] = kept
        tally[c, 0] = to_see + 1
        tally[c, 1] = left - kept


@njit(cache=True, nogil=True)
def _cell_shares(pred: np.ndarray, grid: np.ndarray) -> None:  # pragma: no cover - compiled by numba
    """In place, the input values in ``grid`` become kept shares (``_kept_share``). One pass over the
    cells first, so the pass over the events reads one value per bin instead of two."""
    for k in range(grid.shape[0]):
        grid[k] = _kept_share(np.float64(pred[k]), np.float64(grid[k]))


@njit(cache=True, nogil=True)
def _bilinear_to_nearest(t: np.ndarray, p: np.ndarray, cell: np.ndarray, start: np.ndarray, dt: int,
                         shape: tuple[int, int, int, int, int],
                         grid: np.ndarray) -> None:  # pragma: no cover - compiled by numba
    """``grid`` (flat) holds each cell's kept share on entry and, on return, the nearest-bin counts
    ``_mask_keep`` reads: per event (voxel cell in ``cell``, -1: none), the shares of its two bins
    weighted as the encoder splits it, summed (times the event's value) into its cell."""
    S, C, B, H, W = shape
    plane = H * W
    share = np.zeros(t.shape[0], np.float32)
    for i in range(t.shape[0]):
        c = cell[i]
        if c >= 0:
            bin0 = c - (c // plane) % B * plane  # the event's pixel in bin 0 of its window and channel
            lower, upper, frac = bilinear_split(t[i] - start[c // (C * B * plane)], B / dt, B)
            share[i] = (np.float32(1.0) - frac) * grid[bin0 + lower * plane] + frac * grid[bin0 + upper * plane]
    grid[:] = 0
    for i in range(t.shape[0]):
        if cell[i] >= 0:
            grid[cell[i]] += share[i] * (1 if C == 2 else p[i])


def _mask(vox: np.ndarray, windows: Windows, events_in: Events, rng: np.random.Generator,
          keep_threshold: float, bilinear: bool) -> Events:
    """``mask``: keep floor(r * n + 1 - keep_threshold) of the n input events of every cell."""
    S, C, B, H, W = vox.shape
    if (events_in.width, events_in.height) != (W, H):
        raise ValueError(f"input events are {events_in.width}x{events_in.height}, voxels are {W}x{H}")
    ev = events_in
    cell = windows.locate(ev.t)
    _event_cells(ev.t, ev.x, ev.y, ev.p, cell, windows.start, windows.segment_us, vox.shape)
    if bilinear:
        grid = encode_windows(ev, windows, VoxelSpec(B, C, "bilinear")).reshape(-1)
        _cell_shares(np.ascontiguousarray(vox).reshape(-1), grid)
        _bilinear_to_nearest(ev.t, ev.p, cell, windows.start, windows.segment_us, vox.shape, grid)
        vox = grid.reshape(vox.shape)
    keep = np.zeros(len(ev), bool)
    # Scratch from numpy, whose large arrays get huge pages (numba's fault in page by page);
    # numba's generator, seeded from ours, keeps the choice deterministic given the seed.
    _mask_keep(ev.p, cell, np.ascontiguousarray(vox), int(rng.integers(2**32)), 1.0 - keep_threshold,
               np.zeros((vox.size, 2), np.int32), keep)
    return ev.select(keep)


def decode_windows(vox: np.ndarray, windows: Windows, strategy: str, *, events_in: Events | None = None,
                   spec: VoxelSpec | None = None, seed: int = DECODE_SEED,
                   keep_threshold: float = KEEP_THRESHOLD) -> Events:
    """Decode (S, C, B, H, W) voxel grids of ``windows`` into one time-sorted event stream.

    ``events_in`` (the input events) is required for ``"mask"``, and ``keep_threshold`` (in
    (0, 1]) applies to it only; ``spec``, when given, is checked against the voxel shape and tells
    ``mask`` the prediction's assignment (without it: ``nearest``).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown decode strategy {strategy!r}; choose one of {STRATEGIES}")
    if not 0 < keep_threshold <= 1:
        raise ValueError(f"keep_threshold must be in (0, 1], got {keep_threshold}")
    vox = _check(vox, windows, spec)
    rng = np.random.default_rng(seed)
    if strategy == "mask":
        if events_in is None:
            raise ValueError("decode strategy 'mask' needs the input events (events_in)")
        return _mask(vox, windows, events_in, rng, float(keep_threshold),
                     spec is not None and spec.assignment == "bilinear")
    return _from_counts(vox, windows, strategy, rng)


def decode(vox: np.ndarray, t0: int, t1: int, strategy: str, *, events_in: Events | None = None,
           spec: VoxelSpec | None = None, seed: int = DECODE_SEED, keep_threshold: float = KEEP_THRESHOLD) -> Events:
    """Decode one (C, B, H, W) voxel grid of the window ``[t0, t1)`` into time-sorted events."""
    vox = np.asarray(vox)
    if vox.ndim != 4:
        raise ValueError(f"decode expects one (C, B, H, W) grid, got shape {vox.shape}")
    if int(t1) <= int(t0):
        raise ValueError(f"empty time span [{t0}, {t1})")
    window = Windows(np.array([t0]), np.array([t1]), np.array([False]))
    return decode_windows(vox[None], window, strategy, events_in=events_in, spec=spec, seed=seed,
                          keep_threshold=keep_threshold)


def run_seed(seed: int, k: int) -> int:
    """Seed of the k-th run of windows: one independent stream per run, whatever ran before it."""
    return int(np.random.SeedSequence([seed, k]).generate_state(1)[0])


def decode_runs(pred: np.ndarray, windows: Windows, strategy: str, *, events_in: Events, spec: VoxelSpec,
                seed: int = DECODE_SEED, keep_threshold: float = KEEP_THRESHOLD) -> Events:
    """Decode a file's predictions as ``evdenoise denoise`` does: runs of RUN_WINDOWS windows that hold input
    events, run k seeded by ``run_seed(seed, k)``, kept inside the input's time range. ``windows`` must be the
    grid over ``events_in`` (``windows_for``); windows without input events decode to nothing."""
    if not len(events_in):
        return Events.empty(events_in.width, events_in.height)
    t_first, t_last = int(events_in.t[0]), int(events_in.t[-1])
    parts = []
    runs = window_chunks([events_in], t_first, t_last, windows.segment_us, windows.grid, RUN_WINDOWS)
    for k, (sub, ev) in enumerate(runs):
        rows = np.searchsorted(windows.start, sub.start)
        out = decode_windows(pred[rows], sub, strategy, events_in=ev, spec=spec, seed=run_seed(seed, k),
                             keep_threshold=keep_threshold)
        parts.append(within(out, t_first, t_last))
    return merge(parts, events_in.width, events_in.height)


def within(out: Events, t_first: int, t_last: int) -> Events:
    """Events with ``t_first <= t <= t_last``: decoders spread events over whole windows, and the last
    window may reach past the input's last event."""
    return out.select((out.t >= t_first) & (out.t <= t_last)) if len(out) else out


def output_attrs(in_path: str | os.PathLike, strategy: str) -> dict[str, Any]:
    """Root attributes of a denoised file: the input's own, plus where it came from and how."""
    attrs = {k: v for k, v in read_attrs(in_path).items() if k not in _DROPPED_ATTRS}
    attrs["denoised_from"] = str(in_path)
    attrs["decode"] = strategy
    return attrs
