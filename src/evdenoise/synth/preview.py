"""Preview images of a pair: noisy | clean | noisy-only events, ON red / OFF blue."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..events import Events, atomic_path  # noqa: E402
from .dvs import not_in  # noqa: E402

_ON = np.array([1.0, 0.25, 0.1], np.float32)
_OFF = np.array([0.15, 0.55, 1.0], np.float32)


def event_image(events: Events, scale: float | None = None) -> tuple[np.ndarray, float]:
    """RGB image of ON / OFF counts per pixel on black (log-scaled; ``scale`` = count shown at full colour)."""
    hw = events.width * events.height
    lin = events.y.astype(np.int64) * events.width + events.x
    on = np.bincount(lin[events.p > 0], minlength=hw).reshape(events.height, events.width)
    off = np.bincount(lin[events.p < 0], minlength=hw).reshape(events.height, events.width)
    if scale is None:
        busy = (on + off)[(on + off) > 0]
        scale = float(np.percentile(busy, 99)) if busy.size else 1.0
    norm = np.log1p(max(scale, 1.0))
    v_on = np.clip(np.log1p(on) / norm, 0, 1)[..., None]
    v_off = np.clip(np.log1p(off) / norm, 0, 1)[..., None]
    return np.clip(v_on * _ON + v_off * _OFF, 0, 1), scale


def write_preview(noisy: Events, clean: Events, path: Path) -> None:
    """PNG with three panels: noisy, clean, and the noisy events missing from clean (flare)."""
    only = noisy.select(not_in(noisy, clean))
    img_noisy, scale = event_image(noisy)
    panels = [(img_noisy, f"noisy ({len(noisy):,} ev)"),
              (event_image(clean, scale)[0], f"clean ({len(clean):,} ev)"),
              (event_image(only, scale)[0], f"noisy only ({len(only):,} ev, "
                                            f"{len(only) / max(len(noisy), 1):.0%})")]
    aspect = noisy.height / noisy.width
    fig, axes = plt.subplots(1, 3, figsize=(12, 4 * aspect + 0.6), dpi=max(100, noisy.width // 4))
    for ax, (img, title) in zip(axes, panels):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
