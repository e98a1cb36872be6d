"""Run a voxel model over whole recordings: batched, no autograd, AMP on GPU.

Four ways to handle a frame size other than the training crops:
``pad``        fully convolutional at the file's own size (the models pad to their multiple inside);
``multiscale`` ``pad``, plus a second look at the training's pixel scale (``pooled_shares``); each
               cell keeps the larger of the two kept shares (the default);
``resize``     resample to the training resolution, predict, resample back (``evdenoise.voxel.resize``);
``tile``       overlapping tiles blended with smooth weights, for sensors too large for memory.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .voxel import resize
from .defaults import DEVICE, PREDICT_BATCH_SIZE, PREDICT_MODE

MODES = ("pad", "multiscale", "resize", "tile")
# Models trained at 160x120 kept 78-91 % of a flare-free 640x480 recording at the file's own scale, but
# 94-99 % with the second look, and won all eight metrics on held-out 320x240 and 640x480 files where the
# single scale lost up to six (docs/ablations.md, "Round 4").


def resolve_device(device: str | torch.device = DEVICE) -> torch.device:
    """``"auto"`` -> cuda, else mps, else cpu; anything else must be available."""
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"device {device!r} requested but MPS is not available")
    return dev


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """Mixed precision (float16) on CUDA when enabled; a no-op elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def _blend_weights(n: int, taper_lo: bool, taper_hi: bool, overlap: int) -> np.ndarray:
    """1-D tile weights: 1 inside; on a side shared with a neighbouring tile, ~0 over the outer
    quarter of the overlap (where zero padding at the tile edge distorts the output), then a
    raised-cosine (Hann) rise over its middle half. Weights stay positive so every cell counts."""
    w = np.ones(n, dtype=np.float64)
    ramp_len = min(overlap, n)
    if ramp_len > 0:
        guard = ramp_len // 4
        u = np.clip((np.arange(ramp_len) + 0.5 - guard) / max(ramp_len - 2 * guard, 1), 0.0, 1.0)
        ramp = np.maximum(0.5 - 0.5 * np.cos(np.pi * u), 1e-6)
        if taper_lo:
            w[:ramp_len] = np.minimum(w[:ramp_len], ramp)
        if taper_hi:
            w[n - ramp_len:] = np.minimum(w[n - ramp_len:], ramp[::-1])
    return w


