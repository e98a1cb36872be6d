"""Segment and voxel files between workflow stages (evdenoise.artifacts)."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from evdenoise.artifacts import read_segments, read_voxels, voxel_meta, write_segments, write_voxels
from evdenoise.events import EventFileError, write_events
from evdenoise.voxel import VoxelSpec, encode_windows
from evdenoise.windows import Windows, merge, split_pair, windows_for


def test_segments_round_trip(tmp_path: Path, tiny_events) -> None:
    noisy, clean = tiny_events(800, seed=1), tiny_events(500, seed=2)
    windows, raw, label = split_pair(noisy, clean, 20_000, "absolute")
    path = tmp_path / "seg.h5"
    write_segments(path, windows, merge(raw), merge(label), attrs={"source": "pair"})
    seg = read_segments(path)
    assert seg.windows.equals(windows) and seg.windows.grid == "absolute"
    assert seg.raw.equals(noisy) and seg.label is not None and seg.label.equals(merge(label))
    assert seg.attrs["segment_us"] == 20_000 and seg.attrs["grid"] == "absolute" and seg.attrs["source"] == "pair"
    assert (seg.attrs["width"], seg.attrs["height"]) == (16, 12) and "evdenoise" in seg.attrs["producer"]
    write_segments(path, windows, noisy)  # overwrite without a label
    assert read_segments(path).label is None
    assert [p.name for p in tmp_path.iterdir()] == ["seg.h5"]  # no temporary files left


def test_voxels_round_trip(tmp_path: Path, tiny_events) -> None:
    ev = tiny_events(2000)
    windows = windows_for(ev)
    spec = VoxelSpec(4, 2, "bilinear")
    raw = encode_windows(ev, windows, spec)
    path = tmp_path / "vox.h5"
    write_voxels(path, {"raw": raw, "label": raw * 0.5}, windows, spec, attrs={"source": "x.h5"})
    meta = voxel_meta(path)
    assert meta.spec == spec and meta.windows.equals(windows) and sorted(meta.names) == ["label", "raw"]
    assert meta.shape == (5, 2, 4, 12, 16) and meta.attrs["segment_us"] == 20_000 and meta.attrs["source"] == "x.h5"
    np.testing.assert_array_equal(read_voxels(path, "raw"), raw)
    np.testing.assert_array_equal(read_voxels(path, "label", slice(1, 3)), raw[1:3] * 0.5)
    with h5py.File(path) as f:
        ds = f["raw"]
        assert ds.dtype == np.float32 and ds.chunks == (1, 2, 4, 12, 16) and ds.compression == "gzip"
    with pytest.raises(EventFileError, match="no voxel array 'pred'"):
        read_voxels(path, "pred")


def test_zero_windows(tmp_path: Path) -> None:
    spec = VoxelSpec()
    write_voxels(tmp_path / "v.h5", {"pred": np.zeros((0, 2, 8, 3, 4), np.float32)}, Windows.empty(), spec)
    meta = voxel_meta(tmp_path / "v.h5")
    assert meta.shape == (0, 2, 8, 3, 4) and len(meta.windows) == 0
    assert read_voxels(tmp_path / "v.h5", "pred").shape == (0, 2, 8, 3, 4)


def test_write_voxels_checks_shapes(tmp_path: Path) -> None:
    windows = Windows(np.array([0]), np.array([10]), np.array([False]))
    spec = VoxelSpec(8, 1)
    good = np.zeros((1, 1, 8, 3, 4), np.float32)
    for arrays, match in (({"raw": good[:, :, :4]}, "expected"), ({"raw": good, "label": good[..., :2]}, "differ"),
                          ({"windows": good}, "reserved"), ({}, "at least one")):
        with pytest.raises(ValueError, match=match):
            write_voxels(tmp_path / "v.h5", arrays, windows, spec)
    assert not any(tmp_path.iterdir())


def test_bad_artifact_files(tmp_path: Path, tiny_events) -> None:
    plain = tmp_path / "plain.h5"
    write_events(plain, tiny_events(10))
    with pytest.raises(EventFileError, match="plain.h5: no /windows"):
        read_segments(plain)
    with pytest.raises(EventFileError, match="plain.h5: not a voxel file"):
        voxel_meta(plain)
    with pytest.raises(EventFileError, match="does not exist"):
        read_voxels(tmp_path / "none.h5", "raw")
