"""Background rendering: dim textured scenes that move (camera pan and/or moving shapes).

Everything is drawn with sub-pixel positions through :class:`Patch` (bilinear placement of a
pre-rendered image), so motion is smooth at any speed and each frame costs a few slices.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import SynthConfig, choose, draw, draw_int


class Patch:
    """An image (optionally with several channels) that can be placed at a float position.

    ``sample(x, y, H, W)`` gives the patch shifted so its top-left corner lies at (x, y) in an
    H x W frame, bilinearly interpolated and clipped to the frame: (frame slices, values).
    """

    def __init__(self, data: np.ndarray) -> None:
        data = np.asarray(data, dtype=np.float32)
        if data.ndim == 2:
            data = data[None]
        self.channels, self.h, self.w = data.shape
        # One zero row/column on each side so the shifted edges need no special case.
        self._pad = np.pad(data, ((0, 0), (1, 1), (1, 1)))

    def sample(self, x: float, y: float, height: int, width: int
               ) -> tuple[tuple[slice, slice], np.ndarray] | None:
        ix, iy = math.floor(x), math.floor(y)
        fx, fy = np.float32(x - ix), np.float32(y - iy)
        r0, r1 = max(iy, 0), min(iy + self.h + 1, height)
        c0, c1 = max(ix, 0), min(ix + self.w + 1, width)
        if r0 >= r1 or c0 >= c1:
            return None
        p = self._pad
        a0, a1, b0, b1 = r0 - iy, r1 - iy, c0 - ix, c1 - ix
        top = p[:, a0 + 1:a1 + 1, b0 + 1:b1 + 1] * (1 - fx) + p[:, a0 + 1:a1 + 1, b0:b1] * fx
        bottom = p[:, a0:a1, b0 + 1:b1 + 1] * (1 - fx) + p[:, a0:a1, b0:b1] * fx
        return (slice(r0, r1), slice(c0, c1)), top * (1 - fy) + bottom * fy

    def add_to(self, frame: np.ndarray, x: float, y: float, scale: float = 1.0) -> None:
        """frame += scale * patch (channel 0) placed at (x, y)."""
        s = self.sample(x, y, *frame.shape)
        if s is not None:
            frame[s[0]] += np.float32(scale) * s[1][0]

    def composite_onto(self, frame: np.ndarray, x: float, y: float) -> None:
        """Alpha-composite a (premultiplied value, alpha) patch onto frame."""
        s = self.sample(x, y, *frame.shape)
        if s is not None:
            region = frame[s[0]]
            region *= 1 - s[1][1]
            region += s[1][0]


def smooth_noise(rng: np.random.Generator, h: int, w: int, scales: tuple[float, ...]) -> np.ndarray:
    """Periodic smooth noise with structure at several scales (px), zero mean and unit std.

    White noise filtered in the Fourier domain: one FFT pair whatever the scales (large
    Gaussian kernels in image space would dominate the set-up time at 640 x 480).
    """
    spectrum = np.fft.rfft2(rng.standard_normal((h, w)))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f2 = fx ** 2 + fy ** 2
    gain = np.zeros_like(f2)
    for s in scales:  # Gaussian of std s px; coarser scales a bit stronger
        g = np.exp(-2 * np.pi ** 2 * s ** 2 * f2)
        gain += g / np.sqrt((g ** 2).sum()) * s ** 0.3
    out = np.fft.irfft2(spectrum * gain, s=(h, w))
    return ((out - out.mean()) / (out.std() + 1e-12)).astype(np.float32)


def texture(rng: np.random.Generator, h: int, w: int, unit: float) -> np.ndarray:
    """Log-intensity texture, zero mean / unit std, with sharp edges (events come from edges).

    ``unit`` is a length in pixels (about 1/100 of the image diagonal) so the look does not
    depend on resolution. Styles: man-made (rectangles, bars, lines over smooth shading),
    natural (thresholded fractal noise: foliage-like blobs) or a mix.
    """
    style = choose(rng, ("man-made", "natural", "mixed"))
    base = smooth_noise(rng, h, w, (2 * unit, 8 * unit, 25 * unit)) * 0.5
    if style in ("natural", "mixed"):
        blob = smooth_noise(rng, h, w, (unit, 3 * unit, 10 * unit))
        base += np.tanh(4 * (blob - rng.uniform(-0.5, 0.5))) * 0.6
    if style in ("man-made", "mixed"):
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        n_rect = int(rng.integers(3, 12) * h * w / (100 * unit) ** 2 * 2) + 2
        for _ in range(n_rect):
            rw, rh = rng.uniform(3, 30, size=2) * unit
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            edge = np.clip(np.minimum(rw / 2 - np.abs(xx - cx), rh / 2 - np.abs(yy - cy)) + 0.5, 0, 1)
            base += edge * np.float32(rng.normal(0, 0.8))
        for _ in range(int(rng.integers(0, 6))):  # thin lines (poles, wires, frames)
            a = rng.uniform(0, np.pi)
            d = (xx - rng.uniform(0, w)) * math.sin(a) - (yy - rng.uniform(0, h)) * math.cos(a)
            base += np.clip(rng.uniform(0.3, 1.5) * unit - np.abs(d) + 0.5, 0, 1) * np.float32(rng.normal(0, 1.2))
    base -= base.mean()
    return (base / (base.std() + 1e-12)).astype(np.float32)


def shape_alpha(kind: str, size: float, rng: np.random.Generator) -> np.ndarray:
    """Anti-aliased alpha mask of a shape fitting in a size x size box (+1 px margin)."""
    n = int(math.ceil(size)) + 2
    yy, xx = (np.mgrid[0:n, 0:n].astype(np.float32) - (n - 1) / 2)
    r = size / 2
    if kind == "ellipse":
        ax = r * rng.uniform(0.5, 1.0)
        d = (np.hypot(xx / ax, yy / r) - 1) * min(ax, r)  # approximate signed distance
    elif kind == "rectangle":
        hw, hh = r * rng.uniform(0.4, 1.0), r * rng.uniform(0.4, 1.0)
        d = np.maximum(np.abs(xx) - hw, np.abs(yy) - hh)
    else:  # convex polygon with 3..6 corners: a cut-out by half-planes
        k = int(rng.integers(3, 7))
        angles = rng.uniform(0, 2 * np.pi) + np.arange(k) * 2 * np.pi / k + rng.uniform(-0.3, 0.3, k)
        d = np.max([xx * math.cos(a) + yy * math.sin(a) for a in angles], axis=0) - r * 0.8
    return np.clip(0.5 - d, 0, 1).astype(np.float32)


@dataclass
class _Mover:
    patch: Patch
    x0: float
    y0: float
    vx: float
    vy: float


class _Spinner:
    """A spoked disc turning about its centre (a fan, a wheel, a rotating ring): real motion whose events
    repeat at spokes x turns per second, as periodic as flicker, so a model must not take periodicity alone
    for flare."""

    def __init__(self, cfg: SynthConfig, rng: np.random.Generator, width: int, height: int, level: float) -> None:
        radius = draw(rng, cfg.spinner_size) * height / 2
        self.hz = draw(rng, cfg.spinner_hz) * (1 if rng.random() < 0.5 else -1)
        self.spokes = draw_int(rng, cfg.spinner_spokes)
        n = int(math.ceil(2 * radius)) + 2
        self.x0 = rng.uniform(0, width - n) if width > n else (width - n) / 2
        self.y0 = rng.uniform(0, height - n) if height > n else (height - n) / 2
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) - (n - 1) / 2
        r = np.hypot(xx, yy)
        inner = radius * rng.uniform(0.0, 0.7)  # a full disc through a thin ring
        self.alpha = (np.clip(radius - r + 0.5, 0, 1) * np.clip(r - inner + 0.5, 0, 1)).astype(np.float32)
        self.angle = np.arctan2(yy, xx).astype(np.float32)
        self.step = draw(rng, cfg.object_contrast, log=True) * (1 if rng.random() < 0.5 else -1)
        self.level = level
        self.params: dict[str, Any] = {"x_px": self.x0 + n / 2, "y_px": self.y0 + n / 2, "radius_px": radius,
                                       "inner_px": inner, "hz": self.hz, "spokes": self.spokes,
                                       "event_hz": abs(self.hz) * self.spokes}

    def composite_onto(self, frame: np.ndarray, t_us: float) -> None:
        turned = self.spokes * (self.angle - np.float32(2 * np.pi * self.hz * t_us * 1e-6))
        # Smooth spokes: a raised cosine sharpened towards a bar pattern, bright on a dark disc or vice versa.
        spokes = np.clip(2.0 * np.cos(turned), -1, 1) * np.float32(0.5) + np.float32(0.5)
        lum = self.level * np.exp(np.float32(self.step) * spokes)
        Patch(np.stack([lum * self.alpha, self.alpha])).composite_onto(frame, self.x0, self.y0)


class Scene:
    """A dim textured scene that moves; ``render(t_us)`` gives its (H, W) intensity."""

    def __init__(self, cfg: SynthConfig, width: int, height: int, rng: np.random.Generator) -> None:
        self.width, self.height = width, height
        self.kind: str = choose(rng, cfg.background_kinds)
        T = cfg.duration_us * 1e-6
        unit = math.hypot(width, height) / 100
        self.level = draw(rng, cfg.scene_level, log=True)
        contrast = draw(rng, cfg.scene_contrast)
        pan = "pan" in self.kind
        self.camera = (0.0, 0.0, 0.0, 0.0, 0.0)  # vx, vy px/s, shake amplitude px, frequency, phase
        margin = 2
        if pan:
            speed = draw(rng, cfg.pan_speed) * width
            a = rng.uniform(0, 2 * np.pi)
            amp = draw(rng, cfg.shake) * width
            self.camera = (speed * math.cos(a), speed * math.sin(a), amp, draw(rng, cfg.shake_hz),
                           rng.uniform(0, 2 * np.pi))
            margin = int(math.ceil(speed * T + 2 * amp)) + 2
        # The world is larger than the view by the camera's travel; the view starts centred.
        wh, ww = height + 2 * margin, width + 2 * margin
        self.world = Patch(self.level * np.exp(contrast * texture(rng, wh, ww, unit)))
        self.origin = (-margin, -margin)
        self.movers: list[_Mover] = []
        n_obj = draw_int(rng, cfg.n_objects) if "objects" in self.kind else 0
        for _ in range(n_obj):
            size = draw(rng, cfg.object_size) * height
            alpha = shape_alpha(choose(rng, ("ellipse", "rectangle", "polygon")), size, rng)
            n = alpha.shape[0]
            # Objects are brighter or darker than their surroundings, with their own texture.
            step = draw(rng, cfg.object_contrast, log=True) * (1 if rng.random() < 0.5 else -1)
            lum = self.level * math.exp(step) * np.exp(0.4 * contrast * texture(rng, n, n, unit))
            speed = draw(rng, cfg.object_speed) * width
            a = rng.uniform(0, 2 * np.pi)
            self.movers.append(_Mover(Patch(np.stack([lum * alpha, alpha])),
                                      rng.uniform(-n / 2, width - n / 2), rng.uniform(-n / 2, height - n / 2),
                                      speed * math.cos(a), speed * math.sin(a)))
        self.params: dict[str, Any] = {
            "kind": self.kind, "level": self.level, "contrast": contrast, "n_objects": n_obj,
            "pan_velocity_px_s": [self.camera[0], self.camera[1]], "shake_px": self.camera[2],
            "shake_hz": self.camera[3],
            "object_velocities_px_s": [[m.vx, m.vy] for m in self.movers],
        }
        # Drawn last and only when enabled, so files without spinners keep their earlier random streams.
        self.spinner = (_Spinner(cfg, rng, width, height, self.level)
                        if cfg.spinner_prob > 0 and rng.random() < cfg.spinner_prob else None)
        self.params["spinner"] = {} if self.spinner is None else self.spinner.params

    def camera_offset(self, t_us: np.ndarray | float) -> tuple[Any, Any]:
        """Camera displacement (px) at time(s) t: what world-fixed things move by in the image."""
        vx, vy, amp, f, ph = self.camera
        t = np.asarray(t_us, dtype=np.float64) * 1e-6
        shake = amp * np.sin(2 * np.pi * f * t + ph)
        return -(vx * t + shake), -(vy * t + 0.6 * amp * np.cos(2 * np.pi * f * t + ph))

    def render(self, t_us: float) -> np.ndarray:
        frame = np.empty((self.height, self.width), np.float32)
        dx, dy = self.camera_offset(t_us)
        s = self.world.sample(self.origin[0] + float(dx), self.origin[1] + float(dy), self.height, self.width)
        assert s is not None  # the world always covers the view
        frame[...] = s[1][0]
        t = t_us * 1e-6
        for m in self.movers:
            m.patch.composite_onto(frame, m.x0 + m.vx * t, m.y0 + m.vy * t)
        if self.spinner is not None:
            self.spinner.composite_onto(frame, t_us)
        return frame


class StaticScene:
    """A still, smooth random scene intensity: the unseen scene behind a real recording.

    Its only use is to set how strongly the flare's light washes out contrast and how much
    the light source stands out (the recording supplies the scene's events).
    """

    kind = "real"

    def __init__(self, cfg: SynthConfig, width: int, height: int, rng: np.random.Generator) -> None:
        unit = math.hypot(width, height) / 100
        self.level = draw(rng, cfg.scene_level, log=True)
        self.frame = (self.level * np.exp(0.5 * smooth_noise(rng, height, width, (5 * unit, 20 * unit)))
                      ).astype(np.float32)
        self.params: dict[str, Any] = {"kind": self.kind, "level": self.level}

    def camera_offset(self, t_us: np.ndarray | float) -> tuple[Any, Any]:
        z = np.zeros_like(np.asarray(t_us, dtype=np.float64))
        return z, z

    def render(self, t_us: float) -> np.ndarray:
        return self.frame


class GlobalLight:
    """The scene's illumination over time: constant, or one smooth step (a light switched, an exposure
    change) that every pixel of the scene sees at once. It is real signal: clean and noisy both carry it."""

    def __init__(self, cfg: SynthConfig, rng: np.random.Generator, duration_us: int) -> None:
        self.step: tuple[float, float, float] | None = None  # (log step, ramp µs, mid time µs)
        if rng.random() < cfg.global_change_prob:
            size = draw(rng, cfg.global_change) * (1 if rng.random() < 0.5 else -1)
            self.step = (size, draw(rng, cfg.global_change_ramp_us), rng.uniform(0.2, 0.8) * duration_us)
        self.params: dict[str, Any] = (
            {} if self.step is None else dict(zip(("log_step", "ramp_us", "at_us"), self.step)))

    def gain(self, t_us: float) -> float:
        """Multiplier of the scene's intensity at t (a smoothstep in log intensity)."""
        if self.step is None:
            return 1.0
        size, ramp, at = self.step
        u = min(max((t_us - at) / max(ramp, 1.0) + 0.5, 0.0), 1.0)
        return math.exp(size * u * u * (3 - 2 * u))
