"""The E-Deflare metric suite, per time window, for an estimated vs a ground-truth stream.

Columns (``METRIC_COLUMNS``; the first eight are the E-Deflare benchmark's):

* ``chamfer``: mean Euclidean distance from each estimated event to its nearest
  ground-truth event in (x, y, p, t), one way (estimate -> truth), found with a KD-tree.
  Scaling: x, y and t are min-max scaled to [0, 100] *within each stream's events of the
  window* (the E-Deflare description says "each coordinate min-max scaled"; it does not say
  over what, and per-stream is the literal reading). Polarity is mapped to OFF = 0,
  ON = 100 in both streams - what min-max scaling gives whenever a stream has both
  polarities - so that a one-polarity window does not flip its events' polarity. An axis
  a stream does not span (one x value, one timestamp, ...) is scaled by the window's
  full extent on that axis instead (width - 1, height - 1, t1 - t0 - 1).
* ``gaussian``: mean of ``1 - exp(-d**2 / 0.4)`` over the same distances (0 best, 1 worst).
* ``mse``: mean squared difference of signed voxel grids (1 channel, ``bins`` bins over
  [t0, t1), nearest-bin assignment, full sensor).
* ``pmse2``, ``pmse4``: ON/OFF count grids (2 channels) average-pooled k x k with stride k
  (zero-padded at the bottom/right up to a multiple of k), then the MSE.
* ``r_f1``, ``t_f1``, ``tp_f1``: F1 of ON/OFF count grids binarised at > 0.001: raw
  (C, B, H, W); summed over time (C, H, W); summed over time and polarity (H, W).
* ``count_ratio``: estimated / ground-truth event count (1 is ideal).
* ``chamfer_gt_scaled``, ``gaussian_gt_scaled``: as above, but both streams are scaled by
  the *ground truth's* ranges. Per-stream scaling lets the removal of a few outlying events
  stretch every other estimated event; the ground-truth-scaled variant does not.

Conventions where a stream has no events in the window (all finite, no NaN):

* both empty: perfect scores (distances 0, MSE 0, F1 1, count ratio 1);
* empty estimate, non-empty truth: Chamfer = 200 (the diagonal of the [0, 100]^4 scaled
  space, the largest possible distance), Gaussian = 1, count ratio 0;
* non-empty estimate, empty truth: every estimated event is spurious, so again Chamfer =
  200 and Gaussian = 1; count ratio = the estimate's count (as if the truth had 1 event);
* F1 with no positive cell in either grid is 1 (nothing to find, nothing wrongly found).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from .defaults import BINS
from .events import Events
from .threads import cpu_threads
from .voxel import VoxelSpec, encode
from .windows import Windows, windows_for

BENCHMARK_COLUMNS = ["chamfer", "gaussian", "mse", "pmse2", "pmse4", "r_f1", "t_f1", "tp_f1"]
METRIC_COLUMNS = BENCHMARK_COLUMNS + ["count_ratio", "chamfer_gt_scaled", "gaussian_gt_scaled"]
HIGHER_IS_BETTER = {"r_f1", "t_f1", "tp_f1"}
# Metrics whose best value is a target rather than an extreme.
TARGET_VALUE = {"count_ratio": 1.0}
METRIC_LABELS = {
    "chamfer": "Chamfer", "gaussian": "Gaussian", "mse": "MSE", "pmse2": "PMSE 2", "pmse4": "PMSE 4",
    "r_f1": "R-F1", "t_f1": "T-F1", "tp_f1": "TP-F1", "count_ratio": "Count ratio",
    "chamfer_gt_scaled": "Chamfer (GT-scaled)", "gaussian_gt_scaled": "Gaussian (GT-scaled)",
}

SCALE = 100.0
MAX_DISTANCE = SCALE * math.sqrt(4.0)  # diagonal of the scaled (x, y, p, t) box
GAUSSIAN_WIDTH = 0.4
F1_THRESHOLD = 1e-3
POOL_SIZES = (2, 4)


def metric_direction(column: str) -> str:
    """``"higher"``, ``"lower"`` or ``"target"`` (closest to ``TARGET_VALUE[column]``)."""
    if column in TARGET_VALUE:
        return "target"
    return "higher" if column in HIGHER_IS_BETTER else "lower"


def _scaling(ev: Events, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer offsets and float factors mapping ``ev``'s (x, y, p01, t) onto [0, 100]."""
    lo = np.array([ev.x.min(), ev.y.min(), 0, ev.t.min()], dtype=np.int64)
    span = np.array([ev.x.max(), ev.y.max(), 1, ev.t.max()], dtype=np.int64) - lo
    # Fallback for an axis the stream does not span: the window's extent on that axis.
    extent = np.array([max(ev.width - 1, 1), max(ev.height - 1, 1), 1, max(t1 - t0 - 1, 1)], dtype=np.int64)
    return lo, SCALE / np.where(span > 0, span, extent)


