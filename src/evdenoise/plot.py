"""Pictures of event streams and voxel grids (matplotlib, no display needed).

Colour convention for events: white background, pixels whose events in the time span are
net ON in red, net OFF in blue, and pixels with as many ON as OFF events in purple.
Figures are built with ``matplotlib.figure.Figure`` (the Agg canvas, no pyplot state) at
fixed sizes, and written atomically.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from .defaults import SEGMENT_US
from .events import Events, atomic_path, read_events
from .windows import windows_for

if TYPE_CHECKING:
    import pandas as pd

PathLike = str | os.PathLike
BACKGROUND = (255, 255, 255)
ON_COLOR = (214, 39, 40)
OFF_COLOR = (31, 119, 180)
MIXED_COLOR = (128, 0, 128)
PANEL_WIDTH_IN = 4.0  # each event panel; height follows the sensor's aspect ratio
TITLE_IN = 0.45  # room above each row of panels for titles
VOXEL_PANEL_IN = 2.5


def event_image(events: Events, t0: int | None = None, t1: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 picture of the events with ``t0 <= t < t1`` (whole stream by default)."""
    keep = np.ones(len(events), dtype=bool)
    if t0 is not None:
        keep &= events.t >= t0
    if t1 is not None:
        keep &= events.t < t1
    h, w = events.height, events.width
    pixel = events.y[keep].astype(np.int64) * w + events.x[keep]
    net = np.bincount(pixel, weights=events.p[keep], minlength=h * w).reshape(h, w)
    hit = np.bincount(pixel, minlength=h * w).reshape(h, w) > 0
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = BACKGROUND
    img[net > 0] = ON_COLOR
    img[net < 0] = OFF_COLOR
    img[hit & (net == 0)] = MIXED_COLOR
    return img


def _load(item: PathLike | Events) -> Events:
    return item if isinstance(item, Events) else read_events(item)


def _save(fig: Figure, path: PathLike, dpi: int) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi)


def plot_events(paths_or_events: Sequence[PathLike | Events], labels: Sequence[str] | None,
                out_path: PathLike, windows: bool = False, segment_us: int = SEGMENT_US,
                max_windows: int = 8, dpi: int = 100) -> None:
    """Streams side by side (e.g. noisy | denoised | clean), one panel each.

    With ``windows=True`` there is one row per ``segment_us`` window of the *first* stream
    (the reference, as in the workflow), every stream cut to the same window; at most
    ``max_windows`` rows, spread evenly over the recording.
    """
    streams = [_load(item) for item in paths_or_events]
    if not streams:
        raise ValueError("plot_events needs at least one stream")
    if labels is None:
        labels = [Path(i).stem if not isinstance(i, Events) else f"stream {k}"
                  for k, i in enumerate(paths_or_events)]
    if len(labels) != len(streams):
        raise ValueError(f"{len(labels)} labels for {len(streams)} streams")
    spans: list[tuple[int | None, int | None]] = [(None, None)]
    if windows:
        wins = windows_for(streams[0].sorted(), segment_us)
        if len(wins) == 0:
            raise ValueError(f"{labels[0]}: no events, so no windows to plot")
        rows = np.unique(np.linspace(0, len(wins) - 1, min(max_windows, len(wins))).round().astype(int))
        spans = [(int(wins.start[i]), int(wins.end[i])) for i in rows]
    aspect = max(s.height / s.width for s in streams)
    fig = Figure(figsize=(PANEL_WIDTH_IN * len(streams), (PANEL_WIDTH_IN * aspect + TITLE_IN) * len(spans)),
                 layout="constrained")
    axes = fig.subplots(len(spans), len(streams), squeeze=False)
    for r, (t0, t1) in enumerate(spans):
        for c, (ev, label) in enumerate(zip(streams, labels)):
            ax = axes[r, c]
            ax.imshow(event_image(ev, t0, t1), interpolation="nearest")
            n = len(ev) if t0 is None else int(np.count_nonzero((ev.t >= t0) & (ev.t < t1)))
            title = f"{label}: {n:,} events"
            if t0 is not None:
                start = t0 - int(spans[0][0])
                title += f"\n{start / 1000:.0f}-{(start + t1 - t0) / 1000:.0f} ms"
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    _save(fig, out_path, dpi)


