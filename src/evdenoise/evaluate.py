"""Evaluate predicted event files against ground truth: per-window tables, summaries,
a markdown results table and a comparison figure.

File pairing (``pair_files``): a prediction ``<name>.h5`` matches the ground-truth file of
the same name; failing that, a prediction ``<stem><noisy suffix>.h5`` (default
``_bg_flare``) matches ``<stem><clean suffix>.h5`` (default ``_bg_light``). Every
prediction must match, and every ground-truth file must be matched, or ``ValueError``
lists the strays - a method that silently skips files would be averaged over an easier set.
"""
from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .defaults import BINS, GRID, PAIRING, SEGMENT_US
from .events import atomic_path, read_events
from .metrics import BENCHMARK_COLUMNS, METRIC_COLUMNS, METRIC_LABELS, TARGET_VALUE, file_metrics, metric_direction
from .windows import Windows, windows_for

PathLike = str | os.PathLike
ARROWS = {"higher": "↑", "lower": "↓", "target": "→1"}


def evaluate_pair(est_path: PathLike, gt_path: PathLike, windows: Windows | None = None,
                  bins: int = BINS) -> pd.DataFrame:
    """Per-window metrics (see ``metrics.file_metrics``) of one estimate file against its truth."""
    return file_metrics(read_events(est_path), read_events(gt_path), windows, bins)


def _h5_files(folder: PathLike, role: str) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: {role} folder does not exist")
    return sorted(p for p in folder.glob("*.h5") if p.is_file())


def _swapped(name: str, swap: tuple[str, str]) -> str | None:
    """``<stem>{swap[0]}.h5`` -> ``<stem>{swap[1]}.h5``; None when ``name`` lacks the suffix."""
    stem = Path(name).stem
    return f"{stem[: -len(swap[0])]}{swap[1]}.h5" if stem.endswith(swap[0]) else None


def _first_file(folder: PathLike, names: Sequence[str | None]) -> Path | None:
    return next((Path(folder) / n for n in names if n is not None and (Path(folder) / n).is_file()), None)


def pair_files(pred_dir: PathLike, gt_dir: PathLike,
               pairing: tuple[str, str] = PAIRING) -> list[tuple[Path, Path]]:
    """(prediction, ground truth) pairs, sorted by prediction name; see the module docstring."""
    preds, gts = _h5_files(pred_dir, "prediction"), _h5_files(gt_dir, "ground-truth")
    if not preds:
        raise ValueError(f"{pred_dir}: no .h5 prediction files")
    pairs = [(p, _first_file(gt_dir, [p.name, _swapped(p.name, pairing)])) for p in preds]
    unmatched = [p.name for p, g in pairs if g is None]
    if unmatched:
        raise ValueError(f"{pred_dir}: no ground truth in {gt_dir} for {', '.join(unmatched)} "
                         f"(expected the same name or '<stem>{pairing[1]}.h5' for '<stem>{pairing[0]}.h5')")
    used = {g for _, g in pairs}
    unused = [g.name for g in gts if g not in used]
    if unused:
        raise ValueError(f"{gt_dir}: ground-truth file(s) without a prediction in {pred_dir}: {', '.join(unused)}")
    return [(p, g) for p, g in pairs if g is not None]


