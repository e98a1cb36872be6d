"""Denoising quality of the default configuration, on seen-like and unseen data, in one run.

Usage (from the repository root):

    .venv/bin/python benchmarks/quality.py [--work results/quality] [--model PATH] [--threads 2]

Steps (each skipped when its output already exists under ``--work``, so a rerun only redoes what is missing):

1. Synthesize the embedded data set exactly as ``make run`` does (``config/config.yaml``: data.synthetic),
   split it into windows and voxelize it with the config's ``voxel`` settings; and its test split once
   more composed by a plain merge (``merge_prob=1``: the same scenes, flare and clean streams, noisy =
   clean + separately simulated flare events, as E-Flare's composer script builds pairs).
2. Train the config's ``model`` with its ``train`` settings on ``threads`` CPU threads and time the
   ``train()`` call (or load ``--model``).
3. Build the held-out generalisation set (``HELDOUT``): other resolutions, real sensor backgrounds and
   flare outside the generator's default ranges, each from its own seed.
4. Score raw / roundtrip / each classical filter / the model with each decoder / the clean stream itself
   (``perfect``: the bound of every margin) on (a) the synthetic test splits and (b) the held-out set with
   the workflow's own ``method_estimates`` + ``file_metrics``; and the ``mask`` decoder fed the *clean*
   voxels, alone and with events added where flare suppressed clean ones (``decoder_bounds``: what a
   perfect network could reach through a decoder that keeps or adds events per cell).
5. Run the model on the real recordings (no flare, no ground truth): share of events kept, and
   before/after pictures.
6. Write ``benchmarks/quality.md`` and its pictures under ``benchmarks/quality/``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import yaml

from evdenoise.artifacts import Segments
from evdenoise.checkpoint import load_model
from evdenoise.decode import decode_windows
from evdenoise.denoise import denoise_events
from evdenoise.events import Events, read_events
from evdenoise.filters import apply_filter
from evdenoise.infer import predict_voxels
from evdenoise.metrics import BENCHMARK_COLUMNS, METRIC_LABELS, file_metrics, metric_direction
from evdenoise.plot import plot_events
from evdenoise.stages import method_estimates, split_file, voxelize_file
from evdenoise.synth import SynthConfig, synthesize
from evdenoise.train import train
from evdenoise.voxel import VoxelSpec, encode_windows
from evdenoise.windows import Windows, windows_for
from evdenoise.defaults import KEEP_THRESHOLD, PREDICT_MODE

ROOT = Path(__file__).resolve().parents[1]
FILTERS = ("baf", "refractory", "stcf")
BASELINES = ("raw", "roundtrip") + FILTERS
DECODES = ("mask", "sample", "spread")
REAL_DIR = ROOT.parent / "shared" / "data" / "real"  # ../shared beside the repository, as in CI
REAL_FILES = ("dvxplorer_320x240_person.h5", "prophesee_640x480_spinner.h5")

# Held-out groups: (SynthConfig overrides, number of files, seed, use real backgrounds). Every group
# differs from the training data in one way; the seeds are not those of the training set's files.
FLARE_OUTSIDE_DEFAULTS: dict[str, Any] = {
    # flicker of LED drivers / PWM dimmers instead of 100/120 Hz mains: slower and faster than trained
    "flicker_hz": (70.0, 144.0, 180.0),
    "waveforms": ("square", "clipped"),
    # larger, flatter halos, more and longer streaks, more and larger ghosts, bigger sources
    "halo_radius": (0.35, 0.5), "halo_exponent": (0.4, 0.7),
    "streak_count": (16, 24), "streak_length": (0.5, 0.7),
    "ghost_count": (6, 9), "ghost_radius": (0.08, 0.12),
    "source_radius": (0.025, 0.04), "n_sources": (2, 3),
}
HELDOUT: dict[str, tuple[dict[str, Any], int, int, bool]] = {
    "res_320x240": ({"width": 320, "height": 240}, 2, 1001, False),
    "res_346x260": ({"width": 346, "height": 260}, 2, 1002, False),
    "res_640x480": ({"width": 640, "height": 480}, 1, 1003, False),
    "real_background": ({"real_background_prob": 1.0}, 3, 1004, True),
    # the same recordings and flare, composed by a plain merge (how flare is often put onto real
    # recordings): every recorded event stays in noisy
    "real_background_merged": ({"real_background_prob": 1.0, "merge_prob": 1.0}, 3, 1004, True),
    "flare_outside_defaults": (FLARE_OUTSIDE_DEFAULTS, 4, 1005, False),
}
# E-DeflareNet's relative change vs raw on E-Deflare (the target margins).
PAPER_MARGIN = {"chamfer": -67, "gaussian": -49, "mse": -85, "pmse2": -87, "pmse4": -87,
                "r_f1": 38, "t_f1": 21, "tp_f1": 12}

log = logging.getLogger("quality")


# ------------------------------------------------------------------------------------- data
def load_config(path: Path) -> dict[str, Any]:
    with open(path) as f:
        return yaml.safe_load(f) or {}


def voxel_spec(cfg: Mapping[str, Any]) -> VoxelSpec:
    return VoxelSpec(**(cfg.get("voxel") or {}))


def inference_settings(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The config's predict mode, decoder seed and mask keep_threshold, with the workflow's defaults."""
    dec = cfg.get("decode") or {}
    return {"mode": str((cfg.get("predict") or {}).get("mode", PREDICT_MODE)), "seed": int(dec.get("seed", 0)),
            "keep_threshold": float(dec.get("keep_threshold", KEEP_THRESHOLD))}


