"""Voxel -> events decoders (evdenoise.decode)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evdenoise.decode import decode, decode_windows
from evdenoise.threads import cpu_threads
from evdenoise.events import Events
from evdenoise.voxel import VoxelSpec, encode, encode_windows
from evdenoise.windows import make_windows, windows_for

T0 = 1_600_000_000_000_000  # absolute sensor timestamps


def integer_voxel(rng: np.random.Generator, channels: int, bins: int, h: int, w: int, windows: int = 1) -> np.ndarray:
    counts = rng.poisson(0.7, size=(windows, channels, bins, h, w)).astype(np.float32)
    if channels == 1:
        counts *= rng.choice([-1, 1], size=counts.shape)
    return counts


@settings(max_examples=40, deadline=None)
@given(strategy=st.sampled_from(["sample", "spread"]), channels=st.sampled_from([1, 2]),
       bins=st.integers(1, 9), span=st.integers(9, 30_000), seed=st.integers(0, 2**32 - 1))
def test_decode_re_encodes_to_the_same_voxel(strategy: str, channels: int, bins: int, span: int,
                                              seed: int) -> None:
    rng = np.random.default_rng(seed)
    vox = integer_voxel(rng, channels, bins, 5, 7)[0]
    ev = decode(vox, T0, T0 + span, strategy, spec=VoxelSpec(bins, channels, "nearest"), seed=seed)
    assert np.all(np.diff(ev.t) >= 0) and np.all((ev.t >= T0) & (ev.t < T0 + span))
    assert len(ev) == int(np.abs(vox).sum()) and (ev.width, ev.height) == (7, 5)
    np.testing.assert_array_equal(encode(ev, T0, T0 + span, VoxelSpec(bins, channels, "nearest")), vox)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("strategy", ["sample", "spread"])
def test_decode_windows_re_encodes(channels: int, strategy: str) -> None:
    rng = np.random.default_rng(3)
    windows = make_windows(T0, T0 + 99_999, 20_000)
    vox = integer_voxel(rng, channels, 8, 6, 9, len(windows))
    ev = decode_windows(vox, windows, strategy, seed=4)
    assert np.all(np.diff(ev.t) >= 0)
    np.testing.assert_array_equal(encode_windows(ev, windows, VoxelSpec(8, channels, "nearest")), vox)


def test_rounding_and_polarity() -> None:
    vox = np.zeros((1, 2, 1, 3), np.float32)
    vox[0, 0, 0] = [2.4, -1.6, 0.4]
    vox[0, 1, 0] = [0.6, 0.0, 0.0]
    ev = decode(vox, 0, 100, "spread")
    # Bin 0 = [0, 50): 2 ON at x=0 and 2 OFF at x=1, spread to 12, 37; bin 1: 1 ON at x=0 at 75.
    assert ev.t.tolist() == [12, 12, 37, 37, 75]
    assert (ev.p[ev.x == 0] == 1).all() and (ev.p[ev.x == 1] == -1).all() and not (ev.x == 2).any()
    two = np.zeros((2, 1, 1, 1), np.float32)
    two[:, 0, 0, 0] = [2, 3]  # C=2: ON count 2, OFF count 3
    ev = decode(two, 0, 10, "sample", seed=1)
    assert sorted(ev.p.tolist()) == [-1, -1, -1, 1, 1]


def test_spread_spaces_evenly() -> None:
    vox = np.zeros((2, 2, 1, 1), np.float32)
    vox[0, 1, 0, 0] = 4  # four ON events in the second of two bins of [0, 1000)
    ev = decode(vox, 0, 1000, "spread")
    assert ev.t.tolist() == [562, 687, 812, 937] and (ev.p == 1).all()


def test_sample_is_deterministic_given_seed() -> None:
    vox = integer_voxel(np.random.default_rng(0), 2, 8, 10, 10)[0]
    a, b = (decode(vox, 0, 20_000, "sample", seed=7) for _ in range(2))
    assert a.equals(b)
    assert not decode(vox, 0, 20_000, "sample", seed=8).equals(a)


@pytest.mark.parametrize("channels", [1, 2])
def test_mask_identity_and_zero(tiny_events, channels: int) -> None:
    ev = tiny_events(3000, width=8, height=6, t0=T0, duration=20_000)
    spec = VoxelSpec(8, channels, "nearest")
    vox = encode(ev, T0, T0 + 20_000, spec)
    assert decode(vox, T0, T0 + 20_000, "mask", events_in=ev, spec=spec).equals(ev)
    dropped = decode(np.zeros_like(vox), T0, T0 + 20_000, "mask", events_in=ev)
    if channels == 2:
        assert len(dropped) == 0
    else:  # only cells whose signed input sum is 0 survive (no ratio to apply there)
        assert 0 < len(dropped) and not encode(dropped, T0, T0 + 20_000, spec).any()
        assert (encode(dropped, T0, T0 + 20_000, VoxelSpec(8, 2, "nearest"))[:, vox[0] != 0] == 0).all()


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("scale", [0.3, 0.5, 0.8])
@pytest.mark.parametrize("threshold", [0.5, 0.4, 1.0])
def test_mask_keeps_rounded_r_n_with_exact_timestamps(tiny_events, channels: int, scale: float,
                                                      threshold: float) -> None:
    ev = tiny_events(4000, width=6, height=4, t0=T0, duration=40_000, seed=5)
    windows = windows_for(ev, 20_000)
    spec = VoxelSpec(8, channels, "nearest")
    vox_in = encode_windows(ev, windows, spec)
    pred = (vox_in * scale).astype(np.float32)
    out = decode_windows(pred, windows, "mask", events_in=ev, spec=spec, seed=2, keep_threshold=threshold)
    # A subset of the input with its exact timestamps, still sorted.
    key_in = set(zip(ev.t.tolist(), ev.x.tolist(), ev.y.tolist(), ev.p.tolist()))
    assert set(zip(out.t.tolist(), out.x.tolist(), out.y.tolist(), out.p.tolist())) <= key_in
    assert np.all(np.diff(out.t) >= 0)
    # Per cell: r * n rounded up from the threshold on, r = predicted / input value clipped to [0, 1].
    per_cell = VoxelSpec(8, 2, "nearest")  # event counts per polarity
    if channels == 2:
        n_in, n_out, value_in, p = (encode_windows(ev, windows, spec), encode_windows(out, windows, spec),
                                    vox_in, pred)
    else:  # C=1: counts of both polarities against the signed input value
        n_in = encode_windows(ev, windows, per_cell).sum(axis=1, keepdims=True)
        n_out = encode_windows(out, windows, per_cell).sum(axis=1, keepdims=True)
        value_in, p = vox_in, pred
    value_in, p = value_in.astype(np.float64), p.astype(np.float64)
    ratio = np.where(value_in != 0, np.clip(p / np.where(value_in != 0, value_in, 1), 0, 1), 1)
    np.testing.assert_array_equal(n_out, np.floor(ratio * n_in + 1 - threshold))
    assert 0 < len(out) < len(ev)
    again = dict(events_in=ev, keep_threshold=threshold)
    assert decode_windows(pred, windows, "mask", seed=2, **again).equals(out)
    assert not decode_windows(pred, windows, "mask", seed=3, **again).equals(out)


@pytest.mark.parametrize("channels", [1, 2])
def test_mask_reads_a_bilinear_prediction_through_each_events_bins(tiny_events, channels: int) -> None:
    ev = tiny_events(5000, width=6, height=4, t0=T0, duration=40_000, seed=9)
    windows = windows_for(ev, 20_000)
    bilinear, nearest = VoxelSpec(8, channels, "bilinear"), VoxelSpec(8, channels, "nearest")
    vox_b = encode_windows(ev, windows, bilinear)
    assert decode_windows(vox_b, windows, "mask", events_in=ev, spec=bilinear).equals(ev)
    if channels == 1:
        return
    assert len(decode_windows(np.zeros_like(vox_b), windows, "mask", events_in=ev, spec=bilinear)) == 0
    # A share per pixel and polarity, the same in every bin: each event's two bins agree, so the result is
    # that of the same share applied to nearest-bin counts; read as nearest counts it would not be.
    share = np.random.default_rng(1).random((1, 2, 1, 4, 6)).astype(np.float32)
    out = decode_windows(vox_b * share, windows, "mask", events_in=ev, spec=bilinear, seed=4)
    vox_n = encode_windows(ev, windows, nearest)
    assert out.equals(decode_windows(vox_n * share, windows, "mask", events_in=ev, spec=nearest, seed=4))
    assert not out.equals(decode_windows(vox_b * share, windows, "mask", events_in=ev, spec=nearest, seed=4))


def test_mask_weighs_a_bilinear_prediction_as_the_encoder_split_the_events() -> None:
    # Four events at 1.25 bins (bins of 1 ms): a quarter of each lies in bin 0, three quarters in bin 1.
    ev = Events.from_arrays(np.full(4, 1250), np.zeros(4, int), np.zeros(4, int), np.ones(4, int), 1, 1)
    spec = VoxelSpec(8, 2, "bilinear")
    vox = encode(ev, 0, 8000, spec)
    np.testing.assert_allclose(vox[0, :2, 0, 0], [1.0, 3.0])
    pred = vox.copy()
    pred[0, 1] *= 0.5  # keep all of bin 0, half of bin 1: each event keeps 0.25 + 0.75 / 2, 2.5 events in all
    for threshold, kept in ((0.5, 3), (1.0, 2)):
        assert len(decode(pred, 0, 8000, "mask", events_in=ev, spec=spec, keep_threshold=threshold)) == kept
    # Read as nearest counts, bin 1's 1.5 would be the cell's whole prediction.
    assert len(decode(pred, 0, 8000, "mask", events_in=ev, spec=VoxelSpec(8, 2, "nearest"), keep_threshold=1.0)) == 1


def test_mask_lower_threshold_keeps_more(tiny_events) -> None:
    ev = tiny_events(4000, width=6, height=4, t0=T0, duration=20_000, seed=6)
    spec = VoxelSpec(8, 2, "nearest")
    pred = encode(ev, T0, T0 + 20_000, spec) * 0.45
    counts = [len(decode(pred, T0, T0 + 20_000, "mask", events_in=ev, keep_threshold=k)) for k in (1.0, 0.5, 0.4)]
    assert counts[0] < counts[1] < counts[2] < len(ev)
    with pytest.raises(ValueError, match="keep_threshold"):
        decode(pred, T0, T0 + 20_000, "mask", events_in=ev, keep_threshold=0.0)


def test_mask_c1_uses_signed_input_value() -> None:
    # One cell: 3 ON + 1 OFF (signed value 2); a second cell: 1 ON + 1 OFF (value 0).
    ev = Events.from_arrays([0, 1, 2, 3, 4, 5], [0, 0, 0, 0, 1, 1], [0] * 6, [1, 1, -1, 1, 1, -1], 2, 1)
    pred = np.zeros((1, 1, 1, 2), np.float32)
    pred[0, 0, 0] = [1.0, 0.0]  # r = 1/2 -> keep 2 of 4; value 0 in the input -> keep the cell whole
    out = decode(pred, 0, 10, "mask", events_in=ev, seed=0)
    assert (out.x == 0).sum() == 2 and (out.x == 1).sum() == 2
    pred[0, 0, 0] = [-1.0, 0.0]  # opposite sign -> r clipped to 0
    assert (decode(pred, 0, 10, "mask", events_in=ev).x == 0).sum() == 0


@pytest.mark.parametrize("assignment", ["nearest", "bilinear"])
def test_mask_gives_the_same_events_whatever_the_thread_count(tiny_events, monkeypatch, assignment: str) -> None:
    # Windows are shared among threads, each window seeded on its own: the choice must not depend on which
    # thread decodes which window, nor on how many threads there are.
    ev = tiny_events(20_000, width=16, height=12, t0=T0, duration=200_000, seed=4)
    windows = windows_for(ev, 20_000)
    spec = VoxelSpec(8, 2, assignment)
    pred = encode_windows(ev, windows, spec) * np.random.default_rng(0).random((len(windows), 2, 8, 12, 16))
    outs = []
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for cpus in (1, 2, 3, 16):
        monkeypatch.setattr("evdenoise.threads.os.sched_getaffinity", lambda _, n=cpus: set(range(n)))
        assert cpu_threads() == cpus
        outs.append(decode_windows(pred.astype(np.float32), windows, "mask", events_in=ev, spec=spec, seed=7))
    assert 0 < len(outs[0]) < len(ev) and all(out.equals(outs[0]) for out in outs[1:])
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # as Snakemake sets it for a job of 2 threads
    assert cpu_threads() == 2


def test_mask_picks_uniformly_random_subsets() -> None:
    # Cell x=0: 4 ON events, keep 2; cell x=1: 3 ON events, keep 1. Over many seeds every subset
    # of the right size turns up about equally often.
    ev = Events.from_arrays(range(7), [0, 0, 0, 0, 1, 1, 1], [0] * 7, [1] * 7, 2, 1)
    pred = np.array([2.0, 1.0], np.float32).reshape(1, 1, 1, 2)
    seeds = 1500
    pairs: Counter[tuple[int, ...]] = Counter()
    singles: Counter[tuple[int, ...]] = Counter()
    for seed in range(seeds):
        t = decode(pred, 0, 10, "mask", events_in=ev, spec=VoxelSpec(1, 1, "nearest"), seed=seed).t.tolist()
        pair, single = tuple(v for v in t if v < 4), tuple(v for v in t if v >= 4)
        assert len(pair) == 2 and len(single) == 1
        pairs[pair] += 1
        singles[single] += 1
    # Each frequency within about 4.5 standard deviations of its expectation.
    assert len(pairs) == 6 and all(abs(k / seeds - 1 / 6) < 0.045 for k in pairs.values())
    assert len(singles) == 3 and all(abs(k / seeds - 1 / 3) < 0.055 for k in singles.values())


def test_mask_ignores_events_outside_windows(tiny_events) -> None:
    ev = tiny_events(500, width=4, height=4, duration=50_000)
    vox = encode(ev, 10_000, 30_000, VoxelSpec(4, 2, "nearest"))
    out = decode(vox, 10_000, 30_000, "mask", events_in=ev)
    assert out.equals(ev.between(10_000, 30_000))
    none = decode(vox, 60_000, 80_000, "mask", events_in=ev)  # a window that holds no event
    empty = decode_windows(vox[None][:0], make_windows(0, 1, 20_000).select(slice(0, 0)), "mask", events_in=ev)
    assert len(none) == len(empty) == 0 and (none.width, none.height) == (4, 4)


def test_errors(tiny_events) -> None:
    vox = np.zeros((1, 8, 4, 4), np.float32)
    with pytest.raises(ValueError, match="unknown decode strategy"):
        decode(vox, 0, 100, "guess")
    with pytest.raises(ValueError, match="events_in"):
        decode(vox, 0, 100, "mask")
    with pytest.raises(ValueError, match="does not match"):
        decode(vox, 0, 100, "sample", spec=VoxelSpec(8, 2, "nearest"))
    with pytest.raises(ValueError, match="cannot hold"):
        decode(vox, 0, 5, "sample")
    with pytest.raises(ValueError, match="windows"):
        decode_windows(vox[None], make_windows(0, 50_000), "sample")
    with pytest.raises(ValueError, match="voxels are 4x4"):
        decode(vox, 0, 100, "mask", events_in=tiny_events(10, width=5, height=4))


def test_decode_runs_keeps_decoded_events_inside_the_input(tiny_events) -> None:
    from evdenoise.decode import decode_runs, run_seed

    events = tiny_events(50, t0=1000, duration=30_000)
    windows = windows_for(events, segment_us=20_000)  # the last window reaches past the input
    vox = encode_windows(events, windows, VoxelSpec())
    out = decode_windows(vox, windows, "spread", seed=run_seed(0, 0))  # two windows: one run
    kept = decode_runs(vox, windows, "spread", events_in=events, spec=VoxelSpec(), seed=0)
    assert kept.t.min() >= events.t[0] and kept.t.max() <= events.t[-1]
    assert len(kept) == np.count_nonzero((out.t >= events.t[0]) & (out.t <= events.t[-1]))
