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
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numba import njit

from .events import Events, read_attrs
from .threads import cpu_threads
from .voxel import VoxelSpec, bilinear_split
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
def _kept_share(pred: float, value: float) -> float:  # pragma: no cover - compiled by numba
    """A cell's kept share: predicted / input value clipped to [0, 1]; a cell of value 0 keeps all."""
    return 1.0 if value == 0 else min(max(pred / value, 0.0), 1.0)


@njit(cache=True, nogil=True)
def _by_pixel(t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray, first: int, last: int, t0: int,
              shape: tuple[int, int, int, int, int], end: np.ndarray,
              order: np.ndarray) -> None:  # pragma: no cover - compiled by numba
    """Counting sort of the events ``first:last`` of the window from ``t0`` by channel and pixel
    (``(channel * H + y) * W + x``): ``order`` gets them grouped so, in time order within a group, each
    packed in one int64 (``_unpack``) so that the later passes read in sequence instead of gathering, and
    ``end`` (zeros on entry) each group's end."""
    _, C, B, H, W = shape
    for i in range(first, last):
        end[(np.int64(p[i] < 0) * (C - 1) * H + np.int64(y[i])) * W + np.int64(x[i])] += 1
    total = 0
    for q in range(end.shape[0]):
        total += end[q]
        end[q] = total - end[q]
    for i in range(first, last):
        q = (np.int64(p[i] < 0) * (C - 1) * H + np.int64(y[i])) * W + np.int64(x[i])
        order[end[q]] = (np.int64(i) << 32) | ((t[i] - t0) << 1) | np.int64(p[i] < 0)
        end[q] += 1


@njit(cache=True, nogil=True)
def _unpack(packed: int, dt: int, B: int, C: int) -> tuple[int, int, int, int, np.float32]:  # pragma: no cover
    """A packed event (``_by_pixel``): its index, voxel value (1, or its polarity for C = 1), nearest bin and
    bilinear split (``bilinear_split``: lower and upper bin, upper weight)."""
    rel = (packed & 0xFFFFFFFF) >> 1
    nearest = np.int64(rel * (B / dt))  # multiply, not divide; integer comparisons make the bin exact
    nearest += (nearest + 1) * dt <= rel * B
    nearest -= nearest * dt > rel * B
    lower, upper, frac = bilinear_split(rel, B / dt, B)
    value = 1 if C == 2 else 1 - 2 * (packed & 1)
    return packed >> 32, value, nearest, lower, upper, frac


@njit(cache=True, nogil=True)
def _mask_pixel(events: np.ndarray, begin: int, stop: int, dt: int, shape: tuple[int, int, int, int, int],
                pred: np.ndarray, grid: int, bilinear: bool, round_up: float, acc: np.ndarray, near: np.ndarray,
                tally: np.ndarray, keep: np.ndarray) -> int:  # pragma: no cover - compiled by numba
    """Mark in ``keep`` the kept events of one channel-pixel and return how many: ``events[begin:stop]``
    (``_by_pixel``), its bin 0 at ``pred[grid]`` and the others a plane apart. ``tally`` counts each nearest
    bin's (events, value); a bilinear prediction first becomes nearest-bin counts in ``near``: each event takes
    the kept share of its two bins, weighted as the encoder splits it (``acc``: the input's bilinear value,
    summed in time order as the encoder does). Then selection sampling (Knuth's Algorithm S) keeps each event
    with probability still-to-keep / still-to-see: a uniformly random subset of exactly k of each bin's events.
    The three small tables are zeros again on return; indices, not array views: a view per pixel costs more
    than the pixel's work."""
    _, C, B, H, W = shape
    for j in range(begin, stop):
        _, value, b, lower, upper, frac = _unpack(events[j], dt, B, C)
        tally[b, 0] += 1
        tally[b, 1] += value
        if bilinear:
            acc[lower] += (np.float32(1.0) - frac) * np.float32(value)
            acc[upper] += frac * np.float32(value)
    if bilinear:
        for j in range(begin, stop):
            _, value, b, lower, upper, frac = _unpack(events[j], dt, B, C)
            lo, up = pred[grid + lower * H * W], pred[grid + upper * H * W]
            share = ((np.float32(1.0) - frac) * np.float32(_kept_share(np.float64(lo), np.float64(acc[lower])))
                     + frac * np.float32(_kept_share(np.float64(up), np.float64(acc[upper]))))
            near[b] += share * value
    count = 0
    for j in range(begin, stop):
        i, _, b, lower, upper, _ = _unpack(events[j], dt, B, C)
        # A bin's first event turns its (count, value) into (-events still to see, events still to keep).
        to_see, left = tally[b, 0], tally[b, 1]
        if to_see > 0:
            share = _kept_share(np.float64(near[b] if bilinear else pred[grid + b * H * W]), left)
            to_see, left = -to_see, np.int64(np.floor(share * to_see + round_up))
        # Cells kept whole or dropped draw no random number.
        kept = left == -to_see or (left > 0 and np.random.random() * -to_see < left)
        keep[i] = kept
        count += kept
        tally[b, 0] = to_see + 1
        tally[b, 1] = left - kept
        acc[lower] = acc[upper] = near[b] = 0
    return count