def evaluate_dirs(pred_dir: PathLike, gt_dir: PathLike, pairing: tuple[str, str] = PAIRING,
                  input_dir: PathLike | None = None, segment_us: int = SEGMENT_US, grid: str = GRID,
                  bins: int = BINS) -> pd.DataFrame:
    """Per-window metrics of every paired file, with a ``file`` column (the truth's file name).

    Windows come from the noisy input file in ``input_dir`` when given (so every method is
    scored on the same windows): the file named like the prediction, else the truth's
    ``<stem><clean suffix>.h5`` renamed ``<stem><noisy suffix>.h5``. Without ``input_dir``
    they come from each ground-truth file.
    """
    frames = []
    for pred, gt in pair_files(pred_dir, gt_dir, pairing):
        est, truth = read_events(pred), read_events(gt)
        if input_dir is not None:
            # the noisy input: named like the prediction, or like the truth with the suffix swapped back
            source = _first_file(input_dir, [pred.name, _swapped(gt.name, pairing[::-1])])
            if source is None:
                raise ValueError(f"{input_dir}: no input file for prediction {pred.name}")
            reference = read_events(source)
        else:
            reference = truth if len(truth) else est
        frame = file_metrics(est, truth, windows_for(reference, segment_us, grid), bins)
        frame.insert(0, "file", gt.name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def evaluate_methods(pred_dirs: Mapping[str, PathLike], gt_dir: PathLike, **kwargs: object) -> pd.DataFrame:
    """``evaluate_dirs`` for several methods (name -> prediction folder), with a ``method`` column."""
    frames = []
    for method, folder in pred_dirs.items():
        frame = evaluate_dirs(folder, gt_dir, **kwargs)  # type: ignore[arg-type]
        frame.insert(0, "method", method)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def write_csv(frame: pd.DataFrame, path: PathLike) -> None:
    """Atomically write a table as CSV (no index column)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def summarize(per_file: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean and standard deviation (ddof=1) over all windows of all files, per method.

    Returns one row per method (index ``method``, first-appearance order) with ``windows``,
    ``files`` (when the input has a ``file`` column) and ``<metric>_mean`` / ``<metric>_std``.
    """
    if "method" not in per_file.columns:
        raise ValueError("summarize needs a 'method' column")
    columns = [c for c in (columns or METRIC_COLUMNS) if c in per_file.columns]
    if not columns:
        raise ValueError("summarize: no metric columns in the table")
    groups = per_file.groupby("method", sort=False)
    out = pd.DataFrame({"windows": groups.size()})
    if "file" in per_file.columns:
        out["files"] = groups["file"].nunique()
    for col in columns:
        out[f"{col}_mean"] = groups[col].mean()
        out[f"{col}_std"] = groups[col].std()
    return out


def _metrics_in(summary: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    present = [c for c in columns if f"{c}_mean" in summary.columns]
    if not present:
        raise ValueError("summary has none of the requested metric columns")
    return present


def _best(values: pd.Series, column: str) -> pd.Series:
    """Mask of the best method(s) for a metric; ties are all best."""
    direction = metric_direction(column)
    if direction == "target":
        values = -(values - TARGET_VALUE[column]).abs()
    elif direction == "lower":
        values = -values
    return values == values.max()


def markdown_table(summary: pd.DataFrame, columns: Sequence[str] = BENCHMARK_COLUMNS, digits: int = 4) -> str:
    """Methods as rows, metrics as columns, ``mean ± std`` cells, best per column in bold."""
    columns = _metrics_in(summary, columns)
    header = ["Method"] + [f"{METRIC_LABELS.get(c, c)} {ARROWS[metric_direction(c)]}" for c in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    best = {c: _best(summary[f"{c}_mean"], c) for c in columns}
    for method in summary.index:
        cells = [str(method)]
        for c in columns:
            mean, std = summary.at[method, f"{c}_mean"], summary.at[method, f"{c}_std"]
            text = f"{mean:.{digits}f}" + ("" if pd.isna(std) else f" ± {std:.{digits}f}")
            cells.append(f"**{text}**" if best[c][method] else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def headline_table(summary: pd.DataFrame, columns: Sequence[str] = BENCHMARK_COLUMNS,
                   reference: str = "raw") -> pd.DataFrame:
    """The report's landing-page table: one row per method, each metric's mean and, where ``reference`` (the
    raw input) is a method, its relative change against it (``-67 %``: two thirds lower than the input)."""
    columns = _metrics_in(summary, columns)
    ref = summary.loc[reference] if reference in summary.index else None
    rows = {}
    for method in summary.index:
        cells = {}
        for c in columns:
            mean = float(summary.at[method, f"{c}_mean"])
            base = None if ref is None else float(ref[f"{c}_mean"])
            change = "" if base in (None, 0.0) or method == reference else f" ({100 * (mean / base - 1):+.1f} %)"
            cells[f"{METRIC_LABELS.get(c, c)} {ARROWS[metric_direction(c)]}"] = f"{mean:.4g}{change}"
        rows[str(method)] = cells
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("Method").reset_index()


def comparison_figure(summary: pd.DataFrame, path: PathLike, columns: Sequence[str] = BENCHMARK_COLUMNS,
                      relative_to: str | None = None, dpi: int = 120) -> None:
    """One bar panel per metric, methods side by side with ± std error bars.

    ``relative_to`` names a method (e.g. the raw input) whose means become 1: every bar is
    then that method's multiple, which puts metrics of very different scales side by side.
    """
    columns = _metrics_in(summary, columns)
    if relative_to is not None and relative_to not in summary.index:
        raise ValueError(f"relative_to={relative_to!r} is not a method in the summary "
                         f"({', '.join(map(str, summary.index))})")
    methods = [str(m) for m in summary.index]
    ncols = min(4, len(columns))
    nrows = -(-len(columns) // ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.8 * nrows), layout="constrained")
    colors = [f"C{i % 10}" for i in range(len(methods))]
    for k, col in enumerate(columns):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        mean = summary[f"{col}_mean"].to_numpy(dtype=float)
        std = summary[f"{col}_std"].fillna(0).to_numpy(dtype=float)
        if relative_to is not None:
            ref = float(summary.at[relative_to, f"{col}_mean"])
            scale = 1.0 / ref if ref != 0 else np.nan
            mean, std = mean * scale, std * scale
            ax.axhline(1.0, color="0.4", lw=0.8, ls="--")
        ax.bar(np.arange(len(methods)), mean, yerr=std, color=colors, capsize=3)
        ax.set_xticks(np.arange(len(methods)), methods, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{METRIC_LABELS.get(col, col)} {ARROWS[metric_direction(col)]}", fontsize=10)
        ax.tick_params(axis="y", labelsize=8)
        if relative_to is not None:
            ax.set_ylabel(f"÷ {relative_to}", fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi)


def write_summary(per_window: pd.DataFrame, summary_csv: PathLike, markdown_path: PathLike,
                  figure_path: PathLike, headline_csv: PathLike | None = None) -> pd.DataFrame:
    """Summary CSV (mean ± std per method), its markdown table, the comparison figure and, when
    ``headline_csv`` is given, :func:`headline_table` (the report's landing page reads it).

    The figure is relative to the raw input when that method is present, so metrics of very
    different scales read as "fraction of raw" side by side.
    """
    summary = summarize(per_window)
    with atomic_path(summary_csv) as tmp:
        summary.to_csv(tmp, index=True)
    with atomic_path(markdown_path) as tmp:
        Path(tmp).write_text(markdown_table(summary))
    comparison_figure(summary, figure_path, relative_to="raw" if "raw" in summary.index else None)
    if headline_csv is not None:
        write_csv(headline_table(summary), headline_csv)
    return summary
