"""Voxel encoding and the shape/value transforms (evdenoise.voxel)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from evdenoise.events import Events
from evdenoise.voxel import (VoxelSpec, crop_to, denormalize, encode, encode_windows, normalize, pad_to,
                             resize)
from evdenoise.windows import make_windows, split, windows_for

torch.set_num_threads(1)


def reference_encode(events: Events, t0: int, t1: int, spec: VoxelSpec) -> np.ndarray:
    """Slow, obviously-correct per-event loop."""
    B = spec.bins
    out = np.zeros((spec.channels, B, events.height, events.width), np.float64)
    for t, x, y, p in zip(events.t.tolist(), events.x.tolist(), events.y.tolist(), events.p.tolist()):
        if not t0 <= t < t1:
            continue
        c, w = (0, p) if spec.channels == 1 else ((0 if p > 0 else 1), 1)
        pos = (t - t0) * B / (t1 - t0)
        if spec.assignment == "nearest":
            out[c, min(int(math.floor(pos)), B - 1), y, x] += w
            continue
        centre = pos - 0.5
        below = math.floor(centre)
        frac = centre - below
        for b, share in ((below, 1 - frac), (below + 1, frac)):
            out[c, min(max(b, 0), B - 1), y, x] += w * share
    return out.astype(np.float32)


SPECS = [VoxelSpec(bins, c, a) for bins in (1, 3, 8) for c in (1, 2) for a in ("nearest", "bilinear")]


@settings(max_examples=30, deadline=None)
@given(spec=st.sampled_from(SPECS), n=st.integers(0, 80), seed=st.integers(0, 10**6),
       t0=st.integers(0, 2**45), span=st.integers(8, 5000))
def test_encode_matches_reference(tiny_events, spec: VoxelSpec, n: int, seed: int, t0: int, span: int) -> None:
    # Events spill over both ends of the window: those must be ignored.
    ev = tiny_events(n, width=5, height=4, t0=t0 - 3, duration=span + 6, seed=seed)
    got = encode(ev, t0, t0 + span, spec)
    assert got.dtype == np.float32 and got.shape == (spec.channels, spec.bins, 4, 5)
    np.testing.assert_allclose(got, reference_encode(ev, t0, t0 + span, spec), atol=1e-5)


def test_bin_edges_and_totals(tiny_events) -> None:
    ev = Events.from_arrays([0, 2499, 2500, 19_999], [0, 0, 0, 0], [0, 0, 0, 0], [1, 1, -1, 1], 1, 1)
    vox = encode(ev, 0, 20_000, VoxelSpec(8, 2, "nearest"))
    assert vox[0, :, 0, 0].tolist() == [2, 0, 0, 0, 0, 0, 0, 1] and vox[1, :, 0, 0].tolist() == [0, 1] + [0] * 6
    ev = tiny_events(2000)
    for spec in SPECS:
        vox = encode(ev, 0, 100_000, spec)
        total = len(ev) if spec.channels == 2 else int(ev.p.sum())
        assert vox.sum() == pytest.approx(total, abs=1e-2)


@pytest.mark.parametrize("spec", SPECS[-4:])
def test_encode_windows_equals_per_window(tiny_events, spec: VoxelSpec) -> None:
    ev = tiny_events(3000, t0=10**15, duration=95_000)
    w = windows_for(ev, 20_000, "absolute")
    stacked = encode_windows(ev, w, spec)
    assert stacked.shape == (len(w), spec.channels, spec.bins, ev.height, ev.width)
    for i, part in enumerate(split(ev, w)):
        np.testing.assert_array_equal(stacked[i], encode(part, w.start[i], w.end[i], spec))
    # Events outside every window are dropped, not clamped into one.
    inner = make_windows(int(w.start[1]), int(w.start[1]) + 1, 20_000)
    np.testing.assert_array_equal(encode_windows(ev, inner, spec)[0], stacked[1])


@pytest.mark.parametrize("spec", SPECS[-4:])
def test_encode_ignores_event_order(tiny_events, spec: VoxelSpec) -> None:
    # Shuffled events jump between windows and out of them at every step.
    ev = tiny_events(3000, t0=10**15, duration=95_000)
    shuffled = ev.select(np.random.default_rng(1).permutation(len(ev)))
    w = windows_for(ev, 20_000, "absolute").select(np.array([0, 2, 4]))
    np.testing.assert_allclose(encode_windows(shuffled, w, spec), encode_windows(ev, w, spec), atol=1e-5)
    np.testing.assert_allclose(encode(shuffled, w.start[2], w.end[2], spec), encode(ev, w.start[2], w.end[2], spec),
                               atol=1e-5)


def test_encode_errors(tiny_events) -> None:
    with pytest.raises(ValueError, match="empty time span"):
        encode(tiny_events(), 5, 5, VoxelSpec())
    for bad in ({"bins": 0}, {"channels": 3}, {"assignment": "cubic"}):
        with pytest.raises(ValueError):
            VoxelSpec(**bad)


@pytest.mark.parametrize("as_torch", [False, True])
@pytest.mark.parametrize("hw", [(480, 640), (260, 346), (1, 1), (64, 64)])
def test_pad_crop_round_trip(as_torch: bool, hw: tuple[int, int]) -> None:
    x = np.random.default_rng(0).normal(size=(2, 1, 3, *hw)).astype(np.float32)
    x = torch.from_numpy(x) if as_torch else x
    padded, sizes = pad_to(x, (2**4, 2**4))
    assert type(padded) is type(x)
    assert padded.shape[:3] == x.shape[:3] and padded.shape[-2] % 16 == 0 and padded.shape[-1] % 16 == 0
    assert padded.shape[-2] - hw[0] < 16 and padded.shape[-1] - hw[1] < 16
    back = crop_to(padded, sizes)
    assert back.shape == x.shape and (back == x).all()
    assert float(abs(padded).sum()) == pytest.approx(float(abs(x).sum()))  # padding is zeros


@pytest.mark.parametrize("as_torch", [False, True])
def test_pad_per_axis_multiples_and_minimum(as_torch: bool) -> None:
    x = np.ones((2, 5, 7, 9), np.float32)
    x = torch.from_numpy(x) if as_torch else x
    padded, sizes = pad_to(x, (2, 4, 1), minimum=(4, 4, 12))
    assert tuple(padded.shape) == (2, 6, 8, 12) and sizes == (5, 7, 9)
    assert tuple(crop_to(padded, sizes).shape) == tuple(x.shape)
    with pytest.raises(ValueError, match="multiples"):
        pad_to(x, (0, 1))


@pytest.mark.parametrize("as_torch", [False, True])
def test_resize_round_trip(as_torch: bool, tiny_events) -> None:
    ev = tiny_events(5000, width=64, height=48)
    x = encode_windows(ev, windows_for(ev), VoxelSpec(4, 2, "nearest"))
    x = torch.from_numpy(x) if as_torch else x
    small = resize(x, (24, 32))
    assert type(small) is type(x) and small.shape == (*x.shape[:3], 24, 32)
    back = resize(small, (48, 64))
    assert back.shape == x.shape
    # Sums survive both ways; area down + up returns the 2x2 block means.
    assert float(small.sum()) == pytest.approx(float(x.sum()), rel=1e-5)
    assert float(back.sum()) == pytest.approx(float(x.sum()), rel=1e-5)
    xn = np.asarray(x)
    blocks = xn.reshape(*xn.shape[:3], 24, 2, 32, 2).mean(axis=(4, 6))
    np.testing.assert_allclose(np.asarray(back), np.repeat(np.repeat(blocks, 2, -2), 2, -1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("as_torch", [False, True])
def test_normalize_round_trip(as_torch: bool, tiny_events) -> None:
    ev = tiny_events(3000, width=20, height=10)
    x = encode_windows(ev, windows_for(ev), VoxelSpec(8, 1, "nearest"))  # (S, C, B, H, W)
    x[1] = 0  # an empty window stays empty
    x[2] = np.where(x[2] != 0, 3.0, 0.0)  # a window whose non-zero cells are all equal
    xx = torch.from_numpy(x) if as_torch else x
    xn, stats = normalize(xx)
    xn_np = np.asarray(xn)
    assert xn_np.dtype == np.float32 and ((xn_np != 0) == (x != 0)).all()
    nz = xn_np[0][x[0] != 0]
    assert abs(nz.mean()) < 1e-4 and nz.std() == pytest.approx(1, rel=1e-4)
    back = np.asarray(denormalize(xn, stats))
    np.testing.assert_allclose(back, x, atol=1e-4)
    assert np.array_equal(np.rint(back), x)


def test_normalize_keeps_cells_equal_to_the_mean() -> None:
    x = np.zeros((1, 1, 1, 3), np.float32)
    x[..., :] = [1, 2, 3]  # mean 2: that cell normalises to exactly 0
    xn, stats = normalize(x)
    assert (xn != 0).all()
    np.testing.assert_allclose(denormalize(xn, stats), x, atol=1e-6)
