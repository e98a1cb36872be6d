"""Event pictures and figure files: colours, panel layout, PNG sizes, real-recording smoke test."""
from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from evdenoise.events import Events, read_events
from evdenoise.plot import (BACKGROUND, MIXED_COLOR, OFF_COLOR, ON_COLOR, PANEL_WIDTH_IN, TITLE_IN, event_image,
                            plot_events, plot_voxels)
from evdenoise.voxel import VoxelSpec, encode



def _png_size(path: Path) -> tuple[int, int]:
    h, w = mpimg.imread(path).shape[:2]
    return h, w


def test_event_image_colours_and_time_span() -> None:
    # ON at (0,0); OFF at (1,0); one ON + one OFF at (2,0); two ON + one OFF at (3,1); late ON at (0,2)
    ev = Events.from_arrays([0, 1, 2, 3, 4, 5, 6, 50], [0, 1, 2, 2, 3, 3, 3, 0], [0, 0, 0, 0, 1, 1, 1, 2],
                            [1, 0, 1, 0, 1, 1, 0, 1], 4, 3)
    img = event_image(ev, t1=10)
    assert img.shape == (3, 4, 3) and img.dtype == np.uint8
    assert tuple(img[0, 0]) == ON_COLOR and tuple(img[0, 1]) == OFF_COLOR
    assert tuple(img[0, 2]) == MIXED_COLOR and tuple(img[1, 3]) == ON_COLOR
    assert tuple(img[2, 0]) == BACKGROUND  # at t = 50, outside [.., 10)
    assert tuple(event_image(ev)[2, 0]) == ON_COLOR
    assert tuple(event_image(ev, t0=10)[0, 0]) == BACKGROUND


def test_plot_events_panel_sizes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 500
    ev = Events.from_arrays(np.sort(rng.integers(0, 60_000, n)), rng.integers(0, 80, n), rng.integers(0, 60, n),
                            rng.integers(0, 2, n), 80, 60)
    out = tmp_path / "side.png"
    plot_events([ev, ev.select(slice(0, 100)), ev], ["noisy", "denoised", "clean"], out, dpi=50)
    assert _png_size(out) == (int((PANEL_WIDTH_IN * 0.75 + TITLE_IN) * 50), int(3 * PANEL_WIDTH_IN * 50))
    rows = tmp_path / "rows.png"
    plot_events([ev, ev], None, rows, windows=True, dpi=50)  # 3 windows of 20 ms
    assert _png_size(rows) == (int(3 * (PANEL_WIDTH_IN * 0.75 + TITLE_IN) * 50), int(2 * PANEL_WIDTH_IN * 50))
    with pytest.raises(ValueError, match="2 labels for 1 streams"):
        plot_events([ev], ["a", "b"], out)
    with pytest.raises(ValueError, match="no events"):
        plot_events([Events.empty(8, 8)], ["empty"], out, windows=True)


def test_plot_voxels_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    signed = rng.integers(-2, 3, (1, 4, 30, 40)).astype(np.float32)
    plot_voxels(signed, tmp_path / "v1.png", title="signed", dpi=40)
    plot_voxels(np.abs(np.concatenate([signed, signed])), tmp_path / "v2.png", dpi=40)
    h1, w1 = _png_size(tmp_path / "v1.png")
    h2, w2 = _png_size(tmp_path / "v2.png")
    assert w1 == w2 == int((2.5 * 4 + 0.8) * 40)
    assert h2 > h1  # ON and OFF rows
    with pytest.raises(ValueError, match="C = 1 or 2"):
        plot_voxels(np.zeros((3, 2, 4, 4)), tmp_path / "bad.png")


def test_real_recording_figures(tmp_path: Path, real_dir: Path) -> None:
    real = real_dir / "dvxplorer_320x240_person.h5"
    out = tmp_path / "person.png"
    plot_events([real], ["dvxplorer"], out, windows=True, max_windows=3, dpi=40)
    assert _png_size(out) == (int(3 * (PANEL_WIDTH_IN * 0.75 + TITLE_IN) * 40), int(PANEL_WIDTH_IN * 40))
    ev = read_events(real)
    t0 = int(ev.t[0])
    plot_voxels(encode(ev, t0, t0 + 20_000, VoxelSpec(bins=8, channels=2)), tmp_path / "vox.png", dpi=40)
    img = mpimg.imread(tmp_path / "vox.png")
    assert img.std() > 0.01  # not a blank picture
