"""A model's quality beyond its test split (``snakemake quality``, config/quality.yaml).

The workflow scores every set of pairs with its own ``evaluate`` rule; this module turns those per-window
tables into the page ``benchmarks/quality.md``: each metric against the raw input and the best classical
filter, what the ``mask`` decoder reaches fed the *clean* voxels (the bound a perfect network meets through
it), and the share of events kept on flare-free real recordings. ``benchmarks/quality_pretrained.py`` reads
its tables through the same functions.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from string import Template
from typing import Any

import numpy as np
import pandas as pd

from .artifacts import Segments, read_segments
from .decode import decode_windows
from .events import Events, atomic_path
from .metrics import BENCHMARK_COLUMNS, METRIC_LABELS, methods_metrics, metric_direction
from .voxel import VoxelSpec, encode_windows
from .windows import Windows
from .defaults import DECODE_SEED, GRID, KEEP_THRESHOLD, SEGMENT_US

PathLike = str | os.PathLike
FILTERS = ("baf", "refractory", "stcf")
# E-DeflareNet's relative change vs raw on E-Deflare: the margins issue 19 names as targets.
PAPER_MARGIN = {"chamfer": -67, "gaussian": -49, "mse": -85, "pmse2": -87, "pmse4": -87,
                "r_f1": 38, "t_f1": 21, "tp_f1": 12}


def relative(summary: pd.DataFrame, reference: str = "raw") -> pd.DataFrame:
    """Each method's change of each metric's mean against ``reference`` (%), from :func:`evaluate.summarize`."""
    means = summary[[f"{c}_mean" for c in BENCHMARK_COLUMNS]]
    means.columns = list(BENCHMARK_COLUMNS)
    return (means / means.loc[reference] - 1) * 100


def _better(a: float, b: float, col: str) -> bool:
    return a < b if metric_direction(col) == "lower" else a > b


def best_filter(summary: pd.DataFrame, filters: Sequence[str] = FILTERS) -> dict[str, str]:
    """Per metric, the classical filter with the best mean."""
    out = {}
    for col in BENCHMARK_COLUMNS:
        vals = summary[f"{col}_mean"].loc[list(filters)]
        out[col] = str(vals.idxmin() if metric_direction(col) == "lower" else vals.idxmax())
    return out


def wins(summary: pd.DataFrame, method: str, filters: Sequence[str] = FILTERS) -> dict[str, bool]:
    """Per metric: is ``method`` better than raw and every classical filter?"""
    m = summary
    return {c: all(_better(m.at[method, f"{c}_mean"], m.at[o, f"{c}_mean"], c) for o in ("raw", *filters))
            for c in BENCHMARK_COLUMNS}


def compact_rows(summary: pd.DataFrame, model: str, filters: Sequence[str] = FILTERS) -> list[str]:
    """Markdown rows: raw, the best filter per metric, the model (and ``perfect`` where scored: the clean
    stream itself), and whether the model beats raw and every filter."""
    bf, rel = best_filter(summary, filters), relative(summary)

    def mean(method: str, c: str) -> float:
        return float(summary.at[method, f"{c}_mean"])

    rows = {"raw": [f"{mean('raw', c):.4f}" for c in BENCHMARK_COLUMNS],
            "best filter": [f"{mean(bf[c], c):.4f} ({bf[c]})" for c in BENCHMARK_COLUMNS]}
    for name in (model, "perfect"):
        if name in summary.index:
            rows[name] = [f"{mean(name, c):.4f} ({rel.at[name, c]:+.0f}%)" for c in BENCHMARK_COLUMNS]
    rows["wins"] = ["yes" if w else "**no**" for w in wins(summary, model, filters).values()]
    return [f"| {name} | {' | '.join(r)} |" for name, r in rows.items()]


def compact_table(summary: pd.DataFrame, model: str, filters: Sequence[str] = FILTERS) -> str:
    head = " | ".join(METRIC_LABELS[c] for c in BENCHMARK_COLUMNS)
    return "\n".join([f"| row | {head} |", "|---|" + "---|" * len(BENCHMARK_COLUMNS),
                      *compact_rows(summary, model, filters)])


def method_table(summary: pd.DataFrame) -> str:
    """Every method: mean ± std per metric and, but for raw, the change against raw."""
    rel = relative(summary)
    header = ["method"] + [f"{METRIC_LABELS[c]} {'↓' if metric_direction(c) == 'lower' else '↑'}"
                           for c in BENCHMARK_COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in summary.index:
        cells = [str(m)]
        for c in BENCHMARK_COLUMNS:
            text = f"{summary.at[m, f'{c}_mean']:.4f} ± {summary.at[m, f'{c}_std']:.4f}"
            cells.append(text if m == "raw" else f"{text} ({rel.at[m, c]:+.0f}%)")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def margin_table(summary: pd.DataFrame) -> str:
    """E-DeflareNet's margins, then each method's mean and change against raw (the decoder bounds)."""
    rel = relative(summary)
    target = " | ".join(f"{PAPER_MARGIN[c]:+d}%" for c in BENCHMARK_COLUMNS)
    lines = [f"| decoder fed the clean voxels | {' | '.join(METRIC_LABELS[c] for c in BENCHMARK_COLUMNS)} |",
             "|---|" + "---|" * len(BENCHMARK_COLUMNS), f"| E-DeflareNet's margins (the target) | {target} |"]
    lines += [f"| {m} | " + " | ".join(f"{summary.at[m, f'{c}_mean']:.4f} ({rel.at[m, c]:+.1f}%)"
                                       for c in BENCHMARK_COLUMNS) + " |" for m in summary.index if m != "raw"]
    return "\n".join(lines)


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


def bound_estimates(seg: Segments, spec: VoxelSpec, *, seed: int = DECODE_SEED,
                    keep_threshold: float = KEEP_THRESHOLD) -> dict[str, Events]:
    """The ``mask`` decoder fed the clean voxels (nearest and bilinear bins), alone and with
    :func:`missing_events` added per pixel or per cell; ``raw`` for reference."""
    if seg.label is None:
        raise ValueError("decoder bounds need the clean events")
    out = {"raw": seg.raw}
    for assignment in ("nearest", "bilinear"):
        s = VoxelSpec(spec.bins, spec.channels, assignment)
        kept = decode_windows(encode_windows(seg.label, seg.windows, s), seg.windows, "mask", events_in=seg.raw,
                              spec=s, seed=seed, keep_threshold=keep_threshold)
        out[f"mask ({assignment})"] = kept
        for per in ("pixel", "cell"):
            added = missing_events(kept, seg.label, seg.windows, spec.bins, per, seed)
            out[f"mask ({assignment}) + {per} adds"] = Events.concatenate([kept, added]).sorted()
    return out


def bounds_sample(segments: PathLike, out: PathLike, *, sample: str, spec: VoxelSpec, seed: int = DECODE_SEED,
                  keep_threshold: float = KEEP_THRESHOLD) -> pd.DataFrame:
    """Per-window metrics of :func:`bound_estimates` on one segments file, written as CSV."""
    from .evaluate import write_csv

    seg = read_segments(segments)
    if seg.label is None:
        raise ValueError(f"{segments}: no clean events, so no decoder bound")
    estimates = bound_estimates(seg, spec, seed=seed, keep_threshold=keep_threshold)
    table = methods_metrics(estimates, seg.label, seg.windows, sample)
    write_csv(table, out)
    return table


def kept_shares(given: Events, outputs: Mapping[str, Events]) -> dict[str, float]:
    """Share of the input's events each output keeps (flare-free recordings: all of them is right)."""
    return {name: len(out) / max(len(given), 1) for name, out in outputs.items()}


