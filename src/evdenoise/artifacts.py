"""On-disk files passed between workflow stages: segment files and voxel files.

Segments file::

    /windows/{start,end,partial}        window table
    /raw/events/{t,x,y,p}               noisy (input) events of all windows
    /label/events/{t,x,y,p}             optional clean (target) events, split on the same windows
    attrs: width, height, segment_us, grid, producer (+ caller's extras)

Voxel file::

    /<name>                             float32 (S, C, B, H, W), one chunk per window, gzip
                                        (e.g. "raw" and "label" for training, "pred" for predictions)
    /windows/{start,end,partial}
    attrs: bins, channels, assignment, width, height, segment_us, grid, producer (+ extras)

Every file is written atomically; every read error is an EventFileError naming the file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Mapping

import h5py
import numpy as np

from . import __version__
from .events import EventFileError, Events, atomic_path, open_h5, read_group, write_events_group
from .voxel import VoxelSpec
from .windows import Windows

WINDOW_FIELDS = ("start", "end", "partial")
RESERVED = ("windows",)


@dataclass(frozen=True, eq=False)
class Segments:
    """Contents of a segments file."""

    windows: Windows
    raw: Events
    label: Events | None
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class VoxelMeta:
    """Everything about a voxel file except the voxel values."""

    windows: Windows
    spec: VoxelSpec
    attrs: dict[str, Any]
    names: list[str]
    shape: tuple[int, int, int, int, int]  # (S, C, B, H, W)


def _plain(value: Any) -> Any:
    """HDF5 attribute values as plain Python values."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _write_attrs(f: h5py.File, base: Mapping[str, Any], extra: Mapping[str, Any] | None) -> None:
    for k, v in {**(extra or {}), **base}.items():
        f.attrs[k] = v
    f.attrs["producer"] = f"evdenoise {__version__}"


def _read_attrs(f: h5py.File) -> dict[str, Any]:
    return {k: _plain(v) for k, v in f.attrs.items()}


def _write_windows(f: h5py.File, windows: Windows) -> None:
    g = f.create_group("windows")
    for name in WINDOW_FIELDS:
        g.create_dataset(name, data=getattr(windows, name))


def _read_windows(f: h5py.File, path: str | os.PathLike) -> Windows:
    if "windows" not in f or any(k not in f["windows"] for k in WINDOW_FIELDS):
        raise EventFileError(path, "no /windows/{start,end,partial} datasets")
    try:
        arrays = [f["windows"][k][()] for k in WINDOW_FIELDS]
        return Windows(*arrays, grid=str(_plain(f.attrs.get("grid", "relative"))))
    except (OSError, ValueError) as err:
        raise EventFileError(path, f"bad /windows table ({err})") from None


def write_segments(path: str | os.PathLike, windows: Windows, raw: Events, label: Events | None = None,
                   attrs: Mapping[str, Any] | None = None) -> None:
    """Atomically write the windows and the (concatenated) raw/label events of a recording."""
    if label is not None and (label.width, label.height) != (raw.width, raw.height):
        raise ValueError(f"label sensor {label.width}x{label.height} differs from raw {raw.width}x{raw.height}")
    base = {"width": raw.width, "height": raw.height, "segment_us": windows.segment_us, "grid": windows.grid}
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        _write_attrs(f, base, attrs)
        _write_windows(f, windows)
        write_events_group(f, raw, "raw/events")
        if label is not None:
            write_events_group(f, label, "label/events")


def read_segments(path: str | os.PathLike) -> Segments:
    """Read a segments file written by :func:`write_segments`."""
    with open_h5(path) as f:
        windows = _read_windows(f, path)
        raw = read_group(f, path, "raw/events")
        label = read_group(f, path, "label/events") if "label" in f else None
        attrs = _read_attrs(f)
    return Segments(windows, raw, label, attrs)


def write_voxels(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], windows: Windows, spec: VoxelSpec,
                 attrs: Mapping[str, Any] | None = None) -> None:
    """Atomically write named (S, C, B, H, W) voxel arrays sharing one window table."""
    if not arrays:
        raise ValueError("write_voxels needs at least one array")
    shapes = {name: tuple(np.shape(a)) for name, a in arrays.items()}
    shape = next(iter(shapes.values()))
    if len(set(shapes.values())) > 1:
        raise ValueError(f"voxel arrays differ in shape: {shapes}")
    if len(shape) != 5 or shape[:3] != (len(windows), spec.channels, spec.bins):
        raise ValueError(f"voxel arrays have shape {shape}; expected ({len(windows)}, {spec.channels}, "
                         f"{spec.bins}, H, W) for {len(windows)} windows and {spec}")
    if bad := [n for n in arrays if n in RESERVED or "/" in n]:
        raise ValueError(f"reserved or invalid array names: {bad}")
    base = {"bins": spec.bins, "channels": spec.channels, "assignment": spec.assignment,
            "height": shape[3], "width": shape[4], "segment_us": windows.segment_us, "grid": windows.grid}
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        _write_attrs(f, base, attrs)
        _write_windows(f, windows)
        for name, a in arrays.items():
            # One chunk per window: training reads windows one at a time.
            f.create_dataset(name, data=np.asarray(a, dtype=np.float32), chunks=(1, *shape[1:]),
                             maxshape=(None, *shape[1:]), compression="gzip", compression_opts=4, shuffle=True)


def _voxel_dataset(f: h5py.File, path: str | os.PathLike, name: str) -> h5py.Dataset:
    if name in RESERVED or name not in f or not isinstance(f[name], h5py.Dataset):
        names = [k for k in f if k not in RESERVED]
        raise EventFileError(path, f"no voxel array {name!r} (has: {', '.join(names) or 'none'})")
    ds = f[name]
    if ds.ndim != 5:
        raise EventFileError(path, f"voxel array {name!r} has shape {ds.shape}; expected (S, C, B, H, W)")
    return ds


def read_voxels(path: str | os.PathLike, name: str, index: int | slice | np.ndarray | None = None) -> np.ndarray:
    """Voxel array ``name`` as float32 (S, C, B, H, W); ``index`` reads only those windows."""
    with open_h5(path) as f:
        ds = _voxel_dataset(f, path, name)
        try:
            data = ds[()] if index is None else ds[index]
        except (OSError, ValueError) as err:
            raise EventFileError(path, f"cannot read voxel array {name!r} ({err}); is the file truncated?") from None
    return np.asarray(data, dtype=np.float32)


def voxel_meta(path: str | os.PathLike) -> VoxelMeta:
    """Window table, spec, attributes, array names and shape of a voxel file."""
    with open_h5(path) as f:
        attrs = _read_attrs(f)
        missing = [k for k in ("bins", "channels", "assignment", "width", "height") if k not in attrs]
        if missing:
            raise EventFileError(path, f"not a voxel file: attributes {missing} missing")
        windows = _read_windows(f, path)
        names = [k for k in f if k not in RESERVED and isinstance(f[k], h5py.Dataset)]
        spec = VoxelSpec(int(attrs["bins"]), int(attrs["channels"]), str(attrs["assignment"]))
        shape = (len(windows), spec.channels, spec.bins, int(attrs["height"]), int(attrs["width"]))
        for name in names:
            if tuple(f[name].shape) != shape:
                raise EventFileError(path, f"voxel array {name!r} has shape {f[name].shape}; attributes say {shape}")
    return VoxelMeta(windows, spec, attrs, names, shape)