def _synthetic(cfg: Mapping[str, Any], root: Path, counts: Mapping[str, int], **params: Any) -> pd.DataFrame:
    """The config's synthetic data (as the workflow's synthesize rule builds it) with ``params`` on top."""
    syn = cfg["data"]["synthetic"]
    if not (root / "manifest.csv").exists():
        sc = SynthConfig.from_dict({"width": syn["width"], "height": syn["height"],
                                    "duration_us": syn["duration_us"], **(syn.get("params") or {}), **params})
        synthesize(root, counts=counts, cfg=sc, seed=syn["seed"],
                   backgrounds=[ROOT / b for b in syn.get("backgrounds") or []])
    manifest = pd.read_csv(root / "manifest.csv")
    manifest["root"] = str(root)
    return manifest


def merged_test_data(cfg: Mapping[str, Any], work: Path) -> pd.DataFrame:
    """The test split's files (same seeds: same scenes, flare and clean streams) composed by merging."""
    counts = {"test": cfg["data"]["synthetic"]["counts"]["test"]}
    return _synthetic(cfg, work / "data_merged", counts, merge_prob=1.0)


def training_data(cfg: Mapping[str, Any], work: Path) -> tuple[pd.DataFrame, dict[str, list[Path]]]:
    """The embedded synthetic set of the config, split and voxelized; voxel files per split."""
    root = work / "data"
    manifest = _synthetic(cfg, root, cfg["data"]["synthetic"]["counts"])
    spec, win = voxel_spec(cfg), cfg.get("windows") or {}
    tag = f"b{spec.bins}_c{spec.channels}_{spec.assignment}"
    vox: dict[str, list[Path]] = {}
    for _, row in manifest.iterrows():
        seg = work / "segments" / row["split"] / f"{row['name']}.h5"
        if not seg.exists():
            split_file(root / row["noisy"], root / row["clean"], seg, segment_us=win.get("segment_us", 20000),
                       grid=win.get("grid", "relative"))
        out = work / f"voxels_{tag}" / row["split"] / f"{row['name']}.h5"
        if not out.exists():
            voxelize_file(seg, out, spec)
        vox.setdefault(row["split"], []).append(out)
    return manifest, vox


