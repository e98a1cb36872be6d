"""The whole data chain on real sensor recordings: read -> split -> voxelize -> decode -> merge."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evdenoise.decode import decode_windows
from evdenoise.events import read_events, read_window
from evdenoise.voxel import VoxelSpec, encode_windows
from evdenoise.windows import merge, split, windows_for

RECORDINGS = {  # name: (width, height, events, first t)
    "dvxplorer_320x240_person.h5": (320, 240, 111_954, None),
    "prophesee_640x480_spinner.h5": (640, 480, 539_481, 1_317_888),
}


@pytest.mark.parametrize("name", list(RECORDINGS))
def test_real_recording_chain(real_dir: Path, name: str) -> None:
    width, height, count, first = RECORDINGS[name]
    ev = read_events(real_dir / name)
    assert (ev.width, ev.height, len(ev)) == (width, height, count)
    assert first is None or ev.t[0] == first

    windows = windows_for(ev, 20_000)
    parts = split(ev, windows)
    assert merge(parts).equals(ev) and sum(map(len, parts)) == len(ev)
    assert not windows.partial[:-1].any()
    middle = len(windows) // 2
    assert read_window(real_dir / name, windows.start[middle], windows.end[middle]).equals(parts[middle])

    for channels in (1, 2):
        spec = VoxelSpec(8, channels, "nearest")
        vox = encode_windows(ev, windows, spec)
        assert vox.shape == (len(windows), channels, 8, height, width)
        assert vox.sum() == (len(ev) if channels == 2 else int(ev.p.sum()))
        # Nearest-bin voxels are integer counts: sample/spread reproduce them exactly.
        for strategy in ("sample", "spread"):
            out = decode_windows(vox, windows, strategy, spec=spec, seed=0)
            assert np.all(np.diff(out.t) >= 0) and len(out) == int(np.abs(vox).sum())
            np.testing.assert_array_equal(encode_windows(out, windows, spec), vox)
        # mask with the input's own voxels keeps every event; with half of it, about half.
        assert decode_windows(vox, windows, "mask", events_in=ev, spec=spec).equals(ev)
        half = decode_windows(vox * 0.5, windows, "mask", events_in=ev, spec=spec, seed=1)
        assert merge(split(half, windows)).equals(half) and 0 < len(half) < len(ev)