def _tile_spans(size: int, tile: int, overlap: int, multiple: int) -> list[tuple[int, int]]:
    """Tile extents covering ``size`` with at least ``overlap`` shared cells.

    Starts lie on multiples of the model's pooling ``multiple`` so every tile sees the same
    pooling grid as the whole frame; the last tile runs to the edge (so the model pads it the
    way it pads the whole frame).
    """
    if tile >= size:
        return [(0, size)]
    stride = max((tile - overlap) // multiple * multiple, multiple)
    starts = list(range(0, size - tile, stride))
    last = (size - tile) // multiple * multiple
    if last > starts[-1]:
        starts.append(last)
    return [(s, s + tile) for s in starts[:-1]] + [(starts[-1], size)]


def _spatial_multiple(model: nn.Module) -> tuple[int, int]:
    """(H, W) multiple a model pads its input to (its ``multiple`` attribute: int, (H, W) or (B, H, W))."""
    m = getattr(model, "multiple", 1)
    m = (m, m) if isinstance(m, int) else tuple(m)[-2:]
    return int(m[0]), int(m[1])


def scale_factor(size: tuple[int, int], train_size: Sequence[int] | None) -> int:
    """Factor between a frame of ``size`` = (H, W) and the training frames, rounded half up.

    1 when the frame is below 1.5x the training size, or the training size is unknown (mixed sizes).
    """
    if train_size is None:
        return 1
    return max(1, int(min(size[0] / train_size[0], size[1] / train_size[1]) + 0.5))


def _shares(pred: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
    """Kept share per cell, clipped to [0, 1]; 1 where the input is empty."""
    has = raw != 0
    return torch.where(has, (pred / torch.where(has, raw, 1.0)).clamp(0.0, 1.0), 1.0)


def _strongest(raw: torch.Tensor, f: int) -> torch.Tensor:
    """Each f x f block's cell of largest magnitude, sign kept (blocks at the bottom / right edge may be partial)."""
    hi = F.max_pool3d(raw, (1, f, f), ceil_mode=True)
    lo = -F.max_pool3d(-raw, (1, f, f), ceil_mode=True)
    return torch.where(-lo > hi, lo, hi)


def pooled_shares(run: Callable[[np.ndarray], np.ndarray], raw: torch.Tensor, f: int) -> torch.Tensor:
    """Kept shares (S, C, B, H, W) predicted at 1/f of the resolution, each block's share in its cells.

    The generator draws flare and scenes in fractions of the frame, so a 640x480 file is a 160x120
    one seen at 4x the pixels: at its own scale a 160x120 model mistakes wide real structure for
    halo. Each f x f block becomes its strongest cell, which keeps the per-cell counts the model was
    trained on (a sum would multiply them by up to f * f).
    """
    coarse = _strongest(raw, f)
    share = _shares(torch.from_numpy(run(coarse.numpy())), coarse)
    H, W = raw.shape[-2:]
    return share.repeat_interleave(f, dim=-2).repeat_interleave(f, dim=-1)[..., :H, :W]


def _batches(n: int, batch_size: int) -> Iterator[slice]:
    for i in range(0, n, batch_size):
        yield slice(i, min(i + batch_size, n))


def predict_voxels(model: nn.Module, raw: np.ndarray, *, mode: str = PREDICT_MODE,
                   train_size: tuple[int, int] | None = None, tile: tuple[int, int] = (256, 256),
                   overlap: int = 32, batch_size: int = PREDICT_BATCH_SIZE, device: str | torch.device = DEVICE,
                   amp: bool | None = None) -> np.ndarray:
    """Predicted voxels (S, C, B, H, W) float32 for input voxels of the same shape.

    The model is moved to ``device`` and put in eval mode. ``amp=None`` turns mixed precision
    on for CUDA only. ``train_size`` = (H, W) is required for ``mode="resize"``; for
    ``"multiscale"`` it sets the second scale (none when it is None or the frame is below 1.5x its size).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if raw.ndim != 5:
        raise ValueError(f"expected voxels (S, C, B, H, W), got shape {raw.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if mode == "resize" and train_size is None:
        raise ValueError("mode='resize' needs train_size (the model file's training resolution)")
    dev = resolve_device(device)
    use_amp = dev.type == "cuda" if amp is None else bool(amp)
    model = model.to(dev).eval()
    S, H, W = raw.shape[0], raw.shape[-2], raw.shape[-1]

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), autocast(dev, use_amp):
            y = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(dev))
        return y.float().cpu().numpy()

    out = np.empty(raw.shape, dtype=np.float32)
    if mode in ("pad", "multiscale"):
        f = scale_factor((H, W), train_size) if mode == "multiscale" else 1
        for b in _batches(S, batch_size):
            out[b] = run(raw[b])
            if f > 1:
                x, native = torch.from_numpy(np.ascontiguousarray(raw[b], dtype=np.float32)), torch.from_numpy(out[b])
                # Keep what either scale keeps: erasing real structure is the costlier mistake.
                share = torch.maximum(_shares(native, x), pooled_shares(run, x, f))
                out[b] = torch.where(x != 0, share * x, native).numpy()
    elif mode == "resize":
        size = (int(train_size[0]), int(train_size[1]))  # type: ignore[index]
        for b in _batches(S, batch_size):
            out[b] = resize(run(resize(raw[b], size)), (H, W))
    else:
        th, tw = min(int(tile[0]), H), min(int(tile[1]), W)
        if overlap < 0 or overlap >= min(th, tw):
            raise ValueError(f"overlap must be in [0, tile size) = [0, {min(th, tw)}), got {overlap}")
        mh, mw = _spatial_multiple(model)
        acc = np.zeros(raw.shape, dtype=np.float64)
        total = np.zeros((H, W), dtype=np.float64)
        for y0, y1 in _tile_spans(H, th, overlap, mh):
            wy = _blend_weights(y1 - y0, y0 > 0, y1 < H, overlap)
            for x0, x1 in _tile_spans(W, tw, overlap, mw):
                wgt = np.outer(wy, _blend_weights(x1 - x0, x0 > 0, x1 < W, overlap))
                cell = (Ellipsis, slice(y0, y1), slice(x0, x1))
                total[cell] += wgt
                for b in _batches(S, batch_size):
                    acc[b][cell] += wgt * run(raw[b][cell])
        out[:] = acc / total
    return out