def _scaled(ev: Events, lo: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """(N, 4) scaled points; polarity enters as 0 (OFF) / 1 (ON) before scaling."""
    # Offsets are subtracted in int64: absolute timestamps (~1.6e15 µs) would lose
    # precision if scaled as float64 first.
    cols = (ev.x.astype(np.int64), ev.y.astype(np.int64), (ev.p > 0).astype(np.int64), ev.t)
    return np.column_stack([(c - o).astype(np.float64) * f for c, o, f in zip(cols, lo, factor)])


class _Truth:
    """The ground truth's events of one window and what every estimate is compared with: its scaled KD-tree,
    its count grid and its pooled count grids, built once however many estimates are scored."""

    def __init__(self, gt: Events, t0: int, t1: int, bins: int) -> None:
        self.events, self.t0, self.t1, self.bins = gt, t0, t1, bins
        self.lo, self.factor = _scaling(gt, t0, t1) if len(gt) else (None, None)
        self.tree = (cKDTree(_scaled(gt, self.lo, self.factor), balanced_tree=False, compact_nodes=False)
                     if len(gt) else None)
        self.counts = _counts(gt, t0, t1, bins)
        self.pooled = {k: _pooled_counts(gt, t0, t1, bins, k) for k in POOL_SIZES}


def _point_metrics(est: Events, truth: _Truth) -> dict[str, float]:
    if len(est) == 0 and len(truth.events) == 0:
        return {"chamfer": 0.0, "gaussian": 0.0, "chamfer_gt_scaled": 0.0, "gaussian_gt_scaled": 0.0}
    if len(est) == 0 or truth.tree is None:
        return {"chamfer": MAX_DISTANCE, "gaussian": 1.0,
                "chamfer_gt_scaled": MAX_DISTANCE, "gaussian_gt_scaled": 1.0}
    own = _scaling(est, truth.t0, truth.t1)
    d_own = _distances(est, truth, own)
    # Where the estimate spans the truth's ranges (as a dense window usually does) both scalings are one.
    same = all(np.array_equal(a, b) for a, b in zip(own, (truth.lo, truth.factor)))
    d_gt = d_own if same else _distances(est, truth, (truth.lo, truth.factor))
    out: dict[str, float] = {}
    for suffix, d in (("", d_own), ("_gt_scaled", d_gt)):
        out["chamfer" + suffix] = float(d.mean())
        out["gaussian" + suffix] = float(np.mean(-np.expm1(-d * d / GAUSSIAN_WIDTH)))
    return out


def _distances(est: Events, truth: _Truth, scaling: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Each estimated event's distance to its nearest truth event, the estimate scaled by ``scaling``.
    Exact nearest distances whatever the number of workers, so the scores stay deterministic."""
    d, _ = truth.tree.query(_scaled(est, *scaling), k=1, workers=cpu_threads())
    return d


def _f1(est: np.ndarray, gt: np.ndarray) -> float:
    """F1 of two boolean grids (a count above F1_THRESHOLD is a positive cell)."""
    tp = np.count_nonzero(est & gt)
    wrong = np.count_nonzero(est ^ gt)  # false positives + false negatives
    return 1.0 if tp + wrong == 0 else 2.0 * tp / (2.0 * tp + wrong)


def _counts(ev: Events, t0: int, t1: int, bins: int) -> np.ndarray:
    """ON/OFF count grid (2, B, H, W) of the window's events, nearest-bin assignment."""
    return encode(ev, t0, t1, VoxelSpec(bins, 2, "nearest"))


def _pooled_counts(ev: Events, t0: int, t1: int, bins: int, k: int) -> np.ndarray:
    """The count grid summed over k x k cells (zero-padded at the bottom/right), flat: straight from the
    events, since a pooled count grid is the count grid of the coarser pixels."""
    hk, wk = -(-ev.height // k), -(-ev.width // k)
    b = (ev.t - t0) * bins // (t1 - t0)  # the nearest-bin assignment's exact integer edges
    cell = ((np.int64(1) * (ev.p < 0) * bins + b) * hk + ev.y // k) * wk + ev.x // k
    return np.bincount(cell, minlength=2 * bins * hk * wk)


def _mean_square(d: np.ndarray) -> float:
    """Mean of the squares of an integer grid, exact up to the one final division."""
    d = d.ravel().astype(np.int64)
    return float(d @ d) / d.size


def _voxel_metrics(est: Events, truth: _Truth) -> dict[str, float]:
    t0, t1, bins = truth.t0, truth.t1, truth.bins
    e2 = _counts(est, t0, t1, bins)
    diff = e2 - truth.counts  # whole counts: exact in float32
    # The signed 1-channel grid (ON +1, OFF -1) is the ON channel less the OFF one.
    out = {"mse": _mean_square(diff[0] - diff[1])}
    for k in POOL_SIZES:
        d = _pooled_counts(est, t0, t1, bins, k) - truth.pooled[k]
        out[f"pmse{k}"] = _mean_square(d) / k ** 4  # the pooled grids average k*k cells
    a, b = e2 > F1_THRESHOLD, truth.counts > F1_THRESHOLD
    out["r_f1"] = _f1(a, b)
    # Summed counts are positive where any summand is (counts are never negative).
    out["t_f1"] = _f1(a.any(axis=1), b.any(axis=1))
    out["tp_f1"] = _f1(a.any(axis=(0, 1)), b.any(axis=(0, 1)))
    return out


def _check_pair(est: Events, gt: Events) -> None:
    if (est.width, est.height) != (gt.width, gt.height):
        raise ValueError(f"estimate sensor {est.width}x{est.height} differs from ground truth "
                         f"{gt.width}x{gt.height}")


def _time_sorted(ev: Events) -> Events:
    return ev.sorted() if len(ev) > 1 and np.any(np.diff(ev.t) < 0) else ev


def _scored(est: Events, truth: _Truth) -> dict[str, float]:
    """All ``METRIC_COLUMNS`` of an estimate's events of the window against the window's truth."""
    out = _point_metrics(est, truth) | _voxel_metrics(est, truth)
    n_gt = len(truth.events)
    out["count_ratio"] = len(est) / n_gt if n_gt else (1.0 if len(est) == 0 else float(len(est)))
    return {k: out[k] for k in METRIC_COLUMNS}


def window_metrics(est: Events, gt: Events, t0: int, t1: int, bins: int = BINS) -> dict[str, float]:
    """All ``METRIC_COLUMNS`` for the events of both streams in ``[t0, t1)`` (streams time-sorted)."""
    _check_pair(est, gt)
    t0, t1 = int(t0), int(t1)
    return _scored(est.between(t0, t1), _Truth(gt.between(t0, t1), t0, t1, bins))


ROW_COLUMNS = ["window", "t0", "t1", "partial", "n_est", "n_gt"] + METRIC_COLUMNS


def _window_rows(estimates: Sequence[Events], gt: Events, windows: Windows, bins: int) -> list[list[dict[str, Any]]]:
    """Per estimate, one row per window; each window's truth is built once for all of them."""
    for est in estimates:
        _check_pair(est, gt)
    estimates, gt = [_time_sorted(est) for est in estimates], _time_sorted(gt)
    rows: list[list[dict[str, Any]]] = [[] for _ in estimates]
    for i, (t0, t1, partial) in enumerate(zip(windows.start.tolist(), windows.end.tolist(),
                                              windows.partial.tolist())):
        truth = _Truth(gt.between(t0, t1), t0, t1, bins)
        for est, out in zip(estimates, rows):
            ev = est.between(t0, t1)
            out.append({"window": i, "t0": t0, "t1": t1, "partial": partial, "n_est": len(ev),
                        "n_gt": len(truth.events), **_scored(ev, truth)})
    return rows


def file_metrics(est: Events, gt: Events, windows: Windows | None = None, bins: int = BINS) -> pd.DataFrame:
    """One row per window: ``window, t0, t1, partial, n_est, n_gt`` and ``METRIC_COLUMNS``.

    ``windows`` defaults to the windows holding events of either stream (``windows_for``), so a window of
    flare alone is scored too; the workflow passes the noisy input's windows so all methods share them.
    """
    if windows is None:
        _check_pair(est, gt)
        windows = windows_for(Events.concatenate([gt, est]).sorted())
    return pd.DataFrame(_window_rows([est], gt, windows, bins)[0], columns=ROW_COLUMNS)


def methods_metrics(estimates: Mapping[str, Events], gt: Events, windows: Windows, file: str,
                    bins: int = BINS) -> pd.DataFrame:
    """:func:`file_metrics` of each method's stream (``estimates``: name -> events) on the same windows, one
    table with ``file`` and ``method`` columns first (what the workflow's per-sample metric files hold)."""
    frames = []
    for method, rows in zip(estimates, _window_rows(list(estimates.values()), gt, windows, bins)):
        df = pd.DataFrame(rows, columns=ROW_COLUMNS)
        df.insert(0, "method", method)
        df.insert(0, "file", file)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)