def write_page(template: PathLike, out: PathLike, fields: Mapping[str, Any]) -> None:
    """``template`` (``$name`` placeholders, prose around them) filled with ``fields``, written atomically;
    a placeholder without a field is an error, not a blank."""
    text = Template(Path(template).read_text()).substitute(fields)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(text)


def real_sample(recording: PathLike, denoised: PathLike, out: PathLike, png: PathLike, *, sample: str,
                filters: Sequence[str] = FILTERS) -> pd.DataFrame:
    """Share of a flare-free recording's events the model and each classical filter keep (one CSV row),
    and the picture input | model."""
    from .evaluate import write_csv
    from .events import read_events
    from .filters import apply_filter
    from .plot import plot_events

    given, model = read_events(recording, sort=True), read_events(denoised)
    outputs = {"model": model, **{f: apply_filter(f, given) for f in filters}}
    row = pd.DataFrame([{"sample": sample, "file": Path(recording).name, "events": len(given), "png": str(png),
                         **kept_shares(given, outputs)}])
    plot_events([given, model], ["input (no flare)", "model"], png, windows=True, max_windows=2, dpi=60)
    write_csv(row, out)
    return row


def _set_line(name: str, s: Mapping[str, Any]) -> str:
    keys = {k: s[k] for k in ("width", "height", "split", "params", "backgrounds") if k in s}
    over = ", ".join(f"`{k}={v}`" for k, v in keys.items())
    return f"- `{name}`: {s['count']} file(s), seed {s.get('seed', 'of the test split')}; {s['about']}" + (
        f" ({over})" if over else "")


def _summary_section(scores: Mapping[str, pd.DataFrame], sets: Mapping[str, Mapping[str, Any]], model: str) -> str:
    from .evaluate import summarize

    parts = [("Test split", scores["test"])]
    parts += [(f"Set `{n}` ({s['about']})", scores[n]) for n, s in sets.items() if s["role"] == "test"]
    held = [scores[n] for n, s in sets.items() if s["role"] == "heldout"]
    if held:
        parts.append(("Held-out sets, pooled", pd.concat(held, ignore_index=True)))
    return "\n\n".join(f"### {title}\n\n{compact_table(summarize(df), model)}" for title, df in parts)


