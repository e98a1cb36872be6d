"""Preview image of a pair: noisy | clean | noisy-only events (the figures of ``evdenoise.plot``)."""
from __future__ import annotations

from pathlib import Path

from ..events import Events
from .dvs import not_in


def write_preview(noisy: Events, clean: Events, path: Path) -> None:
    """PNG with three panels: noisy, clean, and the noisy events missing from clean (flare)."""
    from ..plot import plot_events  # matplotlib: only when a preview is drawn, not when synth is imported

    only = noisy.select(not_in(noisy, clean))
    share = len(only) / max(len(noisy), 1)
    plot_events([noisy, clean, only], ["noisy", "clean", f"noisy only ({share:.0%})"], path)