def heldout_data(work: Path, real_dir: Path) -> pd.DataFrame:
    """Generate every held-out group (once); one manifest with a ``group`` and ``root`` column."""
    frames = []
    for group, (overrides, n, seed, real_bg) in HELDOUT.items():
        root = work / "heldout" / group
        if not (root / "manifest.csv").exists():
            backgrounds = [real_dir / f for f in REAL_FILES] if real_bg else []
            synthesize(root, counts={"heldout": n}, cfg=SynthConfig(**overrides), seed=seed,
                       backgrounds=backgrounds)
        m = pd.read_csv(root / "manifest.csv")
        m["group"], m["root"] = group, str(root)
        frames.append(m)
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------------------------ model
def get_model(cfg: Mapping[str, Any], vox: Mapping[str, list[Path]], work: Path, threads: int,
              model: Path | None) -> tuple[Path, dict[str, float] | None]:
    """The model file and the wall / CPU seconds of the ``train()`` call (None when loaded).

    CPU seconds (all threads) bound the wall time an otherwise idle machine would need: on a
    shared machine the wall time also counts the time other jobs held the cores.
    """
    if model is not None:
        return model, None
    train_cfg = {**(cfg.get("train") or {}), "threads": threads}
    extra = {"decode": (cfg.get("decode") or {}).get("strategy", "mask")}
    started, cpu = time.perf_counter(), time.process_time()
    path = train(train_cfg, dict(cfg.get("model") or {"name": "unet3d"}), vox["train"], vox["val"],
                 work / "model", extra_meta=extra, progress=False)
    return path, {"wall_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu,
                  "load": os.getloadavg()[0]}


# ------------------------------------------------------------------------------- evaluation
def read_pair(row: pd.Series, cfg: Mapping[str, Any]) -> tuple[Events, Events, Windows]:
    """A manifest row's noisy and clean streams and the noisy stream's windows (the config's)."""
    win = cfg.get("windows") or {}
    raw = read_events(Path(row["root"]) / row["noisy"], sort=True)
    label = read_events(Path(row["root"]) / row["clean"], width=raw.width, height=raw.height, sort=True)
    return raw, label, windows_for(raw, win.get("segment_us", 20000), win.get("grid", "relative"))


def score_pairs(manifest: pd.DataFrame, model_path: Path, cfg: Mapping[str, Any]) -> pd.DataFrame:
    """Per-window metrics of every method on every pair of ``manifest`` (columns group, file, method).

    Method ``perfect`` is the clean stream itself: what no method can beat (F1 1, distances 0).
    """
    model, meta = load_model(model_path)
    spec = VoxelSpec(**meta["voxel"])
    decode_kw = inference_settings(cfg)
    mode = decode_kw.pop("mode")
    frames = []
    for _, row in manifest.iterrows():
        raw, label, windows = read_pair(row, cfg)
        seg = Segments(windows, raw, label)
        pred = predict_voxels(model, encode_windows(raw, windows, spec), mode=mode, train_size=meta.get("train_size"),
                              device="cpu")
        estimates = method_estimates(seg, {"model": pred}, baselines=BASELINES, decodes=DECODES, spec=spec, **decode_kw)
        for method, est in {**estimates, "perfect": label}.items():
            df = file_metrics(est, label, windows)
            df.insert(0, "method", method)
            df.insert(0, "file", row["name"])
            df.insert(0, "group", row.get("group", row["split"]))
            frames.append(df)
    return pd.concat(frames, ignore_index=True)


