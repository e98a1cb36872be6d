"""The synthetic flare simulator: determinism, pairing, flare support, flicker, real backgrounds."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from evdenoise.events import EventFileError, Events, read_attrs, read_events
from evdenoise.synth import SynthConfig, file_seed, excess_kept, generate_pair, not_in, synthesize
from evdenoise.synth.flare import flicker

SMALL = dict(width=64, height=48, duration_us=40_000)


def small(**kw: object) -> SynthConfig:
    return SynthConfig(**{**SMALL, **kw})


@pytest.fixture(scope="module")
def pairs() -> list[tuple[Events, Events, dict]]:
    cfg = small()
    return [generate_pair(cfg, seed) for seed in range(4)]


def _outside(e: Events, support: np.ndarray) -> np.ndarray:
    return ~support[e.y, e.x]


def test_config_round_trip_and_errors() -> None:
    cfg = small(flicker_hz=(120.0,), halo_radius=[0.1, 0.2])
    assert cfg.halo_radius == (0.1, 0.2)
    again = SynthConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(ValueError, match="unknown SynthConfig key.*halo_size"):
        SynthConfig.from_dict({"halo_size": 3})
    with pytest.raises(ValueError, match="lo <= hi"):
        small(halo_radius=(0.3, 0.1))
    with pytest.raises(ValueError, match="waveforms"):
        small(waveforms=("triangle",))
    with pytest.raises(ValueError, match="modulation_depth"):
        small(modulation_depth=(0.5, 1.5))


def test_sizes_draw_each_files_sensor_and_leave_the_rest_alone(pairs: list) -> None:
    cfg = small(sizes=[[32, 24], [48, 36]])
    assert cfg.sizes == ((32, 24), (48, 36)) and SynthConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    drawn = {(n.width, n.height) for n, c, _ in (generate_pair(cfg, seed) for seed in range(8))}
    assert drawn == {(32, 24), (48, 36)}
    # One size only: the same scene, flare and noise as without ``sizes`` at that size.
    noisy, clean, _ = generate_pair(small(sizes=[[64, 48]]), 0)
    assert noisy.equals(pairs[0][0]) and clean.equals(pairs[0][1])
    with pytest.raises(ValueError, match="sizes"):
        small(sizes=[[8, 8]])


def test_same_seed_same_pair_other_seed_other_pair(pairs: list) -> None:
    noisy, clean, meta = generate_pair(small(), 0)
    assert noisy.equals(pairs[0][0]) and clean.equals(pairs[0][1])
    assert meta["flare_share"] == pairs[0][2]["flare_share"]
    assert not noisy.equals(pairs[1][0]) and not clean.equals(pairs[1][1])


def test_pair_is_aligned(pairs: list) -> None:
    for noisy, clean, meta in pairs:
        assert (noisy.width, noisy.height) == (clean.width, clean.height) == (64, 48)
        for e in (noisy, clean):
            assert len(e) > 100
            assert e.t.min() >= 0 and e.t.max() < meta["duration_us"]
            assert np.all(np.diff(e.t) >= 0)
            assert set(np.unique(e.p)) <= {-1, 1}
        # Both cover the whole duration (the scene moves and the lamp flickers throughout).
        assert abs(int(noisy.t.max()) - int(clean.t.max())) < 2000
        assert meta["support"].shape == (48, 64)


def test_flare_only_in_noisy_and_inside_support(pairs: list) -> None:
    shares = []
    for noisy, clean, meta in pairs:
        support = meta["support"]
        flare = noisy.select(not_in(noisy, clean))
        assert len(flare) == meta["n_flare"] > 0
        assert support[flare.y, flare.x].all(), "noisy-only events outside the flare support"
        removed = clean.select(not_in(clean, noisy))  # background the flare washed out
        assert support[removed.y, removed.x].all()
        # Away from the flare, noisy and clean are the very same events.
        assert noisy.select(_outside(noisy, support)).equals(clean.select(_outside(clean, support)))
        assert 0 < support.mean() < 1
        shares.append(meta["flare_excess_share"])
    assert 0.05 < np.median(shares) < 0.9


def test_merge_composition_adds_flare_events_to_clean(pairs: list, real_dir: Path) -> None:
    rec = read_events(real_dir / "dvxplorer_320x240_person.h5")
    for seed, background in ((0, None), (1, None), (5, rec)):
        cfg = small(merge_prob=1.0, duration_us=30_000 if background else SMALL["duration_us"])
        noisy, clean, meta = generate_pair(cfg, seed, background=background)
        sensor = pairs[seed] if background is None else generate_pair(small(duration_us=30_000), seed, background)
        assert meta["composition"] == "merge" and sensor[2]["composition"] == "sensor"
        # The same clean stream; noisy keeps every clean event and adds flare events inside the support.
        assert clean.equals(sensor[1])
        assert not not_in(clean, noisy).any() and meta["n_removed"] == meta["n_suppressed_background"] == 0
        flare = noisy.select(not_in(noisy, clean))
        # (a flare event may coincide with a clean one to the µs: then it is not counted as flare)
        assert 0 < len(flare) == meta["n_flare"] <= len(noisy) - len(clean) <= 1.01 * len(flare)
        assert meta["support"][flare.y, flare.x].all()
    # A share of the files: drawn per file, from its own stream (the scene and flare stay as they were).
    half = [generate_pair(small(merge_prob=0.5), s) for s in range(8)]
    assert {meta["composition"] for _, _, meta in half} == {"merge", "sensor"}
    sensor_seeds = [s for s in range(len(pairs)) if half[s][2]["composition"] == "sensor"]
    assert sensor_seeds and all(half[s][0].equals(pairs[s][0]) for s in sensor_seeds)
    with pytest.raises(ValueError, match="merge_prob"):
        small(merge_prob=1.5)


@pytest.mark.parametrize("hz", [100.0, 120.0])
def test_flare_flickers_at_mains_frequency(hz: float) -> None:
    cfg = small(duration_us=100_000, flicker_hz=(hz,), n_sources=(1, 1), modulation_depth=(0.8, 1.0),
                source_moving_prob=0.0, source_world_prob=0.0, background_kinds=("objects",))
    noisy, clean, meta = generate_pair(cfg, 3)
    flare = noisy.select(not_in(noisy, clean) & (noisy.p > 0))
    rate = np.bincount(flare.t // 1000, minlength=100)[:100].astype(float)  # ON events per ms
    spectrum = np.abs(np.fft.rfft(rate - rate.mean()))
    freqs = np.fft.rfftfreq(100, d=1e-3)
    band = (freqs >= 50) & (freqs <= 300)
    peak = freqs[band][np.argmax(spectrum[band])]
    assert abs(peak - meta["sources"][0]["flicker_hz"]) <= 10, (peak, hz)


def test_waveforms_span_depth() -> None:
    t = np.arange(0, 20_000, 10)
    for w in ("sine", "rectified", "clipped", "square"):
        a = flicker(t, 100.0, w, 0.6, 0.0, 0.5)
        assert a.max() == pytest.approx(1.0, abs=0.02) and a.min() == pytest.approx(0.4, abs=0.02)
        # period 10 ms
        np.testing.assert_allclose(a[:1000], a[1000:2000], atol=1e-9)


def test_real_background_at_its_own_resolution(real_dir: Path) -> None:
    rec = read_events(real_dir / "dvxplorer_320x240_person.h5")
    cfg = small(duration_us=30_000)
    noisy, clean, meta = generate_pair(cfg, 5, background=rec)
    assert (noisy.width, noisy.height) == (clean.width, clean.height) == (320, 240)
    assert meta["background"]["kind"] == "real" and not meta["background"]["pingpong"]
    support = meta["support"]
    assert noisy.select(_outside(noisy, support)).equals(clean.select(_outside(clean, support)))
    # Clean holds the recording's events of the window (shifted to t = 0, maybe flipped).
    start = meta["background"]["window_start"]
    window = rec.between(start, start + 30_000)
    assert len(clean) >= len(window) > 1000
    assert not_in(noisy, clean).sum() == meta["n_flare"] > 0


def test_short_recording_is_played_back_and_forth(real_dir: Path) -> None:
    rec = read_events(real_dir / "prophesee_640x480_spinner.h5").between(1_317_888, 1_317_888 + 8_000)
    cfg = small(duration_us=20_000, real_flip=False)
    noisy, clean, meta = generate_pair(cfg, 1, background=rec)
    assert (clean.width, clean.height) == (640, 480) and meta["background"]["pingpong"]
    assert clean.t.max() >= 18_000  # filled to the end, not cut at the recording's 8 ms
    assert len(clean) >= 2 * len(rec) > 0


def test_real_crop_cuts_a_window_of_the_drawn_size_out_of_a_larger_recording(real_dir: Path) -> None:
    rec = read_events(real_dir / "prophesee_640x480_spinner.h5")
    cfg = small(duration_us=20_000, real_flip=False, real_crop=True, sizes=((200, 150),))
    _, clean, meta = generate_pair(cfg, 3, background=rec)
    bg = meta["background"]
    assert (clean.width, clean.height) == (bg["crop_width"], bg["crop_height"]) == (200, 150)
    x0, y0, start = bg["crop_x0"], bg["crop_y0"], bg["window_start"]
    window = rec.between(start, start + 20_000)
    inside = window.select((window.x >= x0) & (window.x < x0 + 200) & (window.y >= y0) & (window.y < y0 + 150))
    # Clean holds exactly the recording's events inside the window (plus the sources' own events).
    shifted = Events.from_arrays(inside.t - start, inside.x - x0, inside.y - y0, inside.p, 200, 150)
    assert len(shifted) > 1000 and not not_in(shifted, clean).any()
    other = generate_pair(cfg, 4, background=rec)[2]["background"]
    assert (other["crop_x0"], other["crop_y0"]) != (x0, y0)  # each file its own place
    # Larger than the recording: the recording's own size; without real_crop, its whole frame.
    assert generate_pair(replace(cfg, sizes=((800, 100),)), 3, background=rec)[1].width == 640
    assert generate_pair(replace(cfg, real_crop=False), 3, background=rec)[1].width == 640


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no events"):
        generate_pair(small(), 0, background=Events.empty(64, 48))
    with pytest.raises(ValueError, match="non-negative"):
        synthesize(tmp_path, {"train": -1}, small())
    with pytest.raises(ValueError, match="split name"):
        synthesize(tmp_path, {"../x": 1}, small())
    with pytest.raises(EventFileError, match="missing.h5"):
        synthesize(tmp_path, {"train": 3}, small(real_background_prob=1.0), backgrounds=[tmp_path / "missing.h5"])


def test_synthesize_writes_pairs_manifest_and_previews(tmp_path: Path, real_dir: Path) -> None:
    cfg = small(duration_us=20_000, real_background_prob=0.5)
    bgs = [real_dir / "dvxplorer_320x240_person.h5"]
    m = synthesize(tmp_path / "a", {"train": 3, "test": 1}, cfg, seed=7, previews=True, backgrounds=bgs)
    assert list(m["split"]) == ["train"] * 3 + ["test"]
    assert pd.read_csv(tmp_path / "a" / "manifest.csv")["name"].tolist() == m["name"].tolist()
    assert {"noisy", "clean", "n_noisy", "n_clean", "n_flare", "flare_share", "seed", "params"} <= set(m.columns)
    for row in m.itertuples():
        noisy_path, clean_path = tmp_path / "a" / row.noisy, tmp_path / "a" / row.clean
        assert noisy_path.name.endswith("_bg_flare.h5") and noisy_path.parent.name == "noisy"
        assert clean_path.name.endswith("_bg_light.h5") and clean_path.parent.name == "clean"
        noisy, clean = read_events(noisy_path), read_events(clean_path)
        assert (len(noisy), len(clean)) == (row.n_noisy, row.n_clean)
        assert (noisy.width, noisy.height) == (row.width, row.height)
        attrs = read_attrs(noisy_path)
        params = json.loads(attrs["synth_params"])
        assert params["flare_share"] == pytest.approx(row.flare_share)
        assert attrs["synth_role"] == "noisy" and read_attrs(clean_path)["synth_role"] == "clean"
        assert (tmp_path / "a" / row.preview).stat().st_size > 1000
    assert set(m["width"]) == {64, 320}  # seed 7 draws both kinds of background
    assert set(m.loc[m["width"] == 320, "background"]) == {"real"}
    # Same seed -> same files; fewer files -> the remaining ones unchanged.
    m2 = synthesize(tmp_path / "b", {"train": 2}, cfg, seed=7, backgrounds=bgs)
    for row in m2.itertuples():
        assert row.seed == file_seed(7, "train", int(row.name[-4:]))
        for col in ("noisy", "clean"):
            a, b = read_events(tmp_path / "a" / getattr(row, col)), read_events(tmp_path / "b" / getattr(row, col))
            assert a.equals(b)
            with h5py.File(tmp_path / "a" / getattr(row, col)) as fa, h5py.File(tmp_path / "b" / getattr(row, col)) as fb:
                assert fa.attrs["synth_params"] == fb.attrs["synth_params"]


# ----------------------------------------------------------------- full-resolution flare factors
# One static source inside the frame over a still-camera scene: each factor then shows on its own.
ONE_LAMP = dict(n_sources=(1, 1), source_moving_prob=0.0, source_outside_prob=0.0, background_kinds=("objects",))


def test_long_streaks_reach_across_the_frame() -> None:
    def reach(length: float, falloff: float = 1.5) -> tuple[float, int]:
        cfg = small(**ONE_LAMP, halo_radius=(0.01, 0.01), ghost_count=(0, 0), streak_count=(8, 8),
                    streak_length=(length, length), streak_falloff=(falloff, falloff), merge_prob=1.0)
        _, _, meta = generate_pair(cfg, 3)
        ys, xs = np.nonzero(meta["support"])
        x0, y0 = meta["sources"][0]["start_px"]
        return float(np.hypot(xs - x0, ys - y0).max()) / np.hypot(64, 48), meta["n_flare"]

    short, long_ = reach(0.1), reach(1.0)
    assert short[0] < 0.15 < 0.45 < long_[0]  # ray lengths are drawn in [0.5, 1] x streak_length
    assert reach(1.0, falloff=0.3)[1] > long_[1]  # a slower fall-off keeps the rays bright: more flare events


def test_dc_light_makes_flare_only_through_motion() -> None:
    base = dict(**ONE_LAMP, merge_prob=1.0)  # noisy = clean + the flare's own events
    still = generate_pair(small(**base, dc_prob=1.0), 5)
    assert still[2]["sources"][0]["dc"] and still[2]["sources"][0]["depth"] == 0
    assert still[2]["n_flare"] == 0 and still[0].equals(still[1])  # a steady lamp on a still camera: no events
    flickering = generate_pair(small(**base), 5)
    assert flickering[2]["n_flare"] > 100
    for moved in (dict(source_moving_prob=1.0), dict(roll_deg_s=(180.0, 180.0)), dict(source_enter_prob=1.0)):
        noisy, clean, meta = generate_pair(small(**{**base, **moved}, dc_prob=1.0, source_speed=(2.0, 2.0)), 5)
        assert meta["n_flare"] > 100, moved


def test_roll_and_entering_move_the_source() -> None:
    _, _, rolled = generate_pair(small(**ONE_LAMP, roll_deg_s=(90.0, 90.0)), 2)
    assert abs(rolled["sources"][0]["roll_rad_s"]) == pytest.approx(np.pi / 2)
    _, _, entering = generate_pair(small(**ONE_LAMP, source_enter_prob=1.0), 2)
    src = entering["sources"][0]
    x, y = src["start_px"]
    assert src["motion"] == "entering" and not (0 <= x < 64 and 0 <= y < 48)
    vx, vy = src["velocity_px_s"]
    assert (32 - x) * vx + (24 - y) * vy > 0  # heading into the frame


def test_veil_lights_a_large_part_of_the_frame() -> None:
    cfg = dict(**ONE_LAMP, halo_radius=(0.05, 0.05), streak_count=(0, 0), ghost_count=(0, 0))
    _, _, plain = generate_pair(small(**cfg), 4)
    _, _, veiled = generate_pair(small(**cfg, veil_prob=1.0, veil_radius=(0.5, 0.5)), 4)
    assert plain["support_fraction"] < 0.1 < 0.8 < veiled["support_fraction"]
    assert veiled["sources"][0]["veil"]["sigma_px"] == pytest.approx(0.5 * np.hypot(64, 48))


def test_ghost_chain_is_evenly_spaced() -> None:
    _, _, meta = generate_pair(small(**ONE_LAMP, ghost_count=(5, 5), ghost_chain_prob=1.0,
                                     ghost_position=(-1.2, 0.4)), 1)
    ghosts = meta["sources"][0]["ghosts"]
    assert meta["sources"][0]["ghost_chain"]
    np.testing.assert_allclose([g["position"] for g in ghosts], np.linspace(-1.2, 0.4, 5))
    radii = [g["radius_px"] for g in ghosts]
    assert radii == sorted(radii, reverse=True)  # larger the farther from the source (position 1)


def test_global_light_change_is_in_clean_and_noisy() -> None:
    cfg = small(**ONE_LAMP, global_change_prob=1.0, global_change=(1.0, 1.0), global_change_ramp_us=(300, 300),
                object_speed=(0.1, 0.1))
    noisy, clean, meta = generate_pair(cfg, 6)
    at = meta["global_change"]["at_us"]
    assert abs(meta["global_change"]["log_step"]) == 1.0
    _, still, no_change = generate_pair(small(**ONE_LAMP, object_speed=(0.1, 0.1)), 6)
    assert no_change["global_change"] == {}
    for e in (clean, noisy):
        burst = e.between(int(at) - 1000, int(at) + 1000)
        assert len(np.unique(burst.y.astype(int) * 64 + burst.x)) > 0.5 * 64 * 48  # most pixels fire at once
    quiet = still.between(int(at) - 1000, int(at) + 1000)
    assert len(quiet) < 0.2 * len(clean.between(int(at) - 1000, int(at) + 1000))


def test_spinner_is_periodic_real_motion_in_clean() -> None:
    spin = dict(n_objects=(1, 1), object_speed=(0.1, 0.1), spinner_prob=1.0,
                spinner_hz=(10.0, 10.0), spinner_spokes=(4, 4), spinner_size=(0.6, 0.6))
    cfg = SynthConfig(width=96, height=72, duration_us=100_000, **ONE_LAMP, **spin)
    noisy, clean, meta = generate_pair(cfg, 3)
    sp = meta["background"]["spinner"]
    assert sp["event_hz"] == 40.0 and generate_pair(small(**ONE_LAMP), 3)[2]["background"]["spinner"] == {}
    on = clean.p > 0
    inside = on & (np.hypot(clean.x - sp["x_px"], clean.y - sp["y_px"]) < sp["radius_px"])
    pixels = clean.y[inside].astype(int) * 96 + clean.x[inside]
    power = 0
    for u in np.unique(pixels):  # each pixel's ON events repeat at spokes x turns per second
        h, _ = np.histogram(clean.t[inside][pixels == u], bins=1000, range=(0, 100_000))
        power = power + np.abs(np.fft.rfft(h - h.mean())) ** 2
    freqs = np.fft.rfftfreq(1000, 1e-4)
    assert freqs[np.argmax(power[2:100]) + 2] == pytest.approx(40.0, abs=10.0)
    assert inside.sum() > 0.5 * on.sum()  # the spinner's events are most of the clean stream, and kept there


def test_excess_kept_counts_scene_events_the_flare_shifted_as_the_scenes() -> None:
    def ev(t: list[int], x: list[int]) -> Events:
        n = len(t)
        return Events(np.array(t, np.int64), np.array(x, np.uint16), np.zeros(n, np.uint16), np.ones(n, np.int8), 8, 1)

    clean = ev([100, 2100, 4100], [1, 2, 3])
    # The flare shifted every scene event by 50 us (same 1 ms bin) and added two events of its own.
    noisy = ev([150, 600, 2150, 4150, 5000], [1, 1, 2, 3, 6])
    assert not_in(noisy, clean).all()  # by exact match, every noisy event is flare
    scene_only = ev([150, 2150, 4150], [1, 2, 3])
    assert excess_kept(noisy, clean, scene_only) == {"excess_share": 0.4, "excess_removed": 1.0, "scene_kept": 1.0}
    assert excess_kept(noisy, clean, noisy) == {"excess_share": 0.4, "excess_removed": 0.0, "scene_kept": 1.0}
    # Of a bin's two events (one the scene's, one excess) the one kept counts as the scene's.
    got = excess_kept(noisy, clean, ev([600, 5000], [1, 6]))
    assert got == {"excess_share": 0.4, "excess_removed": 0.5, "scene_kept": pytest.approx(1 / 3)}
    assert np.isnan(excess_kept(clean, clean, clean)["excess_removed"])
