"""The event model: per-pixel log-intensity contrast thresholds, run over intensity frames.

Several streams (clean, noisy) run side by side in one array with the same thresholds,
initial state and timestamp jitter, so wherever their intensities are bit-identical their
events are too. Per step and pixel: a photoreceptor low-pass (bandwidth grows with
intensity), as many events as thresholds were crossed, timestamps interpolated linearly
inside the step, a refractory period after each event, and a small timestamp jitter.
Vectorised over pixels; the only Python loop is over time steps.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..events import Events


@dataclass(frozen=True)
class PixelParams:
    """Per-file sensor parameters (the per-pixel thresholds come from them and a seed)."""

    threshold_on: float
    threshold_off: float
    threshold_sigma: float
    threshold_min: float
    refractory_us: float
    jitter_us: float
    cutoff_hz: float
    log_eps: float


_U64 = np.uint64


def _hash_uniform(a: np.ndarray, b: np.ndarray, c: np.ndarray, key: int) -> np.ndarray:
    """Uniform [0, 1) numbers from integer triples (splitmix64 finaliser); same input, same output."""
    with np.errstate(over="ignore"):
        h = (a.astype(_U64) * _U64(0x9E3779B97F4A7C15) ^ b.astype(_U64) * _U64(0xC2B2AE3D27D4EB4F)
             ^ c.astype(_U64) * _U64(0x165667B19E3779F9) ^ _U64(key))
        h ^= h >> _U64(30)
        h *= _U64(0xBF58476D1CE4E5B9)
        h ^= h >> _U64(27)
        h *= _U64(0x94D049BB133111EB)
        h ^= h >> _U64(31)
    return (h >> _U64(11)).astype(np.float64) * (1.0 / (1 << 53))


class ContrastSimulator:
    """Runs ``streams`` event streams of one H x W sensor over intensity frames.

    ``intensity0`` (streams, H, W) sets the initial state; then call :meth:`step` with the
    next frame and the step's start / end times, and finally :meth:`events`.
    """

    def __init__(self, intensity0: np.ndarray, params: PixelParams, rng: np.random.Generator) -> None:
        self.streams, self.height, self.width = intensity0.shape
        self.p = params
        hw = self.height * self.width
        c_on = np.maximum(rng.normal(params.threshold_on, params.threshold_sigma, hw), params.threshold_min)
        c_off = np.maximum(rng.normal(params.threshold_off, params.threshold_sigma, hw), params.threshold_min)
        # The same pixel has the same thresholds in every stream.
        self.c_on = np.tile(c_on, self.streams).astype(np.float32)
        self.c_off = np.tile(c_off, self.streams).astype(np.float32)
        self._neg_c_off = -self.c_off
        self.key = int(rng.integers(1 << 62))
        self.log_frame = self._log(intensity0)
        # Each pixel starts somewhere between its thresholds, the same in every stream.
        offset = np.tile(rng.uniform(-0.5, 0.5, hw), self.streams).astype(np.float32)
        self.ref = self.log_frame + offset * np.minimum(self.c_on, self.c_off)
        self.last = np.full(self.streams * hw, -np.inf)
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def _log(self, intensity: np.ndarray) -> np.ndarray:
        return np.log(intensity.reshape(-1) + np.float32(self.p.log_eps))

    def step(self, intensity: np.ndarray, t0: float, t1: float, index: int) -> None:
        """Advance from t0 to t1 (µs) where the frame becomes ``intensity``."""
        span = t1 - t0
        target = self._log(intensity)
        # First-order photoreceptor: the time constant shrinks as light grows (capped at one step).
        alpha = np.minimum(intensity.reshape(-1) * np.float32(2 * np.pi * self.p.cutoff_hz * span * 1e-6),
                           np.float32(1.0))
        prev = self.log_frame
        new = prev + alpha * (target - prev)
        self.log_frame = new
        diff = new - self.ref
        cand = np.flatnonzero((diff >= self.c_on) | (diff <= self._neg_c_off))
        if cand.size == 0:
            return
        d = diff[cand].astype(np.float64)
        up = d > 0
        sign = np.where(up, 1.0, -1.0)
        c = np.where(up, self.c_on[cand], self.c_off[cand]).astype(np.float64)
        n = np.floor(np.abs(d) / c)  # thresholds crossed in this step
        rest = sign * (prev[cand] - self.ref[cand])  # how far the pixel was towards the next crossing
        # Log units per µs; > 0 except after float32 rounding of ref, hence the floor.
        rate = np.maximum(np.abs(new[cand] - prev[cand]).astype(np.float64) / span, 1e-12)
        self.ref[cand] += (sign * n * c).astype(np.float32)
        # Crossing j (1..n) happens at t0 + (j c - rest) / rate. The refractory period keeps
        # only crossings after last + refractory, then every m-th (m spacings >= refractory).
        refr = self.p.refractory_us
        last = self.last[cand]
        j0 = np.maximum(np.ceil(((last + refr - t0) * rate + rest) / c), 1.0)
        m = np.maximum(np.ceil(refr * rate / c), 1.0)
        k = np.where(j0 <= n, np.floor((n - j0) / m) + 1, 0).astype(np.int64)
        fired = k > 0
        if not fired.any():
            return
        cand, k, j0, m, c, rest, rate, sign = (a[fired] for a in (cand, k, j0, m, c, rest, rate, sign))
        self.last[cand] = t0 + ((j0 + (k - 1) * m) * c - rest) / rate
        rep = np.repeat(np.arange(cand.size), k)
        q = np.arange(rep.size) - np.repeat(np.cumsum(k) - k, k)
        j = j0[rep] + q * m[rep]
        t = np.clip(t0 + (j * c[rep] - rest[rep]) / rate[rep], t0, t1)
        idx = cand[rep]
        pixel = idx % (self.height * self.width)
        # Jitter keyed on (pixel, step, crossing): identical events in two streams get identical jitter.
        u = _hash_uniform(pixel, np.full(pixel.shape, index), j.astype(np.int64), self.key)
        t = t + (2 * u - 1) * self.p.jitter_us
        self._parts.append((idx, t, sign[rep].astype(np.int8)))

    def events(self, stream: int, duration_us: int) -> Events:
        """The events of one stream, timestamps rounded to µs and kept within [0, duration)."""
        hw = self.height * self.width
        if self._parts:
            idx, t, p = (np.concatenate(a) for a in zip(*self._parts))
        else:
            idx, t, p = np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int8)
        mine = (idx >= stream * hw) & (idx < (stream + 1) * hw)
        pix = idx[mine] - stream * hw
        ts = np.clip(np.floor(t[mine]), 0, duration_us - 1).astype(np.int64)
        return Events.from_arrays(ts, pix % self.width, pix // self.width, p[mine], self.width, self.height)


def _keys(e: Events, t0: int, bin_us: int = 1) -> np.ndarray:
    """One int64 per event from (time bin, y, x, polarity)."""
    return ((((e.t - t0) // bin_us) * e.height + e.y) * e.width + e.x) * 2 + (e.p > 0)


def _lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``keys`` in ``sorted_keys`` and whether they are there (faster than np.isin)."""
    pos = np.minimum(np.searchsorted(sorted_keys, keys), max(len(sorted_keys) - 1, 0))
    found = sorted_keys[pos] == keys if len(sorted_keys) else np.zeros(len(keys), bool)
    return pos, found