def missing_events(kept: Events, clean: Events, windows: Windows, bins: int, per: str, seed: int) -> Events:
    """One event for each unit where the clean stream has events and ``kept`` has none: the fewest
    additions that make every unit of the F1 scores' grids positive where the clean one is.

    ``per="cell"``: each (window, polarity, time bin, pixel), R-F1's grid; ``per="pixel"``: each
    (window, polarity, pixel), T-F1's grid, in the clean stream's busiest bin there. The ``sample``
    decoder places them, a time drawn uniformly in the bin: a decoder that adds events per cell knows
    no more than the bin.
    """
    spec = VoxelSpec(bins, 2, "nearest")
    vk, vc = encode_windows(kept, windows, spec), encode_windows(clean, windows, spec)
    if per == "cell":
        one_each = (vc > 0) & (vk == 0)
    elif per == "pixel":
        missing = (vc.sum(axis=2) > 0) & (vk.sum(axis=2) == 0)
        one_each = (np.arange(bins)[:, None, None] == vc.argmax(axis=2)[:, :, None]) & missing[:, :, None]
    else:
        raise ValueError(f"per must be 'cell' or 'pixel', got {per!r}")
    return decode_windows(one_each.astype(np.float32), windows, "sample", spec=spec, seed=seed)


def decoder_bounds(manifest: pd.DataFrame, cfg: Mapping[str, Any]) -> pd.DataFrame:
    """Per-window metrics of the ``mask`` decoder fed the clean voxels (nearest and bilinear bins), alone
    and with ``missing_events`` added per pixel or per cell; ``raw`` for reference."""
    spec, kw = voxel_spec(cfg), inference_settings(cfg)
    frames = []
    for _, row in manifest.iterrows():
        raw, label, windows = read_pair(row, cfg)
        estimates = {"raw": raw}
        for assignment in ("nearest", "bilinear"):
            s = VoxelSpec(spec.bins, spec.channels, assignment)
            kept = decode_windows(encode_windows(label, windows, s), windows, "mask", events_in=raw, spec=s,
                                  seed=kw["seed"], keep_threshold=kw["keep_threshold"])
            estimates[f"mask ({assignment})"] = kept
            for per in ("pixel", "cell"):
                added = missing_events(kept, label, windows, spec.bins, per, kw["seed"])
                estimates[f"mask ({assignment}) + {per} adds"] = Events.concatenate([kept, added]).sorted()
        for method, est in estimates.items():
            df = file_metrics(est, label, windows)
            df.insert(0, "method", method)
            df.insert(0, "file", row["name"])
            frames.append(df)
    return pd.concat(frames, ignore_index=True)


