"""Parameters of the synthetic flare simulator: fixed settings and per-file random ranges."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any
from collections.abc import Mapping

import numpy as np

Range = tuple[float, float]


@dataclass
class SynthConfig:
    """Everything the simulator draws from, with defaults.

    A ``(lo, hi)`` pair is a range each file draws from (uniformly, or log-uniformly where
    marked *log*; integer counts are inclusive); a tuple of names is a set of choices drawn
    with equal weight. Lengths are fractions of the image (so 160x120 and 640x480 look alike),
    intensities are relative (1 ~ a bright indoor scene), times are µs unless named ``_hz``.

    Sensor and simulation
      width, height: 160 x 120 (any >= 16; 640 x 480 is E-Deflare's size). Real backgrounds
        replace them by their own recording's size.
      sizes: (), or (width, height) choices each file draws its sensor size from instead (so a
        model sees flare and scenes at several pixel scales).
      duration_us: 100_000 (>= 1 ms).
      dt_us: 150, the simulation step (10..1000); events inside a step get linearly
        interpolated timestamps.
      threshold: (0.15, 0.30), per-file mean log-contrast threshold; ON and OFF separately.
      threshold_sigma: 0.03, per-pixel threshold mismatch (std; 0..0.1), floored at threshold_min.
      threshold_min: 0.05.
      refractory_us: (50, 400), per file.
      jitter_us: 20, timestamp jitter (uniform +-, 0..dt_us).
      cutoff_hz: (1000, 8000) *log*, photoreceptor bandwidth at intensity 1; it scales with
        intensity (dim pixels respond slowly), capped at 1 / dt.
      log_eps: 1e-3, dark current added before the log.
    Noise (identical in clean and noisy)
      ba_rate_hz: (0.05, 1.5) *log*, background-activity events per pixel per second.
      ba_on_fraction: (0.3, 0.7), share of ON among them.
      hot_pixel_fraction: (0, 3e-4), of all pixels; hot_pixel_rate_hz: (50, 800) *log*.
    Synthetic background (a dim scene that moves)
      background_kinds: ("pan", "objects", "pan+objects"): camera translating over a textured
        world (with optional hand shake), textured shapes moving over a static textured
        scene, or both.
      scene_level: (0.02, 0.3) *log*, mean scene intensity.
      scene_contrast: (0.2, 0.7), std of the texture's log intensity.
      pan_speed: (0.05, 0.6) image widths per second; shake: (0, 0.015) of the width, at
        shake_hz: (2, 12).
      n_objects: (1, 5); object_size: (0.12, 0.45) of the height; object_speed: (0.1, 3.0)
        widths per second; object_contrast: (0.3, 3.0) *log*, the log-intensity step between an
        object and the scene (brighter or darker at random): steps of several thresholds, fast,
        give the dense bursts of real high-contrast motion that flare must not be confused with.
      spinner_prob: 0.0, share of synthetic scenes with a spoked disc turning about its centre (a fan,
        a wheel, the rotating ring of a real recording): spinner_size: (0.15, 0.5) of the height (its
        diameter; a full disc through a thin ring), spinner_hz: (2, 40) turns per second (random
        sense), spinner_spokes: (1, 8); its contrast is object_contrast's. Each pixel's brightness repeats
        at spokes x turns per second (2-320 Hz; its ON bursts at that rate): as periodic as flicker, but
        real motion the model must keep.
    Light sources (in clean and noisy) flickering at twice the mains frequency
      n_sources: (1, 2); flicker_hz: (100, 120) choices (50 / 60 Hz mains);
      frequency_drift: 0.01, relative deviation from nominal (+-).
      waveforms: ("sine", "rectified", "clipped", "square"): raised cosine, full-wave
        rectified mains sine, rectified sine clipped at a random level (flat tops), smoothed
        square (PWM-like, random duty).
      modulation_depth: (0.2, 1.0), brightness swing as a share of the peak.
      dc_prob: 0.0, share of sources that do not flicker at all (DC-driven LED headlights): their
        flare then changes only through motion.
      source_radius: (0.006, 0.025) of the diagonal; source_contrast: (10, 200) *log*,
        peak source intensity as a multiple of the scene level.
      source_outside_prob: 0.1, the source sits just outside the frame (only its flare shows).
      source_moving_prob: 0.5; source_speed: (0.05, 0.5) diagonals per second. Over a panning
        background a source is fixed in the world (moves with the pan) with
        source_world_prob 0.7.
      source_enter_prob: 0.0, share of sources that start just outside the frame and drive across
        it (headlights entering and leaving), at source_speed.
      roll_deg_s: (0, 0), camera roll rate (degrees per second, random sign): every source turns
        about the image centre, its flare with it (ego-motion that moves the whole flare pattern).
    Lens flare (noisy only), shares the flicker of its source
      halo_radius: (0.08, 0.35) of the diagonal (support of the glare halo);
      halo_strength: (0.02, 0.2) *log*, halo peak relative to the source intensity;
      halo_core: (1, 4) source radii, halo_exponent: (0.7, 1.8) (power-law fall-off).
      streak_count: (0, 16) radial streaks (diffraction starburst), streak_length: (0.1, 0.5)
        of the diagonal, streak_width: (0.002, 0.007) of the diagonal, streak_strength:
        (0.005, 0.05) *log* relative to the source; streak_falloff: (1.5, 1.5), exponent of the
        brightness fall-off along a ray (profile (1 - u)^falloff / (1 + 2u), u the share of its length:
        lower keeps long streaks bright to their ends, as a real starburst from a bright lamp).
      veil_prob: 0.0, share of sources with a glare veil: a broad Gaussian glow over a large part
        of the frame, veil_radius: (0.3, 1.0) of the diagonal (its sigma), veil_strength:
        (0.003, 0.03) *log* relative to the source.
      ghost_count: (0, 6) reflections on the line through source and image centre, at
        ghost_position: (-1.3, 0.8) (0 = centre, 1 = source), ghost_radius: (0.01, 0.08) of the
        diagonal, ghost_strength: (0.002, 0.03) *log* relative to the source; discs, rings or
        polygons (aperture shape). ghost_chain_prob: 0.0, share of sources whose ghosts form a chain:
        evenly spaced along the whole ghost_position range, growing in size away from the source.
    Light of the scene (in clean and noisy: real signal the model must keep)
      global_change_prob: 0.0, share of files where the scene's illumination steps once (a light
        switched on or off, an exposure change): a log-intensity step of global_change: (0.2, 1.0)
        (random sign) over global_change_ramp_us: (300, 5000), at a random time. Synthetic scenes
        only (a recorded background keeps its own events).
    Composition of the noisy stream
      merge_prob: 0.0, share of files whose noisy stream is clean plus separately simulated
        flare events (flare alone over a flat field at scene_level; the plain merge of E-Flare's
        composer script: background events are never suppressed or delayed). The others run
        scene and flare through one sensor, where flare light lowers the scene's contrast (the
        suppression E-Deflare's forward model describes).
    Real backgrounds (used when synthesize() is given recordings)
      real_background_prob: 0.5, share of files that use a recording instead of a scene.
      real_flip: True, random horizontal / vertical flips of the recording.
      real_crop: False; True draws the file's size as for a synthetic scene (sizes / width,
        height) and cuts a window of that size at a random place out of a larger recording
        (a 1280x720 street becomes many different 640x480 backgrounds); a smaller side stays
        the recording's.
      Events of the recording are kept in clean; in noisy each is dropped with probability
      F / (B + F), F the flare intensity at its pixel and time, B a smooth random scene
      intensity (scene_level): the share of a background edge's log contrast the flare
      removes (log(B + F) flattens contrast). Recordings shorter than duration_us are played
      forward then backward (time reversed, polarity flipped), which keeps them continuous.
    """

    width: int = 160
    height: int = 120
    sizes: tuple[tuple[int, int], ...] = ()
    duration_us: int = 100_000
    dt_us: int = 150
    threshold: Range = (0.15, 0.30)
    threshold_sigma: float = 0.03
    threshold_min: float = 0.05
    refractory_us: Range = (50.0, 400.0)
    jitter_us: float = 20.0
    cutoff_hz: Range = (1000.0, 8000.0)
    log_eps: float = 1e-3
    ba_rate_hz: Range = (0.05, 1.5)
    ba_on_fraction: Range = (0.3, 0.7)
    hot_pixel_fraction: Range = (0.0, 3e-4)
    hot_pixel_rate_hz: Range = (50.0, 800.0)
    background_kinds: tuple[str, ...] = ("pan", "objects", "pan+objects")
    scene_level: Range = (0.02, 0.3)
    scene_contrast: Range = (0.2, 0.7)
    pan_speed: Range = (0.05, 0.6)
    shake: Range = (0.0, 0.015)
    shake_hz: Range = (2.0, 12.0)
    n_objects: Range = (1, 5)
    object_size: Range = (0.12, 0.45)
    object_speed: Range = (0.1, 3.0)
    object_contrast: Range = (0.3, 3.0)
    spinner_prob: float = 0.0
    spinner_size: Range = (0.15, 0.5)
    spinner_hz: Range = (2.0, 40.0)
    spinner_spokes: Range = (1, 8)
    n_sources: Range = (1, 2)
    flicker_hz: tuple[float, ...] = (100.0, 120.0)
    frequency_drift: float = 0.01
    waveforms: tuple[str, ...] = ("sine", "rectified", "clipped", "square")
    modulation_depth: Range = (0.2, 1.0)
    dc_prob: float = 0.0
    source_radius: Range = (0.006, 0.025)
    source_contrast: Range = (10.0, 200.0)
    source_outside_prob: float = 0.1
    source_moving_prob: float = 0.5
    source_speed: Range = (0.05, 0.5)
    source_world_prob: float = 0.7
    source_enter_prob: float = 0.0
    roll_deg_s: Range = (0.0, 0.0)
    halo_radius: Range = (0.08, 0.35)
    halo_strength: Range = (0.02, 0.2)
    halo_core: Range = (1.0, 4.0)
    halo_exponent: Range = (0.7, 1.8)
    streak_count: Range = (0, 16)
    streak_length: Range = (0.1, 0.5)
    streak_width: Range = (0.002, 0.007)
    streak_strength: Range = (0.005, 0.05)
    streak_falloff: Range = (1.5, 1.5)
    veil_prob: float = 0.0
    veil_radius: Range = (0.3, 1.0)
    veil_strength: Range = (0.003, 0.03)
    ghost_count: Range = (0, 6)
    ghost_position: Range = (-1.3, 0.8)
    ghost_radius: Range = (0.01, 0.08)
    ghost_strength: Range = (0.002, 0.03)
    ghost_chain_prob: float = 0.0
    global_change_prob: float = 0.0
    global_change: Range = (0.2, 1.0)
    global_change_ramp_us: Range = (300.0, 5000.0)
    merge_prob: float = 0.0
    real_background_prob: float = 0.5
    real_flip: bool = True
    real_crop: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, list):  # from YAML / JSON
                setattr(self, f.name, tuple(v))
        self.sizes = tuple(tuple(s) for s in self.sizes)
        self._validate()

    def _validate(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"SynthConfig.{name}={getattr(self, name)!r}: {why}")

        for name in ("width", "height"):
            if int(getattr(self, name)) < 16:
                raise bad(name, "must be >= 16 pixels")
        if not all(len(s) == 2 and all(isinstance(v, int) and v >= 16 for v in s) for s in self.sizes):
            raise bad("sizes", "must be (width, height) pairs of integers >= 16")
        if self.duration_us < 1000:
            raise bad("duration_us", "must be >= 1000 µs")
        if not 10 <= self.dt_us <= 1000:
            raise bad("dt_us", "must be within 10..1000 µs")
        if not 0 <= self.jitter_us <= self.dt_us:
            raise bad("jitter_us", "must be within 0..dt_us")
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type == "Range":
                if not (isinstance(v, tuple) and len(v) == 2 and all(isinstance(a, (int, float)) for a in v)):
                    raise bad(f.name, "must be a (lo, hi) pair of numbers")
                if not v[0] <= v[1]:
                    raise bad(f.name, "needs lo <= hi")
                if v[0] < 0 and f.name != "ghost_position":
                    raise bad(f.name, "must not be negative")
        for name in ("threshold_sigma", "threshold_min", "log_eps"):
            if getattr(self, name) < 0:
                raise bad(name, "must not be negative")
        if self.threshold[0] <= 0 or self.threshold_min <= 0:
            raise bad("threshold", "thresholds must be > 0")
        for name in ("source_outside_prob", "source_moving_prob", "source_world_prob", "merge_prob",
                     "real_background_prob", "dc_prob", "source_enter_prob", "veil_prob", "ghost_chain_prob",
                     "global_change_prob", "spinner_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise bad(name, "must be a probability in [0, 1]")
        if self.n_sources[0] < 1:
            raise bad("n_sources", "needs at least one light source")
        if self.spinner_spokes[0] < 1:
            raise bad("spinner_spokes", "needs at least one spoke")
        if self.streak_falloff[0] <= 0:
            raise bad("streak_falloff", "must be > 0")
        if self.modulation_depth[1] > 1:
            raise bad("modulation_depth", "must be within [0, 1]")
        if not self.flicker_hz or any(f <= 0 for f in self.flicker_hz):
            raise bad("flicker_hz", "needs one or more positive frequencies")
        if max(self.flicker_hz) * 2 * self.dt_us > 1e6 / 4:
            raise bad("flicker_hz", "too fast for dt_us (need >= 8 steps per period)")
        choices = {"background_kinds": ("pan", "objects", "pan+objects"),
                   "waveforms": ("sine", "rectified", "clipped", "square")}
        for name, known in choices.items():
            v = getattr(self, name)
            if not v or any(k not in known for k in v):
                raise bad(name, f"choose from {known}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> SynthConfig:
        """Build from a plain mapping (YAML); unknown keys are an error naming them."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown SynthConfig key(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-friendly mapping (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def draw(rng: np.random.Generator, r: Range, log: bool = False) -> float:
    """A uniform (or log-uniform) draw from a (lo, hi) range."""
    lo, hi = float(r[0]), float(r[1])
    if log and lo > 0:
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    return float(rng.uniform(lo, hi))


def draw_int(rng: np.random.Generator, r: Range) -> int:
    """A uniform integer from an inclusive (lo, hi) range."""
    return int(rng.integers(int(r[0]), int(r[1]) + 1))


def choose(rng: np.random.Generator, options: tuple[Any, ...]) -> Any:
    return options[int(rng.integers(len(options)))]