def not_in(a: Events, b: Events) -> np.ndarray:
    """Boolean mask over ``a``: events whose exact (t, x, y, p) does not occur in ``b``."""
    if (a.width, a.height) != (b.width, b.height):
        raise ValueError(f"streams of different sensors: {a.width}x{a.height} vs {b.width}x{b.height}")
    t0 = min(int(a.t.min(initial=0)), int(b.t.min(initial=0)))
    return ~_lookup(np.sort(_keys(b, t0)), _keys(a, t0))[1]


def _bin_counts(e: Events, t0: int, bin_us: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct (time bin, pixel, polarity) keys of ``e``, events per key)."""
    k = np.sort(_keys(e, t0, bin_us))
    first = np.flatnonzero(np.r_[True, k[1:] != k[:-1]]) if len(k) else np.zeros(0, np.int64)
    return k[first], np.diff(np.r_[first, len(k)])


def _counts_at(keys: np.ndarray, e: Events, t0: int, bin_us: int) -> np.ndarray:
    """Events of ``e`` in each bin of ``keys`` (0 where it has none)."""
    ke, ne = _bin_counts(e, t0, bin_us)
    pos, found = _lookup(ke, keys)
    return np.where(found, ne[pos] if len(ne) else 0, 0)


def excess_share(noisy: Events, clean: Events, bin_us: int = 1000) -> float:
    """Share of noisy events in excess of clean, counted per pixel, polarity and time bin.

    Unlike :func:`not_in` this does not count background events that the flare merely
    shifted by a few µs, so it measures how much the flare adds.
    """
    _, nn, matched = _matched(noisy, clean, bin_us)
    return float((nn - matched).sum() / max(len(noisy), 1))


def _matched(noisy: Events, clean: Events, bin_us: int) -> tuple[tuple[np.ndarray, int], np.ndarray, np.ndarray]:
    """((noisy's bin keys, their time origin), noisy events per bin, those of them that are the scene's: up to the
    clean stream's count in the bin)."""
    t0 = min(int(noisy.t.min(initial=0)), int(clean.t.min(initial=0)))
    kn, nn = _bin_counts(noisy, t0, bin_us)
    return (kn, t0), nn, np.minimum(nn, _counts_at(kn, clean, t0, bin_us))


def excess_kept(noisy: Events, clean: Events, out: Events, bin_us: int = 1000) -> dict[str, float]:
    """What a subset ``out`` of ``noisy`` (a mask decoder's or a filter's output) does to the flare's excess.

    Per pixel, polarity and time bin, noisy events up to the clean stream's count are the scene's (the flare may
    have shifted them by a little), the rest are the flare's excess (:func:`excess_share`); ``out``'s events in a
    bin count as the scene's first. Returns the excess share of ``noisy``, the share of the excess removed and of
    the scene's events kept (NaN where there are none)."""
    (kn, t0), nn, matched = _matched(noisy, clean, bin_us)
    kept = np.minimum(nn, _counts_at(kn, out, t0, bin_us))
    scene_kept = np.minimum(kept, matched)
    excess, scene = int((nn - matched).sum()), int(matched.sum())
    return {"excess_share": excess / max(len(noisy), 1),
            "excess_removed": 1 - int((kept - scene_kept).sum()) / excess if excess else float("nan"),
            "scene_kept": int(scene_kept.sum()) / scene if scene else float("nan")}
