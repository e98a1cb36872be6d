"""Paired (noisy = with flare, clean = without) event files, splits and their manifest."""
from __future__ import annotations

import json
import logging
import math
import re
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..events import Events, atomic_path, read_events, write_events
from .config import SynthConfig, draw
from .dvs import ContrastSimulator, PixelParams, excess_share, not_in
from .flare import LightField
from .preview import write_preview
from .scene import GlobalLight, Scene, StaticScene

log = logging.getLogger(__name__)

DEFAULT_COUNTS: Mapping[str, int] = MappingProxyType({"train": 24, "val": 4, "test": 6})
PRODUCER = "evdenoise.synth"


def _pixel_params(cfg: SynthConfig, rng: np.random.Generator) -> PixelParams:
    return PixelParams(
        threshold_on=draw(rng, cfg.threshold), threshold_off=draw(rng, cfg.threshold),
        threshold_sigma=cfg.threshold_sigma, threshold_min=cfg.threshold_min,
        refractory_us=draw(rng, cfg.refractory_us), jitter_us=cfg.jitter_us,
        cutoff_hz=draw(rng, cfg.cutoff_hz, log=True), log_eps=cfg.log_eps)


def _noise(cfg: SynthConfig, width: int, height: int, rng: np.random.Generator) -> tuple[Events, dict[str, Any]]:
    """Background activity (Poisson, per pixel) and a few hot pixels; shared by clean and noisy."""
    T = cfg.duration_us
    hw = width * height
    ba = draw(rng, cfg.ba_rate_hz, log=True)
    on = draw(rng, cfg.ba_on_fraction)
    n = int(rng.poisson(ba * hw * T * 1e-6))
    pix = rng.integers(0, hw, n)
    t = rng.integers(0, T, n)
    p = np.where(rng.random(n) < on, 1, -1)
    n_hot = int(round(draw(rng, cfg.hot_pixel_fraction) * hw))
    hot = rng.choice(hw, n_hot, replace=False) if n_hot else np.zeros(0, np.int64)
    rates = np.exp(rng.uniform(*np.log(cfg.hot_pixel_rate_hz), n_hot)) if n_hot else np.zeros(0)
    counts = rng.poisson(rates * T * 1e-6)
    hot_pix = np.repeat(hot, counts)
    pix = np.concatenate([pix, hot_pix])
    t = np.concatenate([t, rng.integers(0, T, hot_pix.size)])
    p = np.concatenate([p, np.where(rng.random(hot_pix.size) < 0.5, 1, -1)])
    params = {"ba_rate_hz": ba, "ba_on_fraction": on, "hot_pixels": n_hot,
              "hot_rates_hz": [float(r) for r in rates]}
    return Events.from_arrays(t, pix % width, pix // width, p, width, height), params


def cut_background(background: Events, duration_us: int, rng: np.random.Generator, flip: bool
                   ) -> tuple[Events, dict[str, Any]]:
    """A window of ``duration_us`` from a recording, shifted to start at t = 0.

    A recording shorter than that is played forward, then backward in time with flipped
    polarity (the same scene moving the other way), and so on: the stream stays continuous.
    """
    if len(background) == 0:
        raise ValueError("background recording has no events")
    e = background.sorted()
    t_first, t_last = int(e.t[0]), int(e.t[-1])
    span = t_last - t_first + 1
    params: dict[str, Any] = {"recording_t0": t_first, "recording_span_us": span}
    if span >= duration_us:
        start = t_first + int(rng.integers(0, span - duration_us + 1))
        w = e.between(start, start + duration_us)
        t, x, y, p = w.t - start, w.x, w.y, w.p
        params.update(window_start=start, pingpong=False)
    else:
        tau = e.t - t_first
        reps = math.ceil(duration_us / span)
        ts, ps = [], []
        for r in range(reps):  # a handful of copies, each vectorised
            fwd = r % 2 == 0
            ts.append(r * span + (tau if fwd else span - 1 - tau))
            ps.append(e.p if fwd else -e.p)
        order = np.argsort(np.concatenate(ts), kind="stable")
        t = np.concatenate(ts)[order]
        x, y, p = np.tile(e.x, reps)[order], np.tile(e.y, reps)[order], np.concatenate(ps)[order]
        keep = t < duration_us
        t, x, y, p = t[keep], x[keep], y[keep], p[keep]
        params.update(window_start=t_first, pingpong=True)
        log.info("background recording spans %d µs < %d µs: played forward and backward", span, duration_us)
    flip_x = bool(flip and rng.random() < 0.5)
    flip_y = bool(flip and rng.random() < 0.5)
    if flip_x:
        x = background.width - 1 - x
    if flip_y:
        y = background.height - 1 - y
    params.update(flip_x=flip_x, flip_y=flip_y)
    return Events.from_arrays(t, x, y, p, background.width, background.height), params


def crop_background(background: Events, width: int, height: int, rng: np.random.Generator
                    ) -> tuple[Events, dict[str, Any]]:
    """A ``width`` x ``height`` window at a random place of a larger recording, shifted to start at (0, 0);
    a side the recording does not exceed stays whole."""
    w, h = min(int(width), background.width), min(int(height), background.height)
    x0 = int(rng.integers(0, background.width - w + 1))
    y0 = int(rng.integers(0, background.height - h + 1))
    e = background.select((background.x >= x0) & (background.x < x0 + w) & (background.y >= y0)
                          & (background.y < y0 + h))
    cropped = Events.from_arrays(e.t, e.x - x0, e.y - y0, e.p, w, h)
    return cropped, {"crop_x0": x0, "crop_y0": y0, "crop_width": w, "crop_height": h}


def _canonical(e: Events) -> Events:
    """One fixed order (t, y, x, p) so equal event sets give equal arrays."""
    return e.select(np.lexsort((e.p, e.x, e.y, e.t)))


@dataclass
class _World:
    """What one pair is simulated from: its random streams, sensor size, scene, light and pixels."""

    rngs: dict[str, np.random.Generator]
    merge: bool
    width: int
    height: int
    scene: Scene | StaticScene
    glow: GlobalLight
    light: LightField
    pixel: PixelParams
    bg_events: Events | None
    bg_params: dict[str, Any]


def _world(cfg: SynthConfig, seed: int, background: Events | None) -> _World:
    # Streams added later go last: spawn(n) leaves the first ones as they were with fewer.
    names = ("scene", "light", "dvs", "noise", "bg", "size", "comp", "extra")
    rngs = dict(zip(names, (np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(8))))
    merge = bool(rngs["comp"].random() < cfg.merge_prob)
    T = int(cfg.duration_us)
    bg_events: Events | None = None
    bg_params: dict[str, Any] = {}
    width, height = (cfg.sizes[int(rngs["size"].integers(len(cfg.sizes)))] if cfg.sizes
                     else (int(cfg.width), int(cfg.height)))
    if background is None:
        scene: Scene | StaticScene = Scene(cfg, width, height, rngs["scene"])
        glow = GlobalLight(cfg, rngs["extra"], T)
    else:
        bg_events, bg_params = cut_background(background, T, rngs["bg"], cfg.real_flip)
        if cfg.real_crop:
            bg_events, crop = crop_background(bg_events, width, height, rngs["size"])
            bg_params.update(crop)
        width, height = bg_events.width, bg_events.height
        scene = StaticScene(cfg, width, height, rngs["scene"])
        glow = GlobalLight(replace(cfg, global_change_prob=0.0), rngs["extra"], T)  # recorded light stays as it was
    light = LightField(cfg, width, height, rngs["light"], scene, pan="pan" in scene.kind, level=scene.level,
                       extra=rngs["extra"])
    return _World(rngs, merge, width, height, scene, glow, light, _pixel_params(cfg, rngs["dvs"]), bg_events,
                  bg_params)


def _simulate(cfg: SynthConfig, w: _World) -> tuple[ContrastSimulator, np.ndarray | None]:
    """Both streams' sensor simulation over the whole duration, and (real backgrounds with sensor composition)
    each recorded event's probability to survive the flare light: B / (B + F), F the flare and B the scene
    intensity at its pixel and time (flare light washes out the scene's contrast)."""
    T, dt = int(cfg.duration_us), int(cfg.dt_us)
    frames = np.empty((2, w.height, w.width), np.float32)  # [clean, noisy]

    def render(t: float) -> np.ndarray:
        src, fl = w.light.render(t)
        lit = w.scene.render(t)
        np.add(lit * np.float32(w.glow.gain(t)) if w.glow.step else lit, src, out=frames[0])
        np.add(w.scene.level if w.merge else frames[0], fl, out=frames[1])
        return fl

    render(0.0)
    sim = ContrastSimulator(frames, w.pixel, w.rngs["dvs"])
    times = np.minimum(np.arange(0, T + dt, dt), T).astype(np.float64)
    keep_p = None
    if w.bg_events is not None and not w.merge:
        bounds = np.searchsorted(w.bg_events.t, times, side="left")
        bg_lin = w.bg_events.y.astype(np.int64) * w.width + w.bg_events.x
        keep_p = np.ones(len(w.bg_events))
        scene_lin = w.scene.render(0.0).reshape(-1)
    for i in range(1, len(times)):
        fl = render(times[i])
        sim.step(frames, times[i - 1], times[i], i)
        if keep_p is not None:
            sl = slice(bounds[i - 1], bounds[i])  # events of this step (all t < T)
            lit = scene_lin[bg_lin[sl]]
            keep_p[sl] = lit / (lit + fl.reshape(-1)[bg_lin[sl]])
    return sim, keep_p


def generate_pair(cfg: SynthConfig, seed: int, background: Events | None = None
                  ) -> tuple[Events, Events, dict[str, Any]]:
    """Simulate one (noisy, clean, meta) pair.

    Clean sees the scene (synthetic, or the ``background`` recording at its own resolution)
    plus the flickering light sources. Noisy (composition ``sensor``) sees the same plus their
    lens flare, simulated jointly (same thresholds, noise, initial state); with probability
    ``cfg.merge_prob`` (composition ``merge``, a plain merge of streams) noisy is instead
    clean plus the events of the flare alone over a flat field at the scene's mean level, so
    noisy holds every clean event. ``meta`` holds every drawn parameter,
    event counts, the flare share (noisy events not in clean) and ``support``: the (H, W)
    bool mask of pixels the flare ever lit; outside it noisy and clean are identical.
    """
    w = _world(cfg, seed, background)
    sim, keep_p = _simulate(cfg, w)
    T = int(cfg.duration_us)
    noise_params: dict[str, Any] = {}
    if w.bg_events is None:
        background, noise_params = _noise(cfg, w.width, w.height, w.rngs["noise"])
    else:
        background = w.bg_events
    noisy_background, n_suppressed_bg = background, 0
    if keep_p is not None:  # recorded events, thinned where flare lights them
        kept = w.rngs["bg"].random(len(background)) < keep_p
        noisy_background, n_suppressed_bg = background.select(kept), int((~kept).sum())
    scene_events = sim.events(0, T)
    clean = _canonical(Events.concatenate([scene_events, background]))
    # merge: stream 1 holds the flare alone, so the clean scene events join it
    noisy = _canonical(Events.concatenate([sim.events(1, T), noisy_background] + ([scene_events] if w.merge else [])))
    n_flare = int(not_in(noisy, clean).sum())
    meta: dict[str, Any] = {
        "seed": int(seed), "width": w.width, "height": w.height, "duration_us": T, "dt_us": int(cfg.dt_us),
        "composition": "merge" if w.merge else "sensor",
        "background": {**w.scene.params, **w.bg_params}, "sources": w.light.params, "global_change": w.glow.params,
        "pixel": asdict(w.pixel), "noise": noise_params,
        "n_noisy": len(noisy), "n_clean": len(clean), "n_flare": n_flare,
        "n_removed": int(not_in(clean, noisy).sum()), "n_suppressed_background": n_suppressed_bg,
        "flare_share": n_flare / max(len(noisy), 1),
        "flare_excess_share": excess_share(noisy, clean),
        "support_fraction": float(w.light.support.mean()),
        "support": w.light.support.copy(),
    }
    return noisy, clean, meta


def file_seed(seed: int, split: str, index: int) -> int:
    """Seed of one file from (seed, split, index): adding files or splits changes no other file."""
    return int(np.random.SeedSequence([int(seed), zlib.crc32(split.encode()), int(index)])
               .generate_state(1, np.uint32)[0])


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def meta_json(meta: Mapping[str, Any]) -> str:
    """The meta dict as JSON, without the support mask."""
    return json.dumps({k: v for k, v in meta.items() if k != "support"}, default=_json_default, sort_keys=True)


def _attrs(meta: Mapping[str, Any], name: str, role: str, cfg: SynthConfig) -> dict[str, Any]:
    src = meta["sources"][0]
    return {
        "synth_name": name, "synth_role": role, "synth_seed": meta["seed"],
        "synth_params": meta_json(meta), "synth_config": json.dumps(cfg.to_dict(), sort_keys=True),
        "flare_share": meta["flare_share"], "n_flare": meta["n_flare"],
        "flicker_hz": src["flicker_hz"], "background": meta["background"]["kind"],
        "duration_us": meta["duration_us"],
    }


def pair_paths(split: str, index: int) -> tuple[str, Path, Path]:
    """Name and (noisy, clean) paths relative to the data root of one generated pair."""
    name = f"synth_{split}_{index:04d}"
    return name, Path(split) / "noisy" / f"{name}_bg_flare.h5", Path(split) / "clean" / f"{name}_bg_light.h5"


_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def synthesize(root: Path, counts: Mapping[str, int] = DEFAULT_COUNTS, cfg: SynthConfig | None = None,
               seed: int = 0, previews: bool = False, backgrounds: Sequence[Path] = ()) -> pd.DataFrame:
    """Write paired files for each split and the manifest (also ``<root>/manifest.csv``).

    Files: ``<root>/<split>/noisy/<name>_bg_flare.h5``, ``<root>/<split>/clean/<name>_bg_light.h5``
    and, with ``previews``, ``<root>/<split>/previews/<name>.png``. With ``backgrounds``
    (event files), each file uses one of them (chosen at random) with probability
    ``cfg.real_background_prob``, at the recording's own resolution.
    """
    cfg = cfg or SynthConfig()
    root = Path(root)
    for split, n in counts.items():
        if not _SPLIT_NAME.match(str(split)):
            raise ValueError(f"split name {split!r}: use letters, digits, '_' or '-'")
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"count for split {split!r} must be a non-negative integer, got {n!r}")
    loaded: dict[Path, Events] = {}
    rows = []
    for split, n in counts.items():
        for i in range(int(n)):
            fseed = file_seed(seed, split, i)
            name, noisy_rel, clean_rel = pair_paths(split, i)
            bg_path: Path | None = None
            if backgrounds:
                pick = np.random.default_rng([fseed, 1])
                if pick.random() < cfg.real_background_prob:
                    bg_path = Path(backgrounds[int(pick.integers(len(backgrounds)))])
            if bg_path is not None and bg_path not in loaded:
                loaded[bg_path] = read_events(bg_path, sort=True)
            noisy, clean, meta = generate_pair(cfg, fseed, loaded[bg_path] if bg_path else None)
            write_events(root / noisy_rel, noisy, _attrs(meta, name, "noisy", cfg), producer=PRODUCER)
            write_events(root / clean_rel, clean, _attrs(meta, name, "clean", cfg), producer=PRODUCER)
            preview_rel = ""
            if previews:
                preview_rel = str(Path(split) / "previews" / f"{name}.png")
                write_preview(noisy, clean, root / preview_rel)
            src = meta["sources"][0]
            rows.append({
                "split": split, "name": name, "noisy": str(noisy_rel), "clean": str(clean_rel),
                "preview": preview_rel, "seed": fseed, "width": meta["width"], "height": meta["height"],
                "duration_us": meta["duration_us"], "composition": meta["composition"],
                "background": meta["background"]["kind"],
                "background_file": str(bg_path) if bg_path else "",
                "n_noisy": meta["n_noisy"], "n_clean": meta["n_clean"], "n_flare": meta["n_flare"],
                "n_removed": meta["n_removed"], "flare_share": meta["flare_share"],
                "flare_excess_share": meta["flare_excess_share"],
                "support_fraction": meta["support_fraction"], "n_sources": len(meta["sources"]),
                "flicker_hz": src["flicker_hz"], "waveform": src["waveform"], "params": meta_json(meta),
            })
            log.info("%s: %d noisy / %d clean events, flare share %.2f", name, meta["n_noisy"],
                     meta["n_clean"], meta["flare_share"])
    manifest = pd.DataFrame(rows)
    _warn_stale(root, counts, set(manifest["name"]) if len(manifest) else set())
    with atomic_path(root / "manifest.csv") as tmp:
        manifest.to_csv(tmp, index=False)
    return manifest


def _warn_stale(root: Path, counts: Mapping[str, int], names: set[str]) -> None:
    """Files from an earlier run with larger counts are not deleted, but not hidden either."""
    for split in counts:
        for p in sorted((root / split).glob("*/synth_*.h5")):
            stem = p.name.rsplit("_bg_", 1)[0]
            if stem not in names:
                log.warning("%s is not part of this synthetic set (left from an earlier run?)", p)
