"""Event streams <-> voxel grids (C, B, H, W), plus shape and value transforms for models.

Encoding is one compiled pass over the events (numba, cached on disk after the first call),
adding each into a flat (S, C, B, H, W) grid: no Python loop over events, bins or windows.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from collections.abc import Sequence

import numpy as np
from numba import njit

from .defaults import ASSIGNMENT, BINS, CHANNELS
from .events import Events
from .windows import Windows

if TYPE_CHECKING:
    import torch

ASSIGNMENTS = ("nearest", "bilinear")
Array = TypeVar("Array", np.ndarray, "torch.Tensor")


def _is_tensor(x: Any) -> bool:
    # torch is imported lazily (only resize needs it), so the per-file split/voxelize jobs start
    # in a fraction of a second; a tensor can only exist once torch has been imported.
    torch_module = sys.modules.get("torch")
    return torch_module is not None and isinstance(x, torch_module.Tensor)


@dataclass(frozen=True)
class VoxelSpec:
    """How events become a voxel grid.

    ``channels=1``: signed sum of polarities; ``channels=2``: ON counts (channel 0) and OFF
    counts (channel 1). ``assignment``: ``"nearest"`` puts each event in the bin holding it;
    ``"bilinear"`` splits its weight between the two nearest bin centres (clamped at the edges).
    """

    bins: int = BINS
    channels: int = CHANNELS
    assignment: str = ASSIGNMENT

    def __post_init__(self) -> None:
        if self.bins < 1:
            raise ValueError(f"bins must be >= 1, got {self.bins}")
        if self.channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {self.channels}")
        if self.assignment not in ASSIGNMENTS:
            raise ValueError(f"assignment must be one of {ASSIGNMENTS}, got {self.assignment!r}")


# Events per block of _scatter: the cells and weights of one block stay in the L1 cache.
_BLOCK = 512


@njit(cache=True, nogil=True)
def bilinear_split(rel: int, scale: float, bins: int) -> tuple[int, int, np.float32]:  # pragma: no cover - numba
    """The two bins an event ``rel`` µs into its window is split between, and the upper one's weight
    (``scale`` = bins / window length). Position in bins from the first bin centre, split between
    the two nearest centres; all of it goes to the edge bin outside them. Shifted by one bin it is
    >= 0, so truncation is the floor."""
    u = rel * scale + 0.5
    upper = np.int64(u)
    return max(upper - 1, 0), min(upper, bins - 1), np.float32(u - upper)


@njit(cache=True, nogil=True)
def _fill(t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray, first: int, last: int, t0: int,
          offset: int, dt: int, bins: int, channels: int, height: int, width: int, bilinear: bool,
          cells: np.ndarray, weights: np.ndarray, m: int) -> int:  # pragma: no cover - compiled by numba
    """Cells and weights of the events ``first:last``, all inside the window ``[t0, t0 + dt)`` whose
    grid starts at ``offset``, stored in the block buffers from ``m`` on (the upper bilinear bins
    from ``_BLOCK + m``); returns the new fill level.

    Written for LLVM to vectorise the loop: e.g. arithmetic, not an ``and`` (a branch), picks
    the channel.
    """
    plane = height * width
    scale = bins / dt  # multiply, not divide, per event
    for i in range(first, last):
        k = m + i - first
        rel = t[i] - t0
        value = np.float32(1.0) if channels == 2 else np.float32(p[i])
        channel = np.int64(p[i] < 0) * (channels - 1)
        base = offset + channel * bins * plane + np.int64(y[i]) * width + np.int64(x[i])
        if not bilinear:
            # Exact integer bin edges floor(rel * bins / dt): a float estimate corrected by
            # integer comparisons is cheaper than an int64 division.
            b = np.int64(rel * scale)
            if b * dt > rel * bins:
                b -= 1
            elif (b + 1) * dt <= rel * bins:
                b += 1
            cells[k] = base + b * plane
            weights[k] = value
        else:
            lower, upper, frac = bilinear_split(rel, scale, bins)
            cells[k] = base + lower * plane
            cells[_BLOCK + k] = base + upper * plane
            weights[k] = (np.float32(1.0) - frac) * value
            weights[_BLOCK + k] = frac * value
    return m + last - first


@njit(cache=True, nogil=True)
def _scatter(t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray, start: np.ndarray, dt: int, bins: int,
             channels: int, height: int, width: int, bilinear: bool,
             grid: np.ndarray) -> None:  # pragma: no cover - compiled by numba
    """One pass over the events, adding each inside a window ``[start[w], start[w] + dt)`` into the
    flat (S, C, B, H, W) grid; the others are skipped.

    Events go in blocks: :func:`_fill` computes a block's cells and weights, then a bare loop adds
    them into the grid. With so few instructions per event the CPU keeps many of the scattered
    cache misses in flight; fused into one loop, the same work took over twice as long.
    """
    if start.shape[0] == 0:
        return
    cells = np.empty(2 * _BLOCK, np.int64)
    weights = np.empty(2 * _BLOCK, np.float32)
    w, offset = 0, 0
    for first in range(0, t.shape[0], _BLOCK):
        last = min(first + _BLOCK, t.shape[0])
        if start[w] <= t[first:last].min() and t[first:last].max() < start[w] + dt:
            m = _fill(t, x, y, p, first, last, start[w], offset, dt, bins, channels, height, width, bilinear,
                      cells, weights, 0)
        else:  # the block leaves window w (sorted events: once per window): event by event
            m = 0
            for i in range(first, last):
                if not start[w] <= t[i] < start[w] + dt:
                    w = max(np.searchsorted(start, t[i], side="right") - 1, 0)
                    offset = w * channels * bins * height * width
                    if not start[w] <= t[i] < start[w] + dt:
                        continue
                m = _fill(t, x, y, p, i, i + 1, start[w], offset, dt, bins, channels, height, width, bilinear,
                          cells, weights, m)
        # In event order (lower then upper bin of each), so the float sums do not depend on the blocks.
        for j in range(m):
            grid[cells[j]] += weights[j]
            if bilinear:
                grid[cells[_BLOCK + j]] += weights[_BLOCK + j]


def _encode(events: Events, start: np.ndarray, dt: int, spec: VoxelSpec) -> np.ndarray:
    """Grids (S, C, B, H, W) of the windows ``[start[w], start[w] + dt)``; other events are ignored."""
    B, C, H, W = spec.bins, spec.channels, events.height, events.width
    grid = np.zeros(len(start) * C * B * H * W, np.float32)
    _scatter(events.t, events.x, events.y, events.p, start.astype(np.int64, copy=False), int(dt), B, C, H, W,
             spec.assignment == "bilinear", grid)
    return grid.reshape(len(start), C, B, H, W)


def encode(events: Events, t0: int, t1: int, spec: VoxelSpec) -> np.ndarray:
    """Voxel grid (C, B, H, W) float32 of the events in ``[t0, t1)``; B equal bins over that span.

    Events outside ``[t0, t1)`` are ignored. ``events`` need not be sorted.
    """
    t0, t1 = int(t0), int(t1)
    if t1 <= t0:
        raise ValueError(f"empty time span [{t0}, {t1})")
    return _encode(events, np.array([t0]), t1 - t0, spec)[0]


def encode_windows(events: Events, windows: Windows, spec: VoxelSpec) -> np.ndarray:
    """Voxel grids (S, C, B, H, W) of every window in one pass (events outside windows dropped)."""
    return _encode(events, windows.start, windows.segment_us, spec)


def pad_to(x: Array, multiples: Sequence[int], minimum: int | Sequence[int] = 1) -> tuple[Array, tuple[int, ...]]:
    """Zero-pad the last ``len(multiples)`` axes at their end up to the next multiple of each
    (and to at least ``minimum``: one size for all those axes or one per axis).

    Zero is "no event", so padding adds nothing a network could mistake for signal. Returns the
    padded array (numpy or torch, as given) and the original sizes for :func:`crop_to`.
    """
    multiples = tuple(int(m) for m in multiples)
    if any(m < 1 for m in multiples):
        raise ValueError(f"multiples must be >= 1, got {multiples}")
    minima = (minimum,) * len(multiples) if isinstance(minimum, int) else tuple(minimum)
    sizes = tuple(int(v) for v in x.shape[x.ndim - len(multiples):])
    pads = [max(lo, -(-size // m) * m) - size for size, m, lo in zip(sizes, multiples, minima)]
    if not any(pads):
        return x, sizes
    if _is_tensor(x):
        import torch.nn.functional as F

        return F.pad(x, [v for p in reversed(pads) for v in (0, p)]), sizes
    return np.pad(x, [(0, 0)] * (x.ndim - len(pads)) + [(0, p) for p in pads]), sizes


def crop_to(x: Array, sizes: Sequence[int]) -> Array:
    """Crop the last ``len(sizes)`` axes back to ``sizes`` (the inverse of :func:`pad_to`)."""
    return x[(Ellipsis, *(slice(0, s) for s in sizes))]


def resize(x: Array, size: tuple[int, int], mode: str = "area", preserve_sum: bool = True) -> Array:
    """Resample the last two axes to ``size = (H, W)`` with ``torch.nn.functional.interpolate``.

    With ``preserve_sum`` values are scaled by the area ratio so each grid keeps its total
    event count. Resizing down and back up is lossy: ``"area"`` averages blocks of pixels, so
    the round trip returns each block's mean in every pixel (the spatial layout inside a block
    and the integer nature of counts are lost; non-integer scale factors also blur across
    block edges). Decoding rounds the result back to counts.
    """
    import torch
    import torch.nn.functional as F

    tensor = torch.as_tensor(x)
    lead, (h, w) = tensor.shape[:-2], tensor.shape[-2:]
    flat = tensor.reshape(-1, 1, h, w)
    if not flat.is_floating_point():
        flat = flat.float()
    kwargs: dict[str, Any] = {} if mode in ("area", "nearest") else {"align_corners": False}
    out = F.interpolate(flat, size=tuple(size), mode=mode, **kwargs)
    if preserve_sum:
        out = out * (h * w / (size[0] * size[1]))
    out = out.reshape(*lead, *size)
    return out if isinstance(x, torch.Tensor) else out.numpy()


@dataclass(frozen=True)
class NormStats:
    """Per-grid mean and std of the non-zero cells (shape: leading axes + four 1s)."""

    mean: np.ndarray | torch.Tensor
    std: np.ndarray | torch.Tensor


def _grid_axes(x: Array) -> tuple[int, ...]:
    return tuple(range(max(x.ndim - 4, 0), x.ndim))


def normalize(x: Array) -> tuple[Array, NormStats]:
    """E2VID normalisation: non-zero cells of each (C, B, H, W) grid -> zero mean, unit std.

    Zero cells stay zero. A non-zero cell that lands exactly on 0 is nudged to the smallest
    positive float so :func:`denormalize` can tell it from an empty cell. A grid whose
    non-zero cells are all equal is only scaled (mean 0, std = that value's magnitude).
    """
    is_torch = _is_tensor(x)
    xp: Any = sys.modules["torch"] if is_torch else np
    axes = _grid_axes(x)
    kw = {"dim": axes, "keepdim": True} if is_torch else {"axis": axes, "keepdims": True}
    nz = x != 0
    count = nz.sum(**kw)
    count = xp.maximum(count, xp.ones_like(count))
    mean = x.sum(**kw) / count
    var = (xp.where(nz, x - mean, 0 * x) ** 2).sum(**kw) / count
    std = xp.sqrt(var)
    scale = xp.abs(x).amax(**kw) if is_torch else np.abs(x).max(**kw)
    flat = std == 0
    mean = xp.where(flat, 0 * mean, mean)
    std = xp.where(flat, xp.where(scale == 0, xp.ones_like(scale), scale), std)
    out = (x - mean) / std
    if not is_torch:
        out = out.astype(x.dtype, copy=False)
    tiny = np.finfo(np.float32).tiny
    out = xp.where(nz & (out == 0), tiny + 0 * out, out)
    out = xp.where(nz, out, 0 * out)
    return out, NormStats(mean, std)


def denormalize(x_norm: Array, stats: NormStats) -> Array:
    """Map normalised values (e.g. predictions) back to counts; exact zeros stay zero."""
    mean, std = stats.mean, stats.std
    if _is_tensor(x_norm):
        import torch

        mean, std = torch.as_tensor(mean, device=x_norm.device), torch.as_tensor(std, device=x_norm.device)
        return torch.where(x_norm != 0, x_norm * std + mean, torch.zeros_like(x_norm))
    return np.where(x_norm != 0, x_norm * std + mean, 0).astype(x_norm.dtype, copy=False)
