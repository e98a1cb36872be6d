"""Classical filters: hand-built patterns and vectorised == per-event reference loops."""
from __future__ import annotations

import numpy as np
import pytest

from evdenoise.events import Events
from evdenoise.filters import (FILTERS, apply_filter, background_activity_filter, correlated_neighbours,
                               refractory_filter, stcf)


def _events(rows: list[tuple[int, int, int, int]], w: int = 8, h: int = 6) -> Events:
    t, x, y, p = (np.array(c) for c in zip(*rows))
    return Events.from_arrays(t, x, y, p, w, h)


def _random(seed: int, n: int = 400, w: int = 7, h: int = 5, span: int = 20_000) -> Events:
    rng = np.random.default_rng(seed)
    # few distinct timestamps, so ties (ordered by stream position) are exercised
    t = np.sort(rng.integers(0, span, n) // 50 * 50)
    return Events.from_arrays(t, rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, 2, n), w, h)


def _reference_counts(ev: Events, dt_us: int) -> np.ndarray:
    """jAER-style loop: a last-timestamp map updated by every event, read before the update."""
    last = np.full((ev.height, ev.width), np.iinfo(np.int64).min, dtype=np.int64)
    seen = np.zeros((ev.height, ev.width), dtype=bool)
    out = np.zeros(len(ev), dtype=int)
    for i in range(len(ev)):
        x, y, t = int(ev.x[i]), int(ev.y[i]), int(ev.t[i])
        for yy in range(y - 1, y + 2):
            for xx in range(x - 1, x + 2):
                if (xx, yy) == (x, y) or not (0 <= xx < ev.width and 0 <= yy < ev.height):
                    continue
                out[i] += bool(seen[yy, xx] and t - last[yy, xx] < dt_us)
        last[y, x], seen[y, x] = t, True
    return out


def _reference_refractory(ev: Events, period_us: int) -> np.ndarray:
    last: dict[tuple[int, int], int] = {}
    keep = np.zeros(len(ev), dtype=bool)
    for i in range(len(ev)):
        key = (int(ev.x[i]), int(ev.y[i]))
        keep[i] = key not in last or int(ev.t[i]) - last[key] > period_us
        last[key] = int(ev.t[i])
    return keep


def test_isolated_noise_removed_and_supported_events_kept() -> None:
    ev = _events([(0, 2, 2, 1), (100, 3, 2, 1), (150, 7, 5, 0), (50_000, 3, 3, 1)])
    out = background_activity_filter(ev, dt_us=1000)
    # (3,2) is supported by (2,2) 100 µs earlier; the first event has no earlier support,
    # (7,5) is isolated, and (3,3) comes 50 ms after its neighbours.
    assert out.equals(ev.select(np.array([1])))


def test_own_pixel_gives_no_support_and_dt_is_strict() -> None:
    ev = _events([(0, 1, 1, 1), (10, 1, 1, 1), (500, 2, 1, 1), (1000, 3, 1, 1)])
    # (2,1) at 500 sees (1,1) 490 µs earlier; (3,1) sees (2,1) exactly 500 µs earlier: 500 < 500 fails
    assert correlated_neighbours(ev, dt_us=500).tolist() == [0, 0, 1, 0]


def test_stcf_needs_k_neighbour_pixels() -> None:
    ev = _events([(0, 1, 1, 1), (5, 1, 1, 1), (10, 3, 1, 1), (20, 2, 1, 1), (30, 2, 3, 0)])
    # (2,1) has neighbours (1,1) and (3,1): two pixels; (1,1) fired twice but counts once
    assert correlated_neighbours(ev, 1000).tolist() == [0, 0, 0, 2, 0]
    assert stcf(ev, dt_us=1000, k=2).equals(ev.select(np.array([3])))
    assert len(stcf(ev, dt_us=1000, k=3)) == 0
    with pytest.raises(ValueError, match="k must be"):
        stcf(ev, k=9)


def test_refractory_drops_bursts_on_one_pixel() -> None:
    ev = _events([(0, 4, 4, 1), (300, 4, 4, 1), (900, 4, 4, 1), (2000, 4, 4, 0), (2100, 5, 4, 1)])
    # every event restarts the period: 300 and 900 are within 1000 µs of their predecessor
    out = refractory_filter(ev, period_us=1000)
    assert out.t.tolist() == [0, 2000, 2100]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dt_us", [1, 300, 2000])
def test_neighbour_counts_match_reference_loop(seed: int, dt_us: int) -> None:
    ev = _random(seed)
    np.testing.assert_array_equal(correlated_neighbours(ev, dt_us), _reference_counts(ev, dt_us))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("period_us", [0, 500, 3000])
def test_refractory_matches_reference_loop(seed: int, period_us: int) -> None:
    ev = _random(seed)
    assert refractory_filter(ev, period_us).equals(ev.select(_reference_refractory(ev, period_us)))


def test_registry_and_apply_filter() -> None:
    ev = _random(1)
    assert set(FILTERS) == {"baf", "refractory", "stcf"}
    assert apply_filter("stcf", ev, dt_us=2000, k=1).equals(apply_filter("baf", ev, dt_us=2000))
    with pytest.raises(ValueError, match="unknown filter 'median'"):
        apply_filter("median", ev)


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_empty_and_unsorted_input(name: str) -> None:
    assert len(apply_filter(name, Events.empty(4, 4))) == 0
    ev = _events([(10, 0, 0, 1), (5, 1, 0, 1)])
    with pytest.raises(ValueError, match="time-sorted"):
        apply_filter(name, ev)
