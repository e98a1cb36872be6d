"""Flickering light sources and the lens flare they cause.

A source is a small bright disc whose brightness follows a mains-driven waveform A(t). Its
flare (glare halo, radial diffraction streaks, ghost reflections on the line through the
image centre) is light from the same source, so it carries the same A(t). Every flare
component has compact support (exactly zero outside), which makes the flare's footprint,
and so the region where noisy and clean may differ, exact.
"""
from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np

from .config import SynthConfig, choose, draw, draw_int
from .scene import Patch


class _Camera(Protocol):
    def camera_offset(self, t_us: Any) -> tuple[Any, Any]: ...


def flicker(t_us: np.ndarray, hz: float, waveform: str, depth: float, phase: float, shape: float) -> np.ndarray:
    """Relative brightness A(t) in [1 - depth, 1], period 1 / hz.

    ``shape`` is the clip level of "clipped" (flat tops above it) and the duty cycle of
    "square"; other waveforms ignore it.
    """
    t = np.asarray(t_us, dtype=np.float64) * 1e-6
    if waveform == "sine":
        w = 0.5 + 0.5 * np.cos(2 * np.pi * hz * t + phase)
    elif waveform == "rectified":  # |mains sine|: mains at hz / 2
        w = np.abs(np.sin(np.pi * hz * t + phase))
    elif waveform == "clipped":
        w = np.minimum(np.abs(np.sin(np.pi * hz * t + phase)) / shape, 1.0)
    elif waveform == "square":  # PWM-like, edges smoothed over ~2 % of a period
        w = 1 / (1 + np.exp(-25 * (np.cos(2 * np.pi * hz * t + phase) - math.cos(np.pi * shape))))
    else:
        raise ValueError(f"unknown flicker waveform {waveform!r}")
    return (1 - depth + depth * w).astype(np.float64)


def _soft_disc(radius: float, blur: float) -> np.ndarray:
    """Disc of the given radius with a linear edge ``blur`` px wide; values in [0, 1]."""
    n = 2 * int(math.ceil(radius + blur)) + 3
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) - (n - 1) / 2
    return np.clip((radius - np.hypot(xx, yy)) / max(blur, 1e-3) + 0.5, 0, 1).astype(np.float32)


