"""The verdict helpers of snakemake quality's page (evdenoise.quality) and its sets (fast: no training, no data)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from evdenoise import quality
from evdenoise.evaluate import summarize
from evdenoise.metrics import BENCHMARK_COLUMNS
from evdenoise.quality_sets import load_quality_config, real_samples, set_samples, set_synth_settings

REPO = Path(__file__).resolve().parents[1]


def _scores(values: dict[str, float], f1: dict[str, float]) -> pd.DataFrame:
    """Two windows per method; lower-is-better metrics = values[m], F1s = f1[m]."""
    rows = []
    for method in values:
        for w in range(2):
            row = {"method": method, "file": "a", "window": w}
            for c in BENCHMARK_COLUMNS:
                row[c] = f1[method] if c.endswith("f1") else values[method] * (1 + w)
            rows.append(row)
    return pd.DataFrame(rows)


def test_summary_relative_change_and_verdict() -> None:
    scores = _scores({"raw": 2.0, "baf": 3.0, "refractory": 1.5, "stcf": 4.0, "model_mask": 1.0},
                     {"raw": 0.7, "baf": 0.6, "refractory": 0.65, "stcf": 0.5, "model_mask": 0.8})
    s = summarize(scores)
    assert s.at["raw", "mse_mean"] == pytest.approx(3.0)
    assert quality.relative(s).at["model_mask", "mse"] == pytest.approx(-50.0)
    assert quality.relative(s).at["model_mask", "r_f1"] == pytest.approx((0.8 / 0.7 - 1) * 100)
    assert quality.best_filter(s) == {c: "refractory" for c in BENCHMARK_COLUMNS}
    assert all(quality.wins(s, "model_mask").values())
    # a filter better than the model on the lower-is-better metrics flips exactly those verdicts
    scores.loc[scores["method"] == "refractory", ["chamfer", "mse"]] = 0.1
    verdict = quality.wins(summarize(scores), "model_mask")
    assert [c for c, ok in verdict.items() if not ok] == ["chamfer", "mse"]


def test_model_equal_to_raw_does_not_win() -> None:
    scores = _scores({"raw": 2.0, "baf": 3.0, "refractory": 3.0, "stcf": 3.0, "model_mask": 2.0},
                     {"raw": 0.7, "baf": 0.6, "refractory": 0.6, "stcf": 0.6, "model_mask": 0.7})
    assert not any(quality.wins(summarize(scores), "model_mask").values())


def test_quality_sets_are_the_workflows_data_with_each_sets_keys_on_top(tmp_path: Path) -> None:
    from evdenoise.synth import SynthConfig

    workflow = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["data"]["synthetic"]
    cfg = load_quality_config(REPO / "config" / "quality.yaml")
    settings = set_synth_settings(cfg, workflow, "results/quality", REPO)
    default = SynthConfig.from_dict({"width": workflow["width"], "height": workflow["height"], **workflow["params"]})
    for name, s in cfg["sets"].items():
        got = settings[name]
        synth = SynthConfig.from_dict({"width": got["width"], "height": got["height"], **got["params"]})  # valid
        changed = {k for k in s.get("params", {}) if getattr(synth, k) != getattr(default, k)}
        changed |= {k for k in ("width", "height") if got[k] != workflow[k]}
        if s["role"] == "heldout":  # outside the training data: other seeds and other settings
            assert got["seed"] != workflow["seed"] and (changed or got["backgrounds"]), name
        assert all(Path(b).is_file() for b in got["backgrounds"]), name
    merged = settings["merged"]
    assert merged["seed"] == workflow["seed"] and merged["counts"] == {"test": workflow["counts"]["test"]}
    samples = set_samples(settings)
    assert [x.name for x in samples["merged"]][:2] == ["merged.synth_test_0000", "merged.synth_test_0001"]
    assert str(samples["res_640x480"][0].noisy) == "results/quality/res_640x480/data/heldout/noisy/synth_heldout_0000_bg_flare.h5"
    assert all(r.noisy.is_file() and r.clean is None for r in real_samples(cfg, REPO))
    bad = tmp_path / "q.yaml"
    for change, why in (({"examples": ["nope"]}, "neither"), ({"sets": {"a b": {}}}, "letters"),
                        ({"sets": {"x": {"about": "", "role": "train", "count": 1}}}, "role is"),
                        ({"sets": {"x": {"about": "", "role": "test"}}}, "required")):
        bad.write_text(yaml.safe_dump({**cfg, **change}))
        with pytest.raises(ValueError, match=why):
            load_quality_config(bad)


def test_compact_rows_show_the_perfect_outputs_bound() -> None:
    scores = _scores({"raw": 2.0, "baf": 3.0, "refractory": 1.5, "stcf": 4.0, "model_mask": 1.0, "perfect": 0.0},
                     {"raw": 0.8, "baf": 0.6, "refractory": 0.65, "stcf": 0.5, "model_mask": 0.9, "perfect": 1.0})
    rows = quality.compact_rows(summarize(scores), "model_mask")
    assert [r.split(" | ")[0] for r in rows] == ["| raw", "| best filter", "| model_mask", "| perfect", "| wins"]
    perfect = rows[3].split(" | ")
    # distances fall by 100 %, an F1 of 0.8 can rise by 25 % at most
    assert perfect[1] == "0.0000 (-100%)" and perfect[-1] == "1.0000 (+25%) |"
    assert rows[4].count("yes") == len(BENCHMARK_COLUMNS)


def test_missing_events_complete_exactly_the_f1_grids() -> None:
    import numpy as np

    from evdenoise.events import Events
    from evdenoise.metrics import window_metrics
    from evdenoise.voxel import VoxelSpec, encode_windows
    from evdenoise.windows import Windows

    rng = np.random.default_rng(0)
    n = 400
    clean = Events.from_arrays(np.sort(rng.integers(0, 20000, n)), rng.integers(0, 9, n), rng.integers(0, 7, n),
                               rng.choice([-1, 1], n), 9, 7)
    kept = clean.select(rng.random(n) < 0.3)
    windows = Windows(np.array([0]), np.array([20000]), np.array([False]))
    spec = VoxelSpec(8, 2, "nearest")
    vk, vc = encode_windows(kept, windows, spec), encode_windows(clean, windows, spec)
    before = window_metrics(kept, clean, 0, 20000)
    assert before["r_f1"] < 1 and before["t_f1"] < 1

    cells = quality.missing_events(kept, clean, windows, 8, "cell", seed=1)
    assert len(cells) == np.count_nonzero((vc > 0) & (vk == 0))
    # each added event lies in a clean cell that had no kept event: one per such cell
    np.testing.assert_array_equal(encode_windows(cells, windows, spec), ((vc > 0) & (vk == 0)).astype(np.float32))
    after = window_metrics(Events.concatenate([kept, cells]).sorted(), clean, 0, 20000)
    assert after["r_f1"] == after["t_f1"] == after["tp_f1"] == 1.0

    pixels = quality.missing_events(kept, clean, windows, 8, "pixel", seed=2)
    missing = (vc.sum(axis=2) > 0) & (vk.sum(axis=2) == 0)
    assert len(pixels) == np.count_nonzero(missing)
    vp = encode_windows(pixels, windows, spec)
    np.testing.assert_array_equal(vp.sum(axis=2) > 0, missing)
    added_bin = np.take_along_axis(vc, vp.argmax(axis=2)[:, :, None], axis=2)[:, :, 0]
    np.testing.assert_array_equal(added_bin[missing], vc.max(axis=2)[missing])  # in the clean stream's busiest bin
    after = window_metrics(Events.concatenate([kept, pixels]).sorted(), clean, 0, 20000)
    assert after["t_f1"] == after["tp_f1"] == 1.0 and after["r_f1"] < 1
    with pytest.raises(ValueError, match="per"):
        quality.missing_events(kept, clean, windows, 8, "window", seed=3)
