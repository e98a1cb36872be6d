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
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from .defaults import BINS
from .events import Events
from .voxel import VoxelSpec, encode, pad_to
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


def _point_metrics(est: Events, gt: Events, t0: int, t1: int) -> dict[str, float]:
    if len(est) == 0 and len(gt) == 0:
        return {"chamfer": 0.0, "gaussian": 0.0, "chamfer_gt_scaled": 0.0, "gaussian_gt_scaled": 0.0}
    if len(est) == 0 or len(gt) == 0:
        return {"chamfer": MAX_DISTANCE, "gaussian": 1.0,
                "chamfer_gt_scaled": MAX_DISTANCE, "gaussian_gt_scaled": 1.0}
    gt_lo, gt_factor = _scaling(gt, t0, t1)
    tree = cKDTree(_scaled(gt, gt_lo, gt_factor), balanced_tree=False, compact_nodes=False)
    out: dict[str, float] = {}
    for suffix, (lo, factor) in (("", _scaling(est, t0, t1)), ("_gt_scaled", (gt_lo, gt_factor))):
        d, _ = tree.query(_scaled(est, lo, factor), k=1)
        out["chamfer" + suffix] = float(d.mean())
        out["gaussian" + suffix] = float(np.mean(-np.expm1(-d * d / GAUSSIAN_WIDTH)))
    return out


def _f1(est: np.ndarray, gt: np.ndarray) -> float:
    a, b = est > F1_THRESHOLD, gt > F1_THRESHOLD
    tp = np.count_nonzero(a & b)
    wrong = np.count_nonzero(a ^ b)  # false positives + false negatives
    return 1.0 if tp + wrong == 0 else 2.0 * tp / (2.0 * tp + wrong)


def _avg_pool(vox: np.ndarray, k: int) -> np.ndarray:
    padded, _ = pad_to(vox, (k, k))
    *lead, h, w = padded.shape
    return padded.reshape(*lead, h // k, k, w // k, k).mean(axis=(-3, -1))


def _voxel_metrics(est: Events, gt: Events, t0: int, t1: int, bins: int) -> dict[str, float]:
    signed, split = VoxelSpec(bins, 1, "nearest"), VoxelSpec(bins, 2, "nearest")
    diff = encode(est, t0, t1, signed).astype(np.float64) - encode(gt, t0, t1, signed)
    out = {"mse": float(np.mean(diff * diff))}
    e2, g2 = encode(est, t0, t1, split), encode(gt, t0, t1, split)
    for k in POOL_SIZES:
        d = _avg_pool(e2, k).astype(np.float64) - _avg_pool(g2, k)
        out[f"pmse{k}"] = float(np.mean(d * d))
    out["r_f1"] = _f1(e2, g2)
    out["t_f1"] = _f1(e2.sum(axis=1), g2.sum(axis=1))
    out["tp_f1"] = _f1(e2.sum(axis=(0, 1)), g2.sum(axis=(0, 1)))
    return out


def _check_pair(est: Events, gt: Events) -> None:
    if (est.width, est.height) != (gt.width, gt.height):
        raise ValueError(f"estimate sensor {est.width}x{est.height} differs from ground truth "
                         f"{gt.width}x{gt.height}")


def _time_sorted(ev: Events) -> Events:
    return ev.sorted() if len(ev) > 1 and np.any(np.diff(ev.t) < 0) else ev


def window_metrics(est: Events, gt: Events, t0: int, t1: int, bins: int = BINS) -> dict[str, float]:
    """All ``METRIC_COLUMNS`` for the events of both streams in ``[t0, t1)`` (streams time-sorted)."""
    _check_pair(est, gt)
    t0, t1 = int(t0), int(t1)
    est, gt = est.between(t0, t1), gt.between(t0, t1)
    out = _point_metrics(est, gt, t0, t1)
    out.update(_voxel_metrics(est, gt, t0, t1, bins))
    if len(gt):
        out["count_ratio"] = len(est) / len(gt)
    else:
        out["count_ratio"] = 1.0 if len(est) == 0 else float(len(est))
    return {k: out[k] for k in METRIC_COLUMNS}


def file_metrics(est: Events, gt: Events, windows: Windows | None = None, bins: int = BINS) -> pd.DataFrame:
    """One row per window: ``window, t0, t1, partial, n_est, n_gt`` and ``METRIC_COLUMNS``.

    ``windows`` defaults to the windows holding events of either stream (``windows_for``), so a window of
    flare alone is scored too; the workflow passes the noisy input's windows so all methods share them.
    """
    _check_pair(est, gt)
    est, gt = _time_sorted(est), _time_sorted(gt)
    if windows is None:
        windows = windows_for(Events.concatenate([gt, est]).sorted())
    rows = []
    for i, (t0, t1, partial) in enumerate(zip(windows.start.tolist(), windows.end.tolist(),
                                              windows.partial.tolist())):
        n_est = int(np.searchsorted(est.t, t1) - np.searchsorted(est.t, t0))
        n_gt = int(np.searchsorted(gt.t, t1) - np.searchsorted(gt.t, t0))
        rows.append({"window": i, "t0": t0, "t1": t1, "partial": partial, "n_est": n_est, "n_gt": n_gt,
                     **window_metrics(est, gt, t0, t1, bins)})
    columns = ["window", "t0", "t1", "partial", "n_est", "n_gt"] + METRIC_COLUMNS
    return pd.DataFrame(rows, columns=columns)


def methods_metrics(estimates: Mapping[str, Events], gt: Events, windows: Windows, file: str) -> pd.DataFrame:
    """:func:`file_metrics` of each method's stream (``estimates``: name -> events) on the same windows, one
    table with ``file`` and ``method`` columns first (what the workflow's per-sample metric files hold)."""
    frames = []
    for method, est in estimates.items():
        df = file_metrics(est, gt, windows)
        df.insert(0, "method", method)
        df.insert(0, "file", file)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)