def summarize(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over windows per method, plus the relative change of the mean vs raw (%)."""
    g = scores.groupby("method", sort=False)[BENCHMARK_COLUMNS]
    mean, std = g.mean(), g.std()
    rel = (mean / mean.loc["raw"] - 1) * 100
    return pd.concat({"mean": mean, "std": std, "rel": rel}, axis=1)


def _better(a: float, b: float, col: str) -> bool:
    return a < b if metric_direction(col) == "lower" else a > b


def best_filter(summary: pd.DataFrame) -> dict[str, str]:
    """Per metric, the classical filter with the best mean."""
    out = {}
    for col in BENCHMARK_COLUMNS:
        vals = summary["mean"][col].loc[list(FILTERS)]
        out[col] = str(vals.idxmin() if metric_direction(col) == "lower" else vals.idxmax())
    return out


def wins(summary: pd.DataFrame, method: str) -> dict[str, bool]:
    """Per metric: is ``method`` better than raw and every classical filter?"""
    m = summary["mean"]
    return {c: all(_better(m.at[method, c], m.at[o, c], c) for o in ("raw",) + FILTERS) for c in BENCHMARK_COLUMNS}


def table(summary: pd.DataFrame, methods: Sequence[str]) -> str:
    header = ["method"] + [f"{METRIC_LABELS[c]} {'↓' if metric_direction(c) == 'lower' else '↑'}"
                           for c in BENCHMARK_COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in methods:
        cells = [m]
        for c in BENCHMARK_COLUMNS:
            mean, std, rel = (summary[k].at[m, c] for k in ("mean", "std", "rel"))
            text = f"{mean:.4f} ± {std:.4f}"
            cells.append(text if m == "raw" else f"{text} ({rel:+.0f}%)")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compact(summary: pd.DataFrame, model: str) -> list[str]:
    """Markdown rows: raw, the best filter per metric, the model, the perfect output; whether the model wins."""
    bf = best_filter(summary)
    m, rel = summary["mean"], summary["rel"]
    rows = {"raw": [f"{m.at['raw', c]:.4f}" for c in BENCHMARK_COLUMNS],
            "best filter": [f"{m.at[bf[c], c]:.4f} ({bf[c]})" for c in BENCHMARK_COLUMNS]}
    for name in (model, "perfect"):
        rows[name] = [f"{m.at[name, c]:.4f} ({rel.at[name, c]:+.0f}%)" for c in BENCHMARK_COLUMNS]
    rows["wins"] = ["yes" if w else "**no**" for w in wins(summary, model).values()]
    return [f"| {name} | {' | '.join(r)} |" for name, r in rows.items()]


# ------------------------------------------------------------------------------------- real
def real_recordings(model_path: Path, real_dir: Path, out_dir: Path, rel_to: Path, **decode_kw: Any
                    ) -> list[dict[str, Any]]:
    """Share of events each method keeps on flare-free real recordings, and a before/after picture."""
    rows = []
    for name in REAL_FILES:
        ev = read_events(real_dir / name, sort=True)
        out = denoise_events(ev, model_path, **decode_kw)
        row = {"file": name, "events": len(ev), "model": len(out) / len(ev)}
        for f in FILTERS:
            row[f] = len(apply_filter(f, ev)) / len(ev)
        png = out_dir / f"real_{Path(name).stem}.png"
        plot_events([ev, out], ["input (no flare)", "model (mask)"], png, windows=True, max_windows=2, dpi=60)
        row["png"] = png.relative_to(rel_to).as_posix()
        rows.append(row)
    return rows


def example_picture(row: pd.Series, model_path: Path, png: Path, **decode_kw: Any) -> None:
    """noisy | model | clean of one synthetic pair, two windows."""
    noisy = read_events(Path(row["root"]) / row["noisy"], sort=True)
    clean = read_events(Path(row["root"]) / row["clean"], width=noisy.width, height=noisy.height, sort=True)
    plot_events([noisy, denoise_events(noisy, model_path, **decode_kw), clean],
                ["noisy input", "model (mask)", "clean target"], png, windows=True, max_windows=2, dpi=60)


# ----------------------------------------------------------------------------------- report
def bounds_table(summary: pd.DataFrame) -> list[str]:
    """Markdown rows: E-DeflareNet's margins, then each bound's mean and change vs raw."""
    target = " | ".join(f"{PAPER_MARGIN[c]:+d}%" for c in BENCHMARK_COLUMNS)
    lines = [f"| decoder fed the clean voxels | {' | '.join(METRIC_LABELS[c] for c in BENCHMARK_COLUMNS)} |",
             "|---|" + "---|" * len(BENCHMARK_COLUMNS), f"| E-DeflareNet's margins (the target) | {target} |"]
    for m in summary.index:
        if m != "raw":
            lines.append(f"| {m} | " + " | ".join(f"{summary['mean'].at[m, c]:.4f} ({summary['rel'].at[m, c]:+.1f}%)"
                                                 for c in BENCHMARK_COLUMNS) + " |")
    return lines


def write_report(path: Path, *, cfg: Mapping[str, Any], model_path: Path, train_s: dict[str, float] | None,
                 threads: int, test: pd.DataFrame, merged: pd.DataFrame, held: pd.DataFrame, real: list[dict[str, Any]],
                 pictures: list[str], bounds: pd.DataFrame) -> None:
    meta = load_model(model_path)[1]
    methods = list(dict.fromkeys(test["method"]))
    st, sm, sh = summarize(test), summarize(merged), summarize(held)
    head = " | ".join(METRIC_LABELS[c] for c in BENCHMARK_COLUMNS)
    sep = "|---|" + "---|" * len(BENCHMARK_COLUMNS)
    L = [
        "# Denoising quality of the default configuration",
        "",
        "Produced by `.venv/bin/python benchmarks/quality.py` (see its docstring); every number below was",
        "measured by that run. Metrics: E-Deflare's suite per 20 ms window (`evdenoise.metrics`), mean ± std",
        "over all windows; in brackets the relative change of the mean vs the raw input.",
        "",
        "## Setup",
        "",
        f"- voxel: `{json.dumps(meta['voxel'])}`; model: `{json.dumps(meta['model'])}`",
        f"- train: steps {meta['train']['steps']}, batch {meta['train']['batch_size']}, patch "
        f"{meta['train']['patch']}, loss {meta['train']['loss']}, empty_weight {meta['train']['empty_weight']}, "
        f"changed_weight {meta['train']['changed_weight']}, changed_crop_p {meta['train']['changed_crop_p']}; "
        f"best validation at step {meta.get('step')} of {meta.get('last_step')}",
        f"- decode (the model's default): `{meta.get('decode')}`, "
        "keep_threshold {keep_threshold}; predict mode `{mode}`".format(**inference_settings(cfg)),
        ("- training time: `train()` took {:.0f} s wall and **{:.0f} s of CPU time** on {} threads; the machine "
         "was shared with other jobs (1-min load average {:.1f} at the end on 2 cores), so the CPU time is the "
         "better estimate of the wall time on an idle 2-core machine (an upper bound when both threads "
         "work in parallel)".format(train_s["wall_s"], train_s["cpu_s"], threads, train_s["load"])
         if train_s is not None
         else "- training time: model loaded, not trained in this run; training seconds in its history: "
              f"{meta.get('history', [{}])[-1].get('seconds', 'n/a')}"),
        f"- training data: {cfg['data']['synthetic']['counts']} synthetic files, "
        f"{cfg['data']['synthetic']['width']}x{cfg['data']['synthetic']['height']}, "
        f"{cfg['data']['synthetic']['duration_us'] // 1000} ms, seed {cfg['data']['synthetic']['seed']}",
        "",
        "## Summary: raw, best classical filter, model (mask decoder)",
        "",
        "Best filter = the best of baf / refractory / stcf for that metric. 'perfect' = the clean stream",
        "itself, the largest margin any method can reach on that data. 'wins' = the model beats raw and",
        "every classical filter on that metric.",
        "",
    ]
    for title, s in (("Synthetic test split", st),
                     ("Synthetic test split composed by a plain merge (same files, `merge_prob=1`)", sm),
                     ("Held-out set (all groups)", sh)):
        L += [f"### {title}", "", f"| row | {head} |", sep, *compact(s, "model_mask"), ""]
    L += ["E-DeflareNet's margins vs raw on E-Deflare, for reference: "
          + ", ".join(f"{METRIC_LABELS[c]} {v:+d}%" for c, v in PAPER_MARGIN.items()) + ".", ""]
    L += ["## (a) Synthetic test split, every method", "",
          "The default generator runs scene and flare through one sensor: flare light also suppresses and",
          "delays scene events, which no method that keeps input events can restore (see 'perfect').", "",
          table(st, methods), "",
          "The same test files composed by a plain merge (clean stream plus separately simulated flare",
          "events, so noisy holds every clean event; `merge_prob=1`):", "", table(sm, methods), ""]
    L += ["### What a perfect network could reach through a decoder that keeps or adds events", "",
          "The `mask` decoder fed the *clean* voxels (keep threshold as configured), alone and with one event",
          "added (time drawn in its bin) at every pixel and polarity that has clean events in the window but no",
          "kept event (`+ pixel adds`, in the clean stream's busiest bin there: T-F1's grid) or in every cell",
          "with clean events and no kept event (`+ cell adds`: R-F1's grid). Flare light suppresses and delays",
          "scene events, so the input lacks some clean cells. Test split, change vs raw (`decoder_bounds`):", "",
          *bounds_table(summarize(bounds)), ""]
    L += ["## (b) Held-out generalisation set", "",
          "Built by `heldout_data()` with `evdenoise.synth.synthesize`, each group from its own seed "
          "(training used seed 0), 100 ms per file:", ""]
    for group, (overrides, n, seed, real_bg) in HELDOUT.items():
        what = ("real sensor recordings from `/work/shared/data/real/` as backgrounds (their own resolution, "
                "flips), default flare" if real_bg else "")
        ov = ", ".join(f"`{k}={list(v) if isinstance(v, tuple) else v}`" for k, v in overrides.items())
        L.append(f"- `{group}`: {n} file(s), seed {seed}; {what}{'; ' if what else ''}SynthConfig {ov}")
    L += ["", "All groups pooled:", "", table(sh, methods), "", "Per group (mask decoder; rows raw / best filter "
          "/ model / perfect / wins):", ""]
    for group in HELDOUT:
        sg = summarize(held[held["group"] == group])
        L += [f"**{group}** ({held[held['group'] == group]['file'].nunique()} files)", "",
              f"| row | {head} |", sep, *compact(sg, "model_mask"), ""]
    L += ["## (c) Real recordings without flare", "",
          "Share of the input events each method keeps (the model should keep the scene; there is no flare).",
          "", "| file | events | model (mask) | " + " | ".join(FILTERS) + " |", "|---|---|---|" + "---|" * len(FILTERS)]
    for r in real:
        L.append(f"| {r['file']} | {r['events']:,} | {r['model']:.1%} | "
                 + " | ".join(f"{r[f]:.1%}" for f in FILTERS) + " |")
    L.append("")
    for r in real:
        L += [f"![{r['file']}]({r['png']})", ""]
    L += ["## Examples (noisy | model | clean)", ""] + [f"![example]({p})\n" for p in pictures]
    path.write_text("\n".join(L) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    ap.add_argument("--work", type=Path, default=ROOT / "results" / "quality")
    ap.add_argument("--model", type=Path, default=None, help="use this model file instead of training")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--real", type=Path, default=REAL_DIR)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "quality.md")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    manifest, vox = training_data(cfg, args.work)
    model_path, train_s = get_model(cfg, vox, args.work, args.threads, args.model)
    log.info("model %s (train %s s)", model_path, train_s)
    test = score_pairs(manifest[manifest["split"] == "test"], model_path, cfg)
    bounds = decoder_bounds(manifest[manifest["split"] == "test"], cfg)
    bounds.to_csv(args.work / "test_bounds.csv", index=False)
    merged = score_pairs(merged_test_data(cfg, args.work), model_path, cfg)
    held_manifest = heldout_data(args.work, args.real)
    held = score_pairs(held_manifest, model_path, cfg)
    test.to_csv(args.work / "test_scores.csv", index=False)
    merged.to_csv(args.work / "test_merged_scores.csv", index=False)
    held.to_csv(args.work / "heldout_scores.csv", index=False)
    pics = args.out.parent / "quality"
    pics.mkdir(parents=True, exist_ok=True)
    decode_kw = inference_settings(cfg)
    real = real_recordings(model_path, args.real, pics, args.out.parent, **decode_kw)
    test_rows = manifest[manifest["split"] == "test"]
    # the test pair with the most flare events (noisy minus clean) shows the most
    examples = [(test_rows.loc[(test_rows["n_noisy"] - test_rows["n_clean"]).idxmax()], "example_test.png"),
                (held_manifest[held_manifest["group"] == "real_background"].iloc[0], "example_real_background.png"),
                (held_manifest[held_manifest["group"] == "flare_outside_defaults"].iloc[0], "example_flare_shapes.png")]
    for row, name in examples:
        example_picture(row, model_path, pics / name, **decode_kw)
    write_report(args.out, cfg=cfg, model_path=model_path, train_s=train_s, threads=args.threads, test=test,
                 merged=merged, held=held, real=real, pictures=[f"quality/{n}" for _, n in examples], bounds=bounds)
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