def _color_limit(values: np.ndarray) -> float:
    """95th percentile of the non-zero magnitudes: single events stay clearly visible and a few
    hot pixels do not wash out the rest (larger values saturate)."""
    mags = np.abs(values[values != 0])
    return float(np.percentile(mags, 95)) if mags.size else 1.0


def plot_voxels(vox: np.ndarray | Mapping[str, np.ndarray], out_path: PathLike, title: str | None = None,
                dpi: int = 100) -> None:
    """Bins side by side: one diverging row for a signed grid (C=1), ON and OFF rows for C=2.

    A mapping of named grids (e.g. noisy / predicted / clean) stacks their rows, sharing one
    colour scale per channel so the panels compare directly.
    """
    panels = dict(vox) if isinstance(vox, Mapping) else {"": vox}
    grids = [np.asarray(v) for v in panels.values()]
    shape = grids[0].shape
    if len(shape) != 4 or shape[0] not in (1, 2) or any(g.shape != shape for g in grids):
        raise ValueError(f"plot_voxels needs (C, B, H, W) grids of one shape with C = 1 or 2, "
                         f"got {[g.shape for g in grids]}")
    c, b, h, w = shape
    stacked = np.stack(grids)
    if c == 1:
        lim = _color_limit(stacked)
        styles = [("signed", "RdBu_r", -lim, lim)]
    else:
        styles = [("ON", "Reds", 0.0, _color_limit(stacked[:, 0])), ("OFF", "Blues", 0.0, _color_limit(stacked[:, 1]))]
    nrows = c * len(grids)
    fig = Figure(figsize=(VOXEL_PANEL_IN * b + 0.8, (VOXEL_PANEL_IN * h / w + 0.35) * nrows + 0.4),
                 layout="constrained")
    axes = fig.subplots(nrows, b, squeeze=False)
    for g, (label, grid) in enumerate(zip(panels, grids)):
        for ch, (name, cmap, vmin, vmax) in enumerate(styles):
            r = g * c + ch
            for k in range(b):
                image = axes[r, k].imshow(grid[ch, k], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
                axes[r, k].set_title(f"{label} {name} bin {k}".strip(), fontsize=8)
                axes[r, k].set_xticks([])
                axes[r, k].set_yticks([])
            fig.colorbar(image, ax=list(axes[r]), shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, out_path, dpi)


def plot_history(history_csv: PathLike, out_path: PathLike, dpi: int = 100) -> None:
    """Training and validation loss (log scale) and the learning rate over steps."""
    import pandas as pd

    h = pd.read_csv(history_csv)
    fig = Figure(figsize=(9, 3.5), layout="constrained")
    loss_ax, lr_ax = fig.subplots(1, 2)
    for col, style in (("train_loss", "-"), ("val_loss", "o-")):
        rows = h.dropna(subset=[col])
        if len(rows):
            loss_ax.plot(rows["step"], rows[col], style, label=col.replace("_", " "), ms=3)
    loss_ax.set_yscale("log")
    loss_ax.set_xlabel("step")
    loss_ax.set_ylabel("voxel loss")
    loss_ax.legend()
    lr_ax.plot(h["step"], h["lr"])
    lr_ax.set_xlabel("step")
    lr_ax.set_ylabel("learning rate")
    _save(fig, out_path, dpi)


def plot_resources(table: pd.DataFrame, out_path: PathLike, dpi: int = 100) -> None:
    """Total wall time and peak memory per workflow rule (from ``resources.benchmark_table``)."""
    fig = Figure(figsize=(10, 0.35 * len(table) + 1.2), layout="constrained")
    time_ax, mem_ax = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(table))
    time_ax.barh(y, table["total_s"], color="C0")
    time_ax.set_yticks(y, table["rule"])
    time_ax.set_xlabel("total wall time (s)")
    mem_ax.barh(y, table["peak_rss_mb"].fillna(0), color="C1")
    mem_ax.set_xlabel("peak memory (MB, max RSS)")
    time_ax.invert_yaxis()
    _save(fig, out_path, dpi)
