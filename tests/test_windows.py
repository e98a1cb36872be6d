"""Fixed windows, split and merge (evdenoise.windows)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evdenoise.events import Events
from evdenoise.windows import Windows, make_windows, merge, split, split_pair, windows_for


def test_100_ms_gives_five_full_windows() -> None:
    w = make_windows(1_317_888, 1_317_888 + 99_999)
    assert len(w) == 5 and w.segment_us == 20_000 and not w.partial.any()
    assert w.start.tolist() == [1_317_888 + 20_000 * i for i in range(5)]
    assert np.array_equal(w.end, w.start + 20_000) and w.start.dtype == np.int64


def test_short_last_window_is_kept_and_flagged() -> None:
    w = make_windows(0, 100_000)  # one more µs than 5 windows hold
    assert len(w) == 6 and w.partial.tolist() == [False] * 5 + [True]
    w = make_windows(0, 50_000)
    assert len(w) == 3 and w.partial.tolist() == [False, False, True]


def test_absolute_grid() -> None:
    w = make_windows(25_000, 64_999, grid="absolute")
    assert w.start.tolist() == [20_000, 40_000, 60_000] and w.grid == "absolute"
    assert w.partial.tolist() == [True, False, True]  # first starts before the data, last ends after
    assert not make_windows(40_000, 79_999, grid="absolute").partial.any()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="segment_us"):
        make_windows(0, 10, 0)
    with pytest.raises(ValueError, match="before"):
        make_windows(10, 0)
    with pytest.raises(ValueError, match="grid"):
        make_windows(0, 10, grid="weekly")
    with pytest.raises(ValueError, match="same positive length"):
        Windows(np.array([0, 10]), np.array([10, 30]), np.array([False, False]))
    with pytest.raises(ValueError, match="overlap"):
        Windows(np.array([0, 5]), np.array([10, 15]), np.array([False, False]))


def test_zero_events_give_zero_windows(tiny_events) -> None:
    w = windows_for(Events.empty(4, 4))
    assert len(w) == 0 and w.segment_us == 0
    assert split(Events.empty(4, 4), w) == []
    assert merge([], 4, 4).equals(Events.empty(4, 4))


def test_locate_matches_brute_force() -> None:
    w = make_windows(100, 1099, 250, grid="absolute")
    t = np.arange(-10, 1300)
    expected = [next((i for i in range(len(w)) if w.start[i] <= v < w.end[i]), -1) for v in t]
    assert w.locate(t).tolist() == expected
    one = w.select(1)
    assert len(one) == 1 and one.locate(np.array([249, 250, 499, 500])).tolist() == [-1, 0, 0, -1]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 300), duration=st.integers(1, 200_000), t0=st.integers(0, 2**50),
       segment=st.integers(1, 50_000), grid=st.sampled_from(["relative", "absolute"]), seed=st.integers(0, 99))
def test_split_merge_round_trip(tiny_events, n: int, duration: int, t0: int, segment: int, grid: str,
                                seed: int) -> None:
    ev = tiny_events(n, t0=t0, duration=duration, seed=seed)
    w = windows_for(ev, segment, grid)
    parts = split(ev, w)
    assert len(parts) == len(w)
    assert merge(parts, ev.width, ev.height).equals(ev)
    for part, a, b in zip(parts, w.start, w.end):
        assert np.all((part.t >= a) & (part.t < b))
    if n:
        assert not w.partial[:-1].any() or grid == "absolute"


def test_pair_split_on_noisy_windows(tiny_events) -> None:
    noisy = tiny_events(400, t0=1000, duration=90_000, seed=1)
    clean = tiny_events(300, t0=0, duration=120_000, seed=2)  # starts earlier and ends later
    windows, raw, label = split_pair(noisy, clean)
    assert windows.equals(windows_for(noisy))
    assert len(raw) == len(label) == len(windows) == 5
    for r, c, a, b in zip(raw, label, windows.start, windows.end):
        assert np.all((c.t >= a) & (c.t < b)) and np.all((r.t >= a) & (r.t < b))
    assert merge(label).equals(clean.between(int(windows.start[0]), int(windows.end[-1])))
    with pytest.raises(ValueError, match="differs"):
        split_pair(noisy, tiny_events(10, width=5))


def test_merge_rejects_out_of_order_and_mixed_sensors(tiny_events) -> None:
    ev = tiny_events(100)
    parts = split(ev, windows_for(ev))
    with pytest.raises(ValueError, match="time order"):
        merge(parts[::-1])
    with pytest.raises(ValueError, match="sensor"):
        merge([parts[0], tiny_events(5, width=3)])