@njit(cache=True, nogil=True)
def _mask_window(t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray, first: int, last: int, t0: int, dt: int,
                 shape: tuple[int, int, int, int, int], pred: np.ndarray, offset: int, bilinear: bool, seed: int,
                 round_up: float, end: np.ndarray, order: np.ndarray, keep: np.ndarray) -> int:  # pragma: no cover
    """Mark in ``keep`` the events ``first:last`` of one window that ``mask`` keeps and return how many (its
    (C, B, H, W) grid at ``pred[offset:]``, flat): pixel by pixel (``_by_pixel``, with its scratch ``end``, zeros on entry and on
    return, and ``order``), so the cost follows the events and stays in cache."""
    _, C, B, H, W = shape
    plane = H * W
    _by_pixel(t, x, y, p, first, last, t0, shape, end, order)
    acc, near = np.zeros(B, np.float32), np.zeros(B, np.float32)
    tally = np.zeros((B, 2), np.int64)
    np.random.seed(seed)
    begin = kept = 0
    for q in range(end.shape[0]):
        stop, end[q] = end[q], 0
        if stop > begin:
            grid = offset + q // plane * B * plane + q % plane  # the pixel's bin 0 in the (C, B, H, W) grid
            kept += _mask_pixel(order, begin, stop, dt, shape, pred, grid, bilinear, round_up, acc, near, tally, keep)
            begin = stop
    return kept


@njit(cache=True, nogil=True)
def _mask_keep(t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray, first: np.ndarray, last: np.ndarray,
               start: np.ndarray, dt: int, shape: tuple[int, int, int, int, int], vox: np.ndarray, bilinear: bool,
               seeds: np.ndarray, round_up: float, part: int, parts: int, keep: np.ndarray,
               kept: np.ndarray) -> None:  # pragma: no cover - compiled by numba
    """``_mask_window`` for windows ``part``, ``part + parts``, ... (window w: events ``first[w]:last[w]``, seed
    ``seeds[w]``, ``kept[w]`` gets its count), with scratch of their own."""
    S, C, B, H, W = shape
    end, order = np.zeros(C * H * W, np.int32), np.empty(np.max(last - first), np.int64)
    for w in range(part, S, parts):
        if last[w] > first[w]:
            kept[w] = _mask_window(t, x, y, p, first[w], last[w], start[w], dt, shape, vox, w * C * B * H * W,
                                   bilinear, seeds[w], round_up, end, order, keep)


@njit(cache=True, nogil=True)
def _gather(fields: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], first: np.ndarray, last: np.ndarray,
            keep: np.ndarray, at: np.ndarray, part: int, parts: int,
            out: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:  # pragma: no cover - numba
    """Copy the kept events of windows ``part``, ``part + parts``, ... to ``out`` from ``at[w]`` on: windows are
    sorted and disjoint, so the output stays in input order (the threads' share of ``Events.select``)."""
    t, x, y, p = fields
    ot, ox, oy, op = out
    for w in range(part, first.shape[0], parts):
        j = at[w]
        for i in range(first[w], last[w]):
            if keep[i]:
                ot[j], ox[j], oy[j], op[j] = t[i], x[i], y[i], p[i]
                j += 1


def _mask(vox: np.ndarray, windows: Windows, events_in: Events, rng: np.random.Generator,
          keep_threshold: float, bilinear: bool) -> Events:
    """``mask``: keep floor(r * n + 1 - keep_threshold) of the n input events of every cell."""
    S, C, B, H, W = vox.shape
    if (events_in.width, events_in.height) != (W, H):
        raise ValueError(f"input events are {events_in.width}x{events_in.height}, voxels are {W}x{H}")
    if windows.segment_us >= 1 << 30 or len(events_in) >= 1 << 31:
        raise ValueError("mask decodes windows under 2**30 µs holding under 2**31 events")  # _by_pixel's packing
    ev = events_in
    first, last = np.searchsorted(ev.t, windows.start), np.searchsorted(ev.t, windows.end)
    if not (last > first).any():  # no window holds an event
        return Events.empty(W, H)
    # One seed per window from ours (numba's generator is per thread), so the choice is the same whichever
    # thread decodes a window. Threads, not numba's parallel layer: the kernels release the GIL, and no
    # OpenMP runtime meets torch's in one process.
    seeds, shape, vox = rng.integers(2**32, size=S), vox.shape, np.ascontiguousarray(vox).reshape(-1)
    keep, kept = np.empty(len(ev), bool), np.zeros(S, np.int64)  # keep: written for every event of a window
    threads = max(1, min(cpu_threads(), S))
    fields = (ev.t, ev.x, ev.y, ev.p)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda k: _mask_keep(*fields, first, last, windows.start, windows.segment_us, shape, vox,
                                           bilinear, seeds, 1.0 - keep_threshold, k, threads, keep, kept),
                      range(threads)))
        out = tuple(np.empty(int(kept.sum()), f.dtype) for f in fields)
        at = np.cumsum(kept) - kept
        list(pool.map(lambda k: _gather(fields, first, last, keep, at, k, threads, out), range(threads)))
    return Events(*out, W, H)


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
