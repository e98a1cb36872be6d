"""Classical event-denoising baselines: background-activity, refractory and STCF filters.

All three follow jAER's timestamp-map filters (SensorsINI/jaer,
``net.sf.jaer.eventprocessing.filter``), evaluated offline (the neighbour count in one compiled pass over a
timestamp map, as jAER does; the refractory filter vectorised):

* every input event, kept or not, updates its pixel's "last timestamp" (as in jAER);
* "the last event at pixel q before event i" means the latest event at q that comes
  earlier in the (time-sorted) stream, so equal timestamps are ordered by stream position;
* unlike jAER's ``letFirstEventThrough`` start-up rule, a pixel's first event is judged
  like any other (on 100 ms clips that rule would pass most isolated noise events).

Defaults are jAER's: BAF dt = 30 ms, refractory period = 1 ms; STCF dt = 30 ms with
k = 2 correlated neighbour pixels (jAER's class default varies between versions; k = 2 is
the smallest k that differs from the BAF). Inputs must be time-sorted.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Callable

import numpy as np
from numba import njit

from .events import Events

# A pixel's 8 neighbours count; the pixel itself does not (as in jAER: no self-support).


def _check_sorted(events: Events) -> None:
    if len(events) > 1 and np.any(np.diff(events.t) < 0):
        raise ValueError("filters need a time-sorted event stream (use Events.sorted())")


def _pixel_index(events: Events) -> np.ndarray:
    return events.y.astype(np.int64) * events.width + events.x.astype(np.int64)


def correlated_neighbours(events: Events, dt_us: int) -> np.ndarray:
    """Per event, how many of its 8 neighbour pixels last fired less than ``dt_us`` before it.

    One pass in stream order over a map of each pixel's last timestamp: an event reads its neighbours' entries,
    then writes its own, so "last before it" follows stream order also for equal timestamps. The map has one
    entry per pixel (a few MB at 1280x720) where a search over sorted keys would cost n log n random reads.
    """
    _check_sorted(events)
    counts = np.zeros(len(events), dtype=np.int8)
    if len(events):
        _count_neighbours(events.t, events.x.astype(np.int64), events.y.astype(np.int64), events.width,
                          events.height, int(dt_us), counts)
    return counts


@njit(cache=True, nogil=True)
def _count_neighbours(t: np.ndarray, x: np.ndarray, y: np.ndarray, width: int, height: int, dt_us: int,
                      counts: np.ndarray) -> None:  # pragma: no cover - compiled by numba
    never = np.iinfo(np.int64).min
    last = np.full((height + 2, width + 2), never, np.int64)  # a border of pixels that never fire
    for i in range(t.shape[0]):
        r, c = y[i] + 1, x[i] + 1
        k = 0
        for dr in range(-1, 2):
            for dc in range(-1, 2):
                if dr == 0 and dc == 0:
                    continue
                seen = last[r + dr, c + dc]
                if seen != never and t[i] - seen < dt_us:
                    k += 1
        counts[i] = k
        last[r, c] = t[i]


def background_activity_filter(events: Events, dt_us: int = 30_000) -> Events:
    """Keep an event if some neighbour pixel (3x3, not itself) fired less than ``dt_us`` before it."""
    return events.select(correlated_neighbours(events, dt_us) >= 1)


def stcf(events: Events, dt_us: int = 30_000, k: int = 2) -> Events:
    """Spatio-temporal correlation filter: keep an event if at least ``k`` of its 8
    neighbour pixels fired less than ``dt_us`` before it."""
    if not 1 <= k <= 8:
        raise ValueError(f"stcf: k must be in 1..8 (neighbour pixels), got {k}")
    return events.select(correlated_neighbours(events, dt_us) >= k)


def refractory_filter(events: Events, period_us: int = 1_000) -> Events:
    """Drop an event if its pixel fired at most ``period_us`` before it (jAER keeps
    ``deltat > period``); every event, dropped or not, restarts the pixel's period."""
    _check_sorted(events)
    n = len(events)
    if n == 0:
        return events
    pix = _pixel_index(events)
    order = np.argsort(pix, kind="stable")
    ps, ts = pix[order], events.t[order]
    keep_sorted = np.ones(n, dtype=bool)
    same = ps[1:] == ps[:-1]
    keep_sorted[1:] = ~same | (ts[1:] - ts[:-1] > period_us)
    keep = np.empty(n, dtype=bool)
    keep[order] = keep_sorted
    return events.select(keep)


FILTERS: dict[str, Callable[..., Events]] = {
    "baf": background_activity_filter,
    "refractory": refractory_filter,
    "stcf": stcf,
}


def apply_filter(name: str, events: Events, **params: Any) -> Events:
    """Run the registered filter ``name`` with keyword ``params`` (e.g. dt_us=10000)."""
    if name not in FILTERS:
        raise ValueError(f"unknown filter {name!r}; choose one of {', '.join(sorted(FILTERS))}")
    return FILTERS[name](events, **params)