def quality_fields(scores: Mapping[str, pd.DataFrame], sets: Mapping[str, Mapping[str, Any]], *,
                   bounds: pd.DataFrame, real: pd.DataFrame, model: str, setup: Sequence[str],
                   examples: Sequence[str], segment_us: int) -> dict[str, str]:
    """The placeholders of ``report/quality.md``: ``scores`` maps ``test`` and each set of ``sets`` (the
    config's) to its per-window metrics; ``real`` holds a row per flare-free recording (:func:`real_sample`);
    ``examples`` are the pictures' paths relative to the page."""
    from .evaluate import summarize

    heldout = [n for n, s in sets.items() if s["role"] == "heldout"]
    pooled = pd.concat([scores[n] for n in heldout], ignore_index=True) if heldout else None
    test_methods = [method_table(summarize(scores["test"]))]
    test_methods += [f"Set `{n}`: {s['about']}\n\n{method_table(summarize(scores[n]))}"
                     for n, s in sets.items() if s["role"] == "test"]
    filters = [c for c in FILTERS if c in real.columns]
    real_rows = ["| file | events | model | " + " | ".join(filters) + " |", "|---|---|---|" + "---|" * len(filters)]
    real_rows += [f"| {r.file} | {r.events:,} | {r.model:.1%} | " + " | ".join(f"{getattr(r, f):.1%}" for f in filters)
                  + " |" for r in real.itertuples()]
    return {
        "segment_ms": f"{segment_us / 1000:g}", "setup": "\n".join(f"- {line}" for line in setup), "model": model,
        "filters": " / ".join(FILTERS), "summary": _summary_section(scores, sets, model),
        "paper_margins": ", ".join(f"{METRIC_LABELS[c]} {v:+d}%" for c, v in PAPER_MARGIN.items()),
        "test_methods": "\n\n".join(test_methods), "bounds": margin_table(summarize(bounds)),
        "heldout_sets": "\n".join(_set_line(n, sets[n]) for n in heldout),
        "heldout_methods": method_table(summarize(pooled)) if pooled is not None else "(no held-out set)",
        "heldout_per_set": "\n\n".join(f"**{n}** ({scores[n]['file'].nunique()} files)\n\n"
                                       f"{compact_table(summarize(scores[n]), model)}" for n in heldout),
        "real_table": "\n".join(real_rows),
        "real_pictures": "\n\n".join(f"![{r.file}]({r.picture})" for r in real.itertuples()),
        "examples": "\n\n".join(f"![example]({p})" for p in examples),
    }


def example_picture(noisy: PathLike, denoised: PathLike, clean: PathLike, png: PathLike) -> None:
    """noisy | model | clean of one pair, two windows."""
    from .events import read_events
    from .plot import plot_events

    n = read_events(noisy, sort=True)
    plot_events([n, read_events(denoised), read_events(clean, width=n.width, height=n.height, sort=True)],
                ["noisy input", "model", "clean target"], png, windows=True, max_windows=2, dpi=60)


def flare_heaviest(pairs: Mapping[str, Sequence[PathLike]]) -> str:
    """The pair (name -> (noisy, clean)) with the most flare events (noisy minus clean): it shows the most."""
    from .events import read_events

    return max(pairs, key=lambda s: len(read_events(pairs[s][0])) - len(read_events(pairs[s][1])))


def setup_lines(model_path: PathLike, train_benchmark: PathLike | None, *, predict_mode: str,
                keep_threshold: float) -> list[str]:
    """What ran: the model file's voxel, model and training settings, the decode settings and, from the
    train job's benchmark (None: a shipped model, not trained here), its wall and CPU seconds."""
    import json

    from .checkpoint import load_checkpoint

    meta = load_checkpoint(model_path)["meta"]
    tr = meta["train"]
    lines = [f"voxel: `{json.dumps(meta['voxel'])}`; model: `{json.dumps(meta['model'])}`",
             f"train: steps {tr['steps']}, batch {tr['batch_size']}, patch {tr['patch']}, loss {tr['loss']}, "
             f"{len(meta['train_files'])} training and {len(meta['val_files'])} validation files; best validation "
             f"at step {meta.get('step')}",
             f"decode: `{meta.get('decode')}`, keep_threshold {keep_threshold}; predict mode `{predict_mode}`"]
    if train_benchmark is None:
        return [*lines, f"model: `{model_path}` (shipped, not trained in this run: its card says how it was made)"]
    bench = pd.read_csv(train_benchmark, sep="\t").iloc[0]
    return [*lines, f"training time: {bench['s']:.0f} s wall, {bench['cpu_time']:.0f} s of CPU time "
                    f"with {tr.get('threads') or 'all'} thread(s) (the train job's benchmark)"]


def read_pair(noisy: PathLike, clean: PathLike, *, segment_us: int = SEGMENT_US, grid: str = GRID
              ) -> tuple[Events, Events, Windows]:
    """A pair's noisy and clean streams (clean at the noisy file's size) and the noisy stream's windows."""
    from .events import read_events
    from .windows import windows_for

    raw = read_events(noisy, sort=True)
    label = read_events(clean, width=raw.width, height=raw.height, sort=True)
    return raw, label, windows_for(raw, segment_us, grid)
