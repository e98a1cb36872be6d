"""Evaluation over folders: pairing rules, per-window tables, summaries, table and figure."""
from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from evdenoise.evaluate import (comparison_figure, evaluate_dirs, evaluate_methods, evaluate_pair, markdown_table,
                                pair_files, summarize, write_csv)
from evdenoise.events import Events, write_events
from evdenoise.metrics import BENCHMARK_COLUMNS, METRIC_COLUMNS

W, H = 64, 48


def _stream(seed: int, n: int, t_start: int = 0, span: int = 100_000) -> Events:
    rng = np.random.default_rng(seed)
    return Events.from_arrays(np.sort(rng.integers(t_start, t_start + span, n)), rng.integers(0, W, n),
                              rng.integers(0, H, n), rng.integers(0, 2, n), W, H)


@pytest.fixture()
def dataset(tmp_path: Path) -> dict[str, Path]:
    """gt/<s>_bg_light.h5, noisy/<s>_bg_flare.h5 (truth + noise), perfect/<s>_bg_light.h5 (copies)."""
    dirs = {k: tmp_path / k for k in ("gt", "noisy", "perfect")}
    for k, stem in enumerate(("a", "b")):
        anchors = Events.from_arrays([0, 99_999], [1, 2], [1, 2], [1, 0], W, H)  # span exactly 5 windows
        clean = Events.concatenate([anchors, _stream(k, 1500)]).sorted()
        noisy = Events.concatenate([clean, _stream(10 + k, 400)]).sorted()
        write_events(dirs["gt"] / f"{stem}_bg_light.h5", clean)
        write_events(dirs["noisy"] / f"{stem}_bg_flare.h5", noisy)
        write_events(dirs["perfect"] / f"{stem}_bg_light.h5", clean)
    return dirs


def test_pairing_rules(dataset: dict[str, Path]) -> None:
    pairs = pair_files(dataset["noisy"], dataset["gt"])
    assert [(p.name, g.name) for p, g in pairs] == [("a_bg_flare.h5", "a_bg_light.h5"),
                                                   ("b_bg_flare.h5", "b_bg_light.h5")]
    assert [g.name for _, g in pair_files(dataset["perfect"], dataset["gt"])] == ["a_bg_light.h5", "b_bg_light.h5"]
    write_events(dataset["noisy"] / "stray.h5", _stream(3, 10))
    with pytest.raises(ValueError, match="no ground truth .* for stray.h5"):
        pair_files(dataset["noisy"], dataset["gt"])
    (dataset["noisy"] / "stray.h5").unlink()
    (dataset["noisy"] / "b_bg_flare.h5").unlink()
    with pytest.raises(ValueError, match="without a prediction .*b_bg_light.h5"):
        pair_files(dataset["noisy"], dataset["gt"])
    with pytest.raises(ValueError, match="does not exist"):
        pair_files(dataset["noisy"] / "missing", dataset["gt"])


def test_evaluate_dirs_rows_and_windows(dataset: dict[str, Path]) -> None:
    df = evaluate_dirs(dataset["noisy"], dataset["gt"])
    assert len(df) == 10 and df["file"].tolist() == ["a_bg_light.h5"] * 5 + ["b_bg_light.h5"] * 5
    assert list(df.columns[:2]) == ["file", "window"]
    assert (df["count_ratio"] > 1).all() and (df["chamfer"] > 0).all()
    single = evaluate_pair(dataset["noisy"] / "a_bg_flare.h5", dataset["gt"] / "a_bg_light.h5")
    pd.testing.assert_frame_equal(single, df[df["file"] == "a_bg_light.h5"].drop(columns="file"),
                                  check_dtype=False)
    # windows taken from the noisy inputs (same 0..99999 span here) and a custom length
    by_input = evaluate_dirs(dataset["perfect"], dataset["gt"], input_dir=dataset["noisy"], segment_us=25_000)
    assert by_input["t0"].tolist() == [0, 25_000, 50_000, 75_000] * 2
    with pytest.raises(ValueError, match="no input file"):
        evaluate_dirs(dataset["perfect"], dataset["gt"], input_dir=dataset["gt"].parent)


def test_summary_table_and_figure(dataset: dict[str, Path], tmp_path: Path) -> None:
    per = evaluate_methods({"raw": dataset["noisy"], "oracle": dataset["perfect"]}, dataset["gt"])
    assert per["method"].unique().tolist() == ["raw", "oracle"]
    csv = tmp_path / "out" / "per_window.csv"
    write_csv(per, csv)
    pd.testing.assert_frame_equal(pd.read_csv(csv), per, check_dtype=False)

    summary = summarize(per)
    assert summary.index.tolist() == ["raw", "oracle"]
    assert summary["windows"].tolist() == [10, 10] and summary["files"].tolist() == [2, 2]
    assert [c for c in summary.columns if c.endswith("_mean")] == [f"{m}_mean" for m in METRIC_COLUMNS]
    assert summary.at["oracle", "chamfer_mean"] == 0 and summary.at["oracle", "r_f1_std"] == 0
    raw = per[per["method"] == "raw"]
    assert summary.at["raw", "mse_mean"] == pytest.approx(raw["mse"].mean())
    assert summary.at["raw", "mse_std"] == pytest.approx(raw["mse"].std())
    with pytest.raises(ValueError, match="'method' column"):
        summarize(per.drop(columns="method"))

    table = markdown_table(summary)
    lines = table.strip().splitlines()
    assert len(lines) == 4 and "Chamfer ↓" in lines[0] and "TP-F1 ↑" in lines[0]
    assert lines[0].count("|") == len(BENCHMARK_COLUMNS) + 2
    oracle_cells = lines[3].strip("| ").split(" | ")[1:]
    assert all(c.startswith("**") for c in oracle_cells)  # the oracle is best everywhere
    assert not any("**" in c for c in lines[2].split(" | ")[1:])
    assert "1.0000 ± 0.0000" in lines[3]

    png = tmp_path / "fig" / "comparison.png"
    comparison_figure(summary, png, relative_to="raw", dpi=50)
    assert mpimg.imread(png).shape[:2] == (2 * 2.8 * 50, 4 * 3.2 * 50)
    with pytest.raises(ValueError, match="relative_to='nope'"):
        comparison_figure(summary, png, relative_to="nope")
    assert sorted(p.name for p in png.parent.iterdir()) == ["comparison.png"]  # no temp files left