def _ghost(kind: str, radius: float, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Ghost reflection image (peak 1): a defocused disc, a ring, or the aperture polygon."""
    blur = max(1.0, radius * rng.uniform(0.1, 0.4))
    n = 2 * int(math.ceil(radius + blur)) + 3
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) - (n - 1) / 2
    info: dict[str, Any] = {"kind": kind, "radius_px": radius, "blur_px": blur}
    if kind == "polygon":
        k = int(rng.integers(5, 9))
        rot = rng.uniform(0, 2 * np.pi)
        info["corners"] = k
        # Distance to a regular polygon's edges: max over its edge normals.
        d = np.max([xx * math.cos(rot + 2 * np.pi * i / k) + yy * math.sin(rot + 2 * np.pi * i / k)
                    for i in range(k)], axis=0) - radius
    else:
        d = np.hypot(xx, yy) - radius
    g = np.clip(0.5 - d / blur, 0, 1)
    if kind == "ring":  # bright rim, faint inside
        inner = float(rng.uniform(0.6, 0.85))
        info["inner"] = inner
        g = g * (0.25 + 0.75 * np.clip((np.hypot(xx, yy) - inner * radius) / blur + 0.5, 0, 1))
    return g.astype(np.float32), info


def _rigid_flare(r_src: float, halo_r: float, halo_strength: float, core: float, q: float,
                 streaks: list[dict[str, float]], falloff: float = 1.5) -> np.ndarray:
    """Halo + streaks centred in a square patch (peak relative units, source intensity 1)."""
    reach = max([halo_r] + [s["length"] for s in streaks])
    n = 2 * int(math.ceil(reach)) + 3
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) - (n - 1) / 2
    r = np.hypot(xx, yy)
    # Power-law glare around the source, shifted to reach zero at halo_r (compact support).
    r0 = core * r_src
    edge = (1 + (halo_r / r0) ** 2) ** -q
    out = halo_strength * np.maximum(((1 + (r / r0) ** 2) ** -q - edge) / (1 - edge), 0)
    tail = math.exp(-4.5)  # Gaussian cross-section cut at 3 sigma
    for s in streaks:
        c, sn = math.cos(s["angle"]), math.sin(s["angle"])
        along = xx * c + yy * sn
        across = -xx * sn + yy * c
        u = np.clip(along / s["length"], 0, 1)
        width = s["width"] * (1 + 1.5 * u)  # streaks widen outwards
        cross = np.maximum(np.exp(-0.5 * (across / width) ** 2) - tail, 0) / (1 - tail)
        profile = (1 - u) ** falloff / (1 + 2 * u) * (along > 0)
        out += s["strength"] * cross * profile
    return out.astype(np.float32)


def _veil(sigma: float, x: float, y: float, height: int, width: int) -> np.ndarray:
    """A broad Gaussian glow (peak 1) centred at (x, y), cut to zero at 3 sigma (compact support)."""
    gx = np.exp(-0.5 * ((np.arange(width, dtype=np.float32) - x) / sigma) ** 2)
    gy = np.exp(-0.5 * ((np.arange(height, dtype=np.float32) - y) / sigma) ** 2)
    tail = math.exp(-4.5)
    return np.maximum(np.outer(gy, gx) - tail, 0) / (1 - tail)


def _entry(width: int, height: int, margin: float, speed: float, rng: np.random.Generator
           ) -> tuple[tuple[float, float], tuple[float, float]]:
    """Start just outside a random edge and a velocity that drives into and across the frame."""
    side = int(rng.integers(4))
    u = rng.uniform(0.15, 0.85)
    start = [(-margin, u * height), (width - 1 + margin, u * height),
             (u * width, -margin), (u * width, height - 1 + margin)][side]
    heading = [0.0, np.pi, np.pi / 2, -np.pi / 2][side] + rng.uniform(-0.4, 0.4)
    return (float(start[0]), float(start[1])), (speed * math.cos(heading), speed * math.sin(heading))


class LightSource:
    """One flickering source: its image (clean), its flare (noisy only), and their motion.

    ``extra`` draws the factors added after the first generator (DC light, entering, veils, ghost chains,
    streak fall-off), so files made with those factors off stay bit-identical to earlier versions.
    ``roll`` is the camera's roll rate (rad/s): the source turns about the image centre.
    """

    def __init__(self, cfg: SynthConfig, width: int, height: int, rng: np.random.Generator,
                 camera: _Camera, pan: bool, level: float, hz: float, phase_offset: float,
                 extra: np.random.Generator, roll: float = 0.0) -> None:
        # The draws keep their order across the helpers: the same seed gives the same file.
        diag = math.hypot(width, height)
        self.roll = roll
        self.width, self.height = width, height
        self._draw_light(cfg, rng, level, hz, phase_offset)
        r_src = max(draw(rng, cfg.source_radius) * diag, 0.8)
        outside = self._place(cfg, rng, extra, camera, pan, r_src, diag)
        # Clean: the lamp itself, slightly blurred by the optics.
        self.source = Patch(_soft_disc(r_src, 1.0))
        # Noisy: halo + streaks (rigid around the source) and ghosts (on the centre line).
        rigid = self._draw_rigid(cfg, rng, extra, r_src, diag)
        ghost_info, chain = self._draw_ghosts(cfg, rng, extra, diag)
        self.params: dict[str, Any] = {
            "flicker_hz": self.hz, "waveform": self.waveform, "depth": self.depth, "phase": self.phase,
            "shape": self.shape, "intensity": self.intensity, "radius_px": r_src, "outside": outside,
            "start_px": list(self.start), "motion": self.motion, "velocity_px_s": list(self.velocity), **rigid,
            "ghosts": ghost_info, "ghost_chain": chain, "dc": self.dc, "roll_rad_s": roll,
            "veil": None if self.veil is None else {"sigma_px": self.veil[0], "strength": self.veil[1]},
        }

    def _draw_light(self, cfg: SynthConfig, rng: np.random.Generator, level: float, hz: float,
                    phase_offset: float) -> None:
        self.hz = hz * (1 + rng.uniform(-cfg.frequency_drift, cfg.frequency_drift))
        self.waveform = choose(rng, cfg.waveforms)
        self.depth = draw(rng, cfg.modulation_depth)
        self.phase = phase_offset + rng.uniform(0, 0.3)
        self.shape = rng.uniform(0.3, 0.8) if self.waveform in ("clipped", "square") else 0.0
        self.intensity = level * draw(rng, cfg.source_contrast, log=True)

    def _place(self, cfg: SynthConfig, rng: np.random.Generator, extra: np.random.Generator, camera: _Camera,
               pan: bool, r_src: float, diag: float) -> bool:
        """Start, motion and DC drive; returns whether the source starts outside the frame."""
        width, height = self.width, self.height
        # Position: inside the frame, or just outside it (only the flare shows).
        outside = bool(rng.random() < cfg.source_outside_prob)
        if outside:
            out = r_src + rng.uniform(1, 0.05 * diag)
            u = rng.uniform(0.05, 0.95)
            x0, y0 = [(-out, u * height), (width - 1 + out, u * height),
                      (u * width, -out), (u * width, height - 1 + out)][int(rng.integers(4))]
        else:
            x0, y0 = rng.uniform(0.05, 0.95) * width, rng.uniform(0.05, 0.95) * height
        self.motion = "static"
        self.velocity = (0.0, 0.0)
        self._camera: _Camera | None = None
        if pan and rng.random() < cfg.source_world_prob:
            self.motion = "world"  # a street lamp: fixed in the world, moves with the camera
            self._camera = camera
        elif rng.random() < cfg.source_moving_prob:
            self.motion = "moving"  # a car's or a hand-held light
            speed = draw(rng, cfg.source_speed) * diag
            a = rng.uniform(0, 2 * np.pi)
            self.velocity = (speed * math.cos(a), speed * math.sin(a))
        self.start = (float(x0), float(y0))
        self.dc = bool(extra.random() < cfg.dc_prob)
        if self.dc:  # a DC-driven lamp: constant brightness
            self.depth = 0.0
        if extra.random() < cfg.source_enter_prob:
            self.motion, self._camera = "entering", None
            self.start, self.velocity = _entry(width, height, r_src + 1, draw(extra, cfg.source_speed) * diag, extra)
        return outside

    def _draw_rigid(self, cfg: SynthConfig, rng: np.random.Generator, extra: np.random.Generator, r_src: float,
                    diag: float) -> dict[str, Any]:
        """The halo, streaks and veil that move with the source; returns their parameters."""
        halo_r = draw(rng, cfg.halo_radius) * diag
        n_streaks = draw_int(rng, cfg.streak_count)
        base_angle = rng.uniform(0, 2 * np.pi)
        regular = rng.random() < 0.7  # aperture blades give evenly spaced spikes
        length = draw(rng, cfg.streak_length) * diag
        streaks = [{
            "angle": float(base_angle + 2 * np.pi * i / max(n_streaks, 1)
                           + (rng.normal(0, 0.05) if regular else rng.uniform(-0.5, 0.5))),
            "length": float(length * rng.uniform(0.5, 1.0)),
            "width": float(max(0.5, draw(rng, cfg.streak_width) * diag)),
            "strength": float(draw(rng, cfg.streak_strength, log=True) * rng.uniform(0.5, 1.0)),
        } for i in range(n_streaks)]
        halo_strength = draw(rng, cfg.halo_strength, log=True)
        core = draw(rng, cfg.halo_core)
        q = draw(rng, cfg.halo_exponent)
        falloff = draw(extra, cfg.streak_falloff)
        self.rigid = Patch(_rigid_flare(r_src, halo_r, halo_strength, core, q, streaks, falloff))
        self.veil: tuple[float, float] | None = None  # (sigma px, strength)
        if extra.random() < cfg.veil_prob:
            self.veil = (draw(extra, cfg.veil_radius) * diag, draw(extra, cfg.veil_strength, log=True))
        return {"halo_radius_px": halo_r, "halo_strength": halo_strength, "halo_core": core, "halo_exponent": q,
                "streaks": streaks, "streak_falloff": falloff}

    def _draw_ghosts(self, cfg: SynthConfig, rng: np.random.Generator, extra: np.random.Generator,
                     diag: float) -> tuple[list[dict[str, Any]], bool]:
        """Ghosts on the line through the source and the image centre; returns their parameters and whether
        they form a chain."""
        self.ghosts: list[tuple[Patch, float]] = []  # (image, position k on the centre line)
        ghost_info = []
        n_ghosts = draw_int(rng, cfg.ghost_count)
        chain = bool(extra.random() < cfg.ghost_chain_prob)
        # A chain: evenly spaced over the whole position range, larger the farther from the source.
        spots = np.linspace(cfg.ghost_position[0], cfg.ghost_position[1], max(n_ghosts, 1))
        for i in range(n_ghosts):
            k = draw(rng, cfg.ghost_position)
            if chain:
                k = float(spots[i])
            if abs(k - 1) < 0.15:  # not on top of the source
                k -= 0.3
            kind = choose(rng, ("disc", "ring", "polygon"))
            radius = draw(rng, cfg.ghost_radius) * diag
            if chain:
                radius = (cfg.ghost_radius[0] + (cfg.ghost_radius[1] - cfg.ghost_radius[0])
                          * min(abs(1 - k) / 2.3, 1.0)) * diag
            img, info = _ghost(kind, radius, rng)
            strength = draw(rng, cfg.ghost_strength, log=True)
            self.ghosts.append((Patch(img * strength), k))
            ghost_info.append({**info, "position": k, "strength": strength})
        return ghost_info, chain

    @property
    def static(self) -> bool:
        return self.motion == "static" and self.roll == 0

    def position(self, t_us: float) -> tuple[float, float]:
        if self._camera is not None:
            dx, dy = self._camera.camera_offset(t_us)
            x, y = self.start[0] + float(dx), self.start[1] + float(dy)
        else:
            t = t_us * 1e-6
            x, y = self.start[0] + self.velocity[0] * t, self.start[1] + self.velocity[1] * t
        if self.roll:  # the camera turns about its optical axis: the image turns about its centre
            a = self.roll * t_us * 1e-6
            cx, cy = (self.width - 1) / 2, (self.height - 1) / 2
            c, s = math.cos(a), math.sin(a)
            x, y = cx + c * (x - cx) - s * (y - cy), cy + s * (x - cx) + c * (y - cy)
        return x, y

    def render(self, t_us: float, source: np.ndarray, flare: np.ndarray, brightness: float = 1.0) -> None:
        """Add the source and flare images at time t, at relative brightness A(t)."""
        x, y = self.position(t_us)
        scale = brightness * self.intensity
        s = self.source
        s.add_to(source, x - (s.w - 1) / 2, y - (s.h - 1) / 2, scale)
        r = self.rigid
        r.add_to(flare, x - (r.w - 1) / 2, y - (r.h - 1) / 2, scale)
        cx, cy = (self.width - 1) / 2, (self.height - 1) / 2
        for g, k in self.ghosts:
            gx, gy = cx + k * (x - cx), cy + k * (y - cy)
            g.add_to(flare, gx - (g.w - 1) / 2, gy - (g.h - 1) / 2, scale)
        if self.veil is not None:
            flare += np.float32(scale * self.veil[1]) * _veil(self.veil[0], x, y, self.height, self.width)

    def brightness(self, t_us: np.ndarray) -> np.ndarray:
        return flicker(t_us, self.hz, self.waveform, self.depth, self.phase, self.shape)


class LightField:
    """All light sources of a file; ``render(t)`` gives (source, flare) intensity frames.

    It also records the flare support: every pixel the flare lit at any rendered time.
    """

    def __init__(self, cfg: SynthConfig, width: int, height: int, rng: np.random.Generator,
                 camera: _Camera, pan: bool, level: float, extra: np.random.Generator) -> None:
        """``camera`` moves world-fixed sources over a panning scene; ``level`` is the scene's mean intensity;
        ``extra`` draws the later factors (see :class:`LightSource`)."""
        self.width, self.height = width, height
        hz = float(choose(rng, cfg.flicker_hz))  # one mains grid per scene
        n = draw_int(rng, cfg.n_sources)
        # Lamps on different phases of a three-phase grid flicker out of step.
        phases = [float(rng.choice([0.0, 2 * np.pi / 3, 4 * np.pi / 3])) for _ in range(n)]
        roll = math.radians(draw(extra, cfg.roll_deg_s)) * (1 if extra.random() < 0.5 else -1)
        self.sources = [LightSource(cfg, width, height, rng, camera, pan, level, hz, ph, extra, roll)
                        for ph in phases]
        self.support = np.zeros((height, width), bool)
        self._static: list[tuple[np.ndarray, np.ndarray]] | None = None
        if all(s.static for s in self.sources):
            self._static = []
            for s in self.sources:
                src, fl = self._blank(), self._blank()
                s.render(0.0, src, fl)
                self._static.append((src, fl))
                self.support |= fl > 0
        self._src, self._flare = self._blank(), self._blank()

    def _blank(self) -> np.ndarray:
        return np.zeros((self.height, self.width), np.float32)

    @property
    def params(self) -> list[dict[str, Any]]:
        return [s.params for s in self.sources]

    def render(self, t_us: float) -> tuple[np.ndarray, np.ndarray]:
        """(source, flare) intensities at t; the arrays are reused between calls."""
        src, fl = self._src, self._flare
        src[...] = 0
        fl[...] = 0
        for i, s in enumerate(self.sources):
            a = np.float32(s.brightness(np.float64(t_us)))
            if self._static is not None:
                src += a * self._static[i][0]
                fl += a * self._static[i][1]
            else:
                s.render(t_us, src, fl, float(a))
        if self._static is None:
            self.support |= fl > 0
        return src, fl
