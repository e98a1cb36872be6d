"""E-Deflare metrics: known answers computed by hand, empty-window conventions, invariances."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evdenoise.events import Events, read_events
from evdenoise.metrics import (BENCHMARK_COLUMNS, HIGHER_IS_BETTER, MAX_DISTANCE, METRIC_COLUMNS, file_metrics,
                               methods_metrics, metric_direction, window_metrics)
from evdenoise.windows import make_windows

PERFECT = {"chamfer": 0.0, "gaussian": 0.0, "mse": 0.0, "pmse2": 0.0, "pmse4": 0.0, "r_f1": 1.0, "t_f1": 1.0,
           "tp_f1": 1.0, "count_ratio": 1.0, "chamfer_gt_scaled": 0.0, "gaussian_gt_scaled": 0.0}


def _ev(rows: list[tuple[int, int, int, int]], w: int, h: int) -> Events:
    if not rows:
        return Events.empty(w, h)
    t, x, y, p = (np.array(c) for c in zip(*rows))
    return Events.from_arrays(t, x, y, p, w, h).sorted()


def _random(seed: int, n: int = 3000, w: int = 40, h: int = 30, span: int = 20_000) -> Events:
    rng = np.random.default_rng(seed)
    return Events.from_arrays(np.sort(rng.integers(0, span, n)), rng.integers(0, w, n), rng.integers(0, h, n),
                              rng.integers(0, 2, n), w, h)


def test_columns_and_directions() -> None:
    assert METRIC_COLUMNS[:8] == BENCHMARK_COLUMNS == [
        "chamfer", "gaussian", "mse", "pmse2", "pmse4", "r_f1", "t_f1", "tp_f1"]
    assert {"count_ratio", "chamfer_gt_scaled", "gaussian_gt_scaled"} <= set(METRIC_COLUMNS)
    assert HIGHER_IS_BETTER == {"r_f1", "t_f1", "tp_f1"}
    assert metric_direction("count_ratio") == "target" and metric_direction("mse") == "lower"


def test_identical_streams_score_perfectly() -> None:
    ev = _random(0)
    assert window_metrics(ev, ev, 0, 20_000) == pytest.approx(PERFECT)


def test_spurious_event_distances_by_hand() -> None:
    # 11x11 sensor, window [0, 101): ranges x 0..10, y 0..10, t 0..100 -> factors 10, 10, 1.
    gt = _ev([(0, 0, 0, 1), (100, 10, 10, 0)], 11, 11)
    est = _ev([(0, 0, 0, 1), (100, 10, 10, 0), (0, 10, 0, 1)], 11, 11)
    m = window_metrics(est, gt, 0, 101)
    # the extra event scales to (100, 0, ON=100, 0): 100 from (0, 0, 100, 0); the others match
    assert m["chamfer"] == pytest.approx(100 / 3)
    assert m["gaussian"] == pytest.approx(1 / 3)
    assert m["chamfer_gt_scaled"] == pytest.approx(100 / 3)  # same ranges as the truth
    # one signed cell differs by 1 out of 8 bins x 11 x 11
    assert m["mse"] == pytest.approx(1 / 968)
    # pooled over zero-padded 12x12: one ON cell of 0.25 (k=2) or 1/16 (k=4)
    assert m["pmse2"] == pytest.approx(0.25 ** 2 / (2 * 8 * 6 * 6))
    assert m["pmse4"] == pytest.approx((1 / 16) ** 2 / (2 * 8 * 3 * 3))
    assert m["r_f1"] == m["t_f1"] == m["tp_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1))
    assert m["count_ratio"] == pytest.approx(1.5)


def test_per_stream_vs_gt_scaling_by_hand() -> None:
    # truth spans x 0..200 and t 0..200 (factor 0.5), y is constant (extent fallback)
    gt = _ev([(0, 0, 0, 1), (200, 200, 0, 1)], 201, 2)
    est = _ev([(0, 1, 0, 1), (200, 200, 0, 1)], 201, 2)
    m = window_metrics(est, gt, 0, 201)
    # per-stream: the estimate's own x range 1..200 maps onto 0..100 -> exact match
    assert m["chamfer"] == pytest.approx(0.0) and m["gaussian"] == pytest.approx(0.0)
    # truth's scale: x = 1 -> 0.5, so one distance of 0.5 and one of 0
    assert m["chamfer_gt_scaled"] == pytest.approx(0.25)
    assert m["gaussian_gt_scaled"] == pytest.approx((1 - math.exp(-0.25 / 0.4)) / 2)


def test_f1_variants_by_hand() -> None:
    gt = _ev([(0, 0, 0, 1), (100, 10, 10, 0)], 11, 11)
    # first event moved to another time bin (60 -> bin 4), second has the wrong polarity
    est = _ev([(60, 0, 0, 1), (100, 10, 10, 1)], 11, 11)
    m = window_metrics(est, gt, 0, 101)
    assert m["r_f1"] == pytest.approx(0.0)
    assert m["t_f1"] == pytest.approx(0.5)
    assert m["tp_f1"] == pytest.approx(1.0)


def test_pmse_pooling_on_small_grid() -> None:
    block = [(0, 0, 0, 1), (1, 1, 0, 1), (2, 0, 1, 1), (3, 1, 1, 1)]  # 2x2 block, top-left
    gt = _ev(block, 4, 4)
    same_block = _ev([(i, 0, 0, 1) for i in range(4)], 4, 4)
    m = window_metrics(same_block, gt, 0, 10, bins=1)
    assert m["mse"] == pytest.approx((3 ** 2 + 3 * 1) / 16)
    assert m["pmse2"] == pytest.approx(0.0) and m["pmse4"] == pytest.approx(0.0)
    other_block = _ev([(i, 2, 2, 1) for i in range(4)], 4, 4)
    m = window_metrics(other_block, gt, 0, 10, bins=1)
    assert m["pmse2"] == pytest.approx(2 / 8)  # 2 of 2 channels x 2 x 2 pooled cells differ by 1
    assert m["pmse4"] == pytest.approx(0.0)
    # odd size: the 5x5 grid is zero-padded to 6x6, the corner pixel shares its block with padding
    m = window_metrics(Events.empty(5, 5), _ev([(0, 4, 4, 1)], 5, 5), 0, 10, bins=1)
    assert m["pmse2"] == pytest.approx(0.25 ** 2 / (2 * 3 * 3))


def test_empty_window_conventions() -> None:
    ev = _random(1)
    empty = Events.empty(ev.width, ev.height)
    assert window_metrics(empty, empty, 0, 20_000) == pytest.approx(PERFECT)
    missed = window_metrics(empty, ev, 0, 20_000)
    assert missed["chamfer"] == missed["chamfer_gt_scaled"] == MAX_DISTANCE == pytest.approx(200.0)
    assert missed["gaussian"] == missed["gaussian_gt_scaled"] == 1.0
    assert missed["r_f1"] == missed["t_f1"] == missed["tp_f1"] == 0.0
    assert missed["count_ratio"] == 0.0
    spurious = window_metrics(ev, empty, 0, 20_000)
    assert spurious["chamfer"] == MAX_DISTANCE and spurious["gaussian"] == 1.0
    assert spurious["count_ratio"] == float(len(ev))
    assert all(np.isfinite(v) for v in (*missed.values(), *spurious.values()))


def test_absolute_timestamps_give_the_same_metrics() -> None:
    gt, rng = _random(2), np.random.default_rng(3)
    est = gt.select(rng.random(len(gt)) > 0.3)
    shift = 1_600_000_000_000_000

    def shifted(e: Events) -> Events:
        return Events(e.t + shift, e.x, e.y, e.p, e.width, e.height)

    a = window_metrics(est, gt, 0, 20_000)
    b = window_metrics(shifted(est), shifted(gt), shift, shift + 20_000)
    assert a == pytest.approx(b, rel=1e-12)
    assert 0 < a["chamfer"] < 10 and 0 < a["r_f1"] < 1 and a["count_ratio"] == pytest.approx(len(est) / len(gt))


def test_more_noise_scores_worse() -> None:
    gt = _random(4)
    noise = [_random(10 + k, n=n) for k, n in enumerate((100, 1000))]
    little, lots = (window_metrics(Events.concatenate([gt, z]).sorted(), gt, 0, 20_000) for z in noise)
    for col in ("chamfer", "gaussian", "mse", "pmse2", "chamfer_gt_scaled"):
        assert 0 < little[col] < lots[col], col
    for col in ("r_f1", "t_f1", "tp_f1"):
        assert 1 > little[col] > lots[col], col


def test_file_metrics_rows_and_windows() -> None:
    gt = _random(5, span=100_000)
    est = gt.select(np.arange(len(gt)) % 3 > 0)
    df = file_metrics(est, gt)
    assert list(df.columns) == ["window", "t0", "t1", "partial", "n_est", "n_gt"] + METRIC_COLUMNS
    assert len(df) == 5 and df["n_gt"].sum() == len(gt) and df["n_est"].sum() == len(est)
    assert (df["t1"] - df["t0"] == 20_000).all()
    windows = make_windows(0, 39_999, 10_000)
    df2 = file_metrics(est, gt, windows)
    assert df2["t0"].tolist() == [0, 10_000, 20_000, 30_000]
    with pytest.raises(ValueError, match="differs"):
        file_metrics(est, Events.empty(10, 10))
    assert len(file_metrics(Events.empty(gt.width, gt.height), Events.empty(gt.width, gt.height))) == 0


def test_real_recording_against_itself_and_a_thinned_copy(real_dir: Path) -> None:
    real = real_dir / "dvxplorer_320x240_person.h5"
    ev = read_events(real)
    df = file_metrics(ev, ev)
    assert len(df) == 30  # 590 ms in 20 ms windows
    assert df[METRIC_COLUMNS].mean().to_dict() == pytest.approx(PERFECT)
    thinned = file_metrics(ev.select(np.arange(len(ev)) % 2 == 0), ev)
    assert (thinned["count_ratio"].between(0.45, 0.55)).all()
    assert (thinned["r_f1"] < 1).all() and (thinned["chamfer"] >= 0).all()


def _dense_pmse(est: Events, gt: Events, k: int, bins: int) -> float:
    """The pooled MSE the E-Deflare way: dense count grids, zero-padded, averaged k x k, then the MSE."""
    def pooled(ev: Events) -> np.ndarray:
        grid = np.zeros((2, bins, -(-ev.height // k) * k, -(-ev.width // k) * k))
        np.add.at(grid, ((ev.p < 0).astype(int), ev.t * bins // 20_000, ev.y, ev.x), 1)
        c, b, h, w = grid.shape
        return grid.reshape(c, b, h // k, k, w // k, k).mean(axis=(3, 5))
    return float(np.mean((pooled(est) - pooled(gt)) ** 2))


def test_pooled_mse_matches_dense_pooling_on_odd_sizes() -> None:
    gt = _random(6, n=4000, w=41, h=29)
    est = Events.concatenate([gt.select(np.arange(len(gt)) % 4 > 0), _random(7, n=500, w=41, h=29)]).sorted()
    m = window_metrics(est, gt, 0, 20_000)
    for k in (2, 4):
        assert m[f"pmse{k}"] == pytest.approx(_dense_pmse(est, gt, k, 8), rel=1e-12)


def test_methods_share_each_window_truth_without_mixing_them() -> None:
    gt = _random(8, span=60_000)
    estimates = {"thinned": gt.select(np.arange(len(gt)) % 3 > 0), "noisy": Events.concatenate(
        [gt, _random(9, n=800, span=60_000)]).sorted(), "empty": Events.empty(gt.width, gt.height)}
    windows = make_windows(0, 59_999, 20_000)
    table = methods_metrics(estimates, gt, windows, "f")
    assert list(table.columns[:2]) == ["file", "method"] and (table["file"] == "f").all()
    for name, est in estimates.items():
        alone = file_metrics(est, gt, windows)
        pd.testing.assert_frame_equal(table[table["method"] == name].drop(columns=["file", "method"])
                                      .reset_index(drop=True), alone)
