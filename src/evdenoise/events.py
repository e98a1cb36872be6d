"""Event streams in memory and in HDF5 files: read, validate, write, window reads.

File layout: ``/events/{t,x,y,p}`` (t int64 µs, x/y uint16, p int8 ±1 on write),
root attributes ``width``/``height``. Inputs are only ever opened read-only; outputs
are written to a temporary file in the target folder and renamed into place.
"""
from __future__ import annotations

import logging
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Iterator, Mapping

import h5py
import hdf5plugin  # noqa: F401  (registers Blosc, zstd, LZ4... with h5py: DSEC files read as they are)
import numpy as np

from . import __version__
from .errors import EventFileError

if TYPE_CHECKING:
    from .formats import TextFormat
    from .scan import Scan

log = logging.getLogger(__name__)

FIELDS = ("t", "x", "y", "p")
# gzip (any HDF5 reader has it) at level 1: writes 1.5x faster than level 4 for 7-14 % larger files, and
# writing is the slowest stage of denoising after the network (benchmarks/bench_denoise.py).
GZIP_LEVEL = 1


@dataclass(frozen=True)
class Events:
    """A time-sorted event stream on a ``width`` x ``height`` sensor."""

    t: np.ndarray  # int64, µs
    x: np.ndarray  # uint16
    y: np.ndarray  # uint16
    p: np.ndarray  # int8, +1 / -1
    width: int
    height: int

    @classmethod
    def empty(cls, width: int, height: int) -> Events:
        return cls.from_arrays([], [], [], [], width, height)

    @classmethod
    def from_arrays(cls, t: Any, x: Any, y: Any, p: Any, width: int, height: int) -> Events:
        """Build with canonical dtypes; polarity p > 0 -> +1, else -1."""
        on = np.asarray(np.asarray(p) > 0)
        return cls(
            t=np.asarray(t, dtype=np.int64),
            x=np.asarray(x, dtype=np.uint16),
            y=np.asarray(y, dtype=np.uint16),
            p=on.view(np.int8) * np.int8(2) - np.int8(1),  # 100x faster than np.where on a bool mask
            width=int(width),
            height=int(height),
        )

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def select(self, index: Any) -> Events:
        """Events at ``index`` (slice, integer array or boolean mask)."""
        return Events(self.t[index], self.x[index], self.y[index], self.p[index], self.width, self.height)

    def between(self, t0: int, t1: int) -> Events:
        """Events with t0 <= t < t1 (binary search; the stream must be sorted)."""
        i0, i1 = np.searchsorted(self.t, [t0, t1], side="left")
        return self.select(slice(int(i0), int(i1)))

    def sorted(self) -> Events:
        return self.select(np.argsort(self.t, kind="stable"))

    @staticmethod
    def concatenate(parts: list[Events], width: int | None = None, height: int | None = None) -> Events:
        if not parts:
            if width is None or height is None:
                raise ValueError("concatenating no parts needs width and height")
            return Events.empty(width, height)
        return Events(
            *(np.concatenate([getattr(e, f) for e in parts]) for f in FIELDS),
            width=parts[0].width if width is None else width,
            height=parts[0].height if height is None else height,
        )

    def equals(self, other: Events) -> bool:
        return (self.width, self.height) == (other.width, other.height) and all(
            np.array_equal(getattr(self, f), getattr(other, f)) for f in FIELDS
        )


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp's 0600 would survive the rename: give open()'s mode
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def open_h5(path: str | os.PathLike) -> h5py.File:
    """Open an HDF5 file read-only, turning h5py's errors into EventFileError."""
    if not Path(path).is_file():
        raise EventFileError(path, "file does not exist")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise EventFileError(path, f"not a readable HDF5 file ({err})") from None


def _sensor_size(path: str | os.PathLike, attrs: Mapping[str, Any], peak: tuple[int, int] | None,
                 width: int | None, height: int | None) -> tuple[int, int]:
    """From the attributes, else the arguments, else the largest ``peak`` x and y (None: no events)."""
    if "width" in attrs and "height" in attrs:
        return int(attrs["width"]), int(attrs["height"])
    if width is not None and height is not None:
        return int(width), int(height)
    w, h = (peak[0] + 1, peak[1] + 1) if peak else (1, 1)
    log.warning("%s: no width/height attributes or configured size; inferred %dx%d from the coordinates",
                path, w, h)
    return w, h


def _check_numeric(path: str | os.PathLike, where: str, name: str, a: np.ndarray) -> None:
    if a.ndim != 1:
        raise EventFileError(path, f"{where}/{name} must be one-dimensional, has shape {a.shape}")
    if a.dtype.kind not in "iubf":
        raise EventFileError(path, f"{where}/{name} has unsupported dtype {a.dtype}")
    if a.dtype.kind == "f":
        if np.isnan(a).any():
            raise EventFileError(path, f"{where}/{name} contains NaN")
        if not np.isfinite(a).all():
            raise EventFileError(path, f"{where}/{name} contains infinite values")
        if name != "p" and not np.array_equal(a, np.round(a)):
            raise EventFileError(path, f"{where}/{name} contains non-integer values")


def _check_polarity(path: str | os.PathLike, where: str, p: np.ndarray, scan: Scan) -> None:
    """Polarity must be ±1, 0/1 or bool; mixing -1 and 0 is ambiguous."""
    if p.dtype.kind == "b" or not len(p):
        return
    low, high = scan.low[2], scan.high[2]
    if p.dtype.kind in "iu" and ((low >= 0 and high <= 1) or (low == -1 and high == 1 and not scan.p_zero)):
        return
    values = set(np.unique(p).tolist())  # floats, and the rare integer cases the bounds leave open (all -1)
    if values <= {-1, 1} or values <= {0, 1}:
        return
    raise EventFileError(path, f"{where}/p has values {sorted(values)[:6]}; expected ±1, 0/1 or bool")


def _validated(path: str | os.PathLike, raw: dict[str, np.ndarray], attrs: Mapping[str, Any],
               width: int | None, height: int | None, sort: bool, where: str = "/events") -> Events:
    from .scan import scan_events  # numba loads when events are read, not when the workflow plans

    lengths = {k: len(v) for k, v in raw.items()}
    if len(set(lengths.values())) > 1:
        raise EventFileError(path, f"{where} datasets have unequal lengths {lengths}")
    for name, a in raw.items():
        _check_numeric(path, where, name, a)
    scan = scan_events(raw["t"], raw["x"], raw["y"], raw["p"], int(attrs.get("t_offset", 0)))
    _check_polarity(path, where, raw["p"], scan)
    n = len(scan.t)
    if n and min(scan.low[:2]) < 0:
        raise EventFileError(path, "negative pixel coordinates")
    w, h = _sensor_size(path, attrs, scan.high[:2] if n else None, width, height)
    if n and (scan.high[0] >= w or scan.high[1] >= h):
        raise EventFileError(
            path, f"coordinates outside the {w}x{h} sensor (max x={scan.high[0]}, max y={scan.high[1]})")
    events = Events(scan.t, scan.x, scan.y, scan.p, w, h)
    if scan.decreases:
        if not sort:
            i, t = int(np.argmax(scan.t[1:] < scan.t[:-1])) + 1, scan.t
            raise EventFileError(
                path, f"timestamps decrease at index {i} ({int(t[i - 1])} -> {int(t[i])}); "
                      f"{scan.decreases} decrease(s) in all (pass sort=True / --sort to sort them)")
        events = events.sorted()
    return events


def _events_group(path: str | os.PathLike, f: h5py.File, group: str) -> h5py.Group:
    try:
        if group not in f or not isinstance(f[group], h5py.Group):
            raise EventFileError(path, f"no /{group} group")
        g = f[group]
        missing = [k for k in FIELDS if k not in g or not isinstance(g[k], h5py.Dataset)]
    except (OSError, KeyError, RuntimeError) as err:
        raise EventFileError(path, f"cannot read /{group} ({err}); is the file truncated?") from None
    if missing:
        raise EventFileError(path, f"/{group} lacks dataset(s) {', '.join('/' + group + '/' + m for m in missing)}")
    return g


def _group_attrs(path: str | os.PathLike, f: h5py.File, g: h5py.Group) -> dict[str, Any]:
    """Root attributes overlaid by the group's; a DSEC-style root ``/t_offset`` dataset counts too."""
    try:
        attrs = dict(f.attrs)
        attrs.update(g.attrs)
        if "t_offset" in f and isinstance(f["t_offset"], h5py.Dataset):
            attrs["t_offset"] = int(np.asarray(f["t_offset"][()]).reshape(-1)[0])
    except (OSError, KeyError, IndexError, ValueError) as err:
        raise EventFileError(path, f"cannot read attributes ({err}); is the file truncated?") from None
    return attrs


def read_fields(g: h5py.Group, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
    """``{t, x, y, p}[start:stop]`` of an events group: by chunks in threads (``h5chunks``) where the four are
    one-dimensional and equally long, else (for the checks to name the problem) as h5py reads them."""
    from .h5chunks import read_ranges

    datasets = [g[k] for k in FIELDS]
    shapes = {ds.shape for ds in datasets}
    if len(shapes) != 1 or len(shape := shapes.pop()) != 1:
        return {k: ds[()] if stop is None else ds[start:stop] for k, ds in zip(FIELDS, datasets)}
    return dict(zip(FIELDS, read_ranges(datasets, start, shape[0] if stop is None else min(stop, shape[0]))))


def read_group(f: h5py.File, path: str | os.PathLike, group: str = "events", width: int | None = None,
               height: int | None = None, sort: bool = False) -> Events:
    """Read and validate the ``{t,x,y,p}`` datasets under ``group`` of an open file."""
    g = _events_group(path, f, group)
    try:
        raw = read_fields(g)
    except (OSError, KeyError, ValueError) as err:
        raise EventFileError(path, f"cannot read /{group} ({err}); is the file truncated?") from None
    return _validated(path, raw, _group_attrs(path, f, g), width, height, sort, where=f"/{group}")


def read_events(path: str | os.PathLike, width: int | None = None, height: int | None = None,
                sort: bool = False, group: str = "events", text: TextFormat | None = None) -> Events:
    """Read and validate a whole event file in any format of ``evdenoise.formats`` (by its suffix).

    Sensor size comes from the file (HDF5 ``width``/``height`` attributes, a camera file's
    header), else from the arguments, else from the largest coordinates (logged). HDF5
    timestamps get the file's ``t_offset`` (attribute or DSEC-style root dataset) added.
    Decreasing timestamps are an error unless ``sort``. ``text`` lays out CSV/TXT columns.
    Raises EventFileError naming the file and the problem.
    """
    from .formats import is_hdf5, read_foreign

    if not is_hdf5(path):
        raw, attrs = read_foreign(path, text)
        return _validated(path, raw, attrs, width, height, sort, where="events")
    with open_h5(path) as f:
        return read_group(f, path, group, width, height, sort)


@dataclass(frozen=True)
class StreamInfo:
    """What is known of an event file before its events are read."""

    count: int
    t_first: int
    t_last: int
    width: int
    height: int


BLOCK_EVENTS = 1 << 22  # events read at once when streaming an HDF5 file (about 60 MB)


def stream_events(path: str | os.PathLike, width: int | None = None, height: int | None = None,
                  text: TextFormat | None = None, block: int = BLOCK_EVENTS) -> tuple[StreamInfo, Iterator[Events]]:
    """The file's facts and an iterator over its events in sorted, validated blocks of ``block`` events (CSV/TXT:
    byte ranges of about as many lines).

    HDF5 files are read a block at a time (memory bounded whatever the length); camera files, CSV/TXT, .npy and
    .npz files are read twice, once for these facts (:func:`scan_stream`) and once for the blocks, so memory stays
    bounded for them too. Raises EventFileError as :func:`read_events` does, also for a decrease of the timestamps
    across blocks. One pass where the facts are not needed first: :func:`stream_blocks`.
    """
    from .formats import is_hdf5

    if not is_hdf5(path):
        info = scan_stream(path, width, height, text, block).info()
        return info, stream_blocks(path, info.width, info.height, text, block)[1]
    with open_h5(path) as f:
        g = _events_group(path, f, "events")
        attrs = _group_attrs(path, f, g)
        n, offset = int(g["t"].shape[0]), int(attrs.get("t_offset", 0))
        w, h = _stream_size(path, g, attrs, width, height, block)
        t = (int(g["t"][0]) + offset, int(g["t"][n - 1]) + offset) if n else (0, 0)
    return StreamInfo(n, *t, w, h), _h5_blocks(path, n, w, h, block)


_UINT16_BOUND = (1 << 16, 1 << 16)  # the sensor a file of unknown size is checked against: uint16 coordinates


def stream_blocks(path: str | os.PathLike, width: int | None = None, height: int | None = None,
                  text: TextFormat | None = None, block: int = BLOCK_EVENTS
                  ) -> tuple[tuple[int, int] | None, Iterator[Events]]:
    """One pass over any event file: (its sensor size where the file or the caller gives it, else None; its
    sorted, validated blocks in time order, one block in memory at a time).

    Blocks of a file of unknown size are checked against the uint16 range and each carries the size its own
    coordinates give; :class:`StreamTally` and ``event_writer(path, None, None)`` take the largest."""
    from .formats import foreign_stream, is_hdf5

    hdf5 = is_hdf5(path)
    if hdf5:
        with open_h5(path) as f:
            g = _events_group(path, f, "events")
            attrs, n = _group_attrs(path, f, g), int(g["t"].shape[0])
    else:
        attrs, raw_blocks = foreign_stream(path, block, text)
    known = _sensor_size(path, attrs, None, width, height) if _size_known(attrs, width, height) else None
    if known is None:
        log.warning("%s: no width/height attributes or configured size; inferring it from the coordinates", path)
    bound = known or _UINT16_BOUND
    blocks = (_h5_blocks(path, n, *bound, block) if hdf5
              else _checked_blocks(path, _numbered(raw_blocks()), attrs, *bound))
    return known, blocks if known else map(_fitted, blocks)


def _fitted(events: Events) -> Events:
    """A block of unknown sensor size, sized by its largest coordinates."""
    if not len(events):
        return Events(events.t, events.x, events.y, events.p, 1, 1)
    return Events(events.t, events.x, events.y, events.p, int(events.x.max()) + 1, int(events.y.max()) + 1)


@dataclass
class StreamTally:
    """What a pass over a stream of blocks has seen so far; the size is the largest block's (1x1: none)."""

    count: int = 0
    t_first: int = 0
    t_last: int = 0
    width: int = 1
    height: int = 1
    on: int = 0  # events of positive polarity

    def add(self, events: Events) -> Events:
        """Count one block in; gives it back, so ``map(tally.add, blocks)`` tallies while it streams."""
        if len(events):
            self.t_first = int(events.t[0]) if self.count == 0 else self.t_first
            self.t_last = int(events.t[-1])
            self.count += len(events)
            self.on += int(np.count_nonzero(events.p > 0))
        self.width, self.height = max(self.width, events.width), max(self.height, events.height)
        return events

    def info(self) -> StreamInfo:
        return StreamInfo(self.count, self.t_first, self.t_last, self.width, self.height)


def scan_stream(path: str | os.PathLike, width: int | None = None, height: int | None = None,
                text: TextFormat | None = None, block: int = BLOCK_EVENTS) -> StreamTally:
    """One validating pass over a file in bounded memory: its count, time span, sensor size (from the file, the
    arguments, else the largest coordinates) and ON events. A bad value is an EventFileError here."""
    known, blocks = stream_blocks(path, width, height, text, block)
    tally = StreamTally(width=known[0], height=known[1]) if known else StreamTally()
    for events in blocks:
        tally.add(events)
    return tally


def _size_known(attrs: Mapping[str, Any], width: int | None, height: int | None) -> bool:
    """Whether the file's attributes or the caller give the sensor size (else the coordinates do)."""
    return ("width" in attrs and "height" in attrs) or (width is not None and height is not None)


def _stream_size(path: str | os.PathLike, g: h5py.Group, attrs: Mapping[str, Any], width: int | None,
                 height: int | None, block: int) -> tuple[int, int]:
    if _size_known(attrs, width, height):
        return _sensor_size(path, attrs, None, width, height)
    n = g["x"].shape[0]
    peak = [max((int(g[k][i:i + block].max()) for i in range(0, n, block)), default=0) for k in ("x", "y")]
    return _sensor_size(path, {}, (peak[0], peak[1]), None, None)


def _h5_blocks(path: str | os.PathLike, n: int, width: int, height: int, block: int) -> Iterator[Events]:
    with open_h5(path) as f:
        g = _events_group(path, f, "events")
        attrs = _group_attrs(path, f, g)

        def raws() -> Iterator[tuple[int, dict[str, np.ndarray]]]:
            for i in range(0, n, block):
                try:
                    yield i, read_fields(g, i, i + block)
                except (OSError, ValueError) as err:
                    raise EventFileError(path, f"cannot read /events ({err}); is the file truncated?") from None

        yield from _checked_blocks(path, raws(), attrs, width, height)


def _numbered(raws: Iterator[dict[str, np.ndarray]]) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Each raw block with the index of its first event in the file."""
    i = 0
    for raw in raws:
        yield i, raw
        i += len(raw["t"])


def _checked_blocks(path: str | os.PathLike, raws: Iterator[tuple[int, dict[str, np.ndarray]]],
                    attrs: Mapping[str, Any], width: int, height: int) -> Iterator[Events]:
    """Validated blocks; timestamps that decrease from one block to the next are an error too."""
    last = np.iinfo(np.int64).min
    for i, raw in raws:
        events = _validated(path, raw, attrs, width, height, sort=False)
        if len(events) and events.t[0] < last:
            raise EventFileError(path, f"timestamps decrease at index {i} ({last} -> {int(events.t[0])}); "
                                       "sort the file first (evdenoise convert --sort)")
        last = int(events.t[-1]) if len(events) else last
        yield events


def read_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """Root attributes of an HDF5 file; none for other formats (their sensor size is read with the events)."""
    from .formats import is_hdf5

    if not is_hdf5(path):
        return {}
    with open_h5(path) as f:
        return dict(f.attrs)


def read_window(path: str | os.PathLike, t0: int, t1: int, width: int | None = None,
                height: int | None = None, group: str = "events") -> Events:
    """Events with t0 <= t < t1 from a sorted file, without loading the whole file.

    Binary search runs over the on-disk ``t`` dataset (O(log n) chunk reads), then only
    the matching slice of each dataset is read.
    """
    with open_h5(path) as f:
        g = _events_group(path, f, group)
        tds = g["t"]
        attrs = _group_attrs(path, f, g)
        offset = int(attrs.get("t_offset", 0))

        def first_at_least(value: int) -> int:
            lo, hi = 0, tds.shape[0]
            while lo < hi:
                mid = (lo + hi) // 2
                if int(tds[mid]) + offset < value:
                    lo = mid + 1
                else:
                    hi = mid
            return lo

        try:
            i0, i1 = first_at_least(t0), first_at_least(t1)
            raw = read_fields(g, i0, i1)
        except (OSError, ValueError) as err:
            raise EventFileError(path, f"cannot read /{group} ({err}); is the file truncated?") from None
    return _validated(path, raw, attrs, width, height, sort=False, where=f"/{group}")


def _event_datasets(g: h5py.Group, n: int, chunk: int | None = None) -> list[h5py.Dataset]:
    """Typed, chunked, compressed, resizable ``t, x, y, p`` datasets of length ``n`` under ``g``."""
    dtypes = (np.int64, np.uint16, np.uint16, np.int8)
    chunk = chunk or min(max(n, 1), 1 << 16)
    return [g.create_dataset(name, shape=(n,), dtype=dt, chunks=(chunk,), compression="gzip",
                             compression_opts=GZIP_LEVEL, shuffle=True, maxshape=(None,)) for name, dt in zip(FIELDS, dtypes)]


def write_events_group(f: h5py.File, events: Events, group: str = "events") -> None:
    """Write ``events`` under ``group`` of an open file."""
    for ds, a in zip(_event_datasets(f.require_group(group), len(events)), (events.t, events.x, events.y, events.p)):
        ds[...] = a


@contextmanager
def event_writer(path: str | os.PathLike, width: int | None, height: int | None,
                 attrs: Mapping[str, Any] | None = None,
                 producer: str = "evdenoise") -> Iterator[Callable[[Events], None]]:
    """Yield ``append(events)`` that adds sorted events to an event file written atomically (renamed in
    place when the block ends without error), so a long stream never has to be in memory at once.

    ``width``/``height`` None: the largest of the appended blocks' sizes (1x1 for none), as
    :func:`stream_blocks` sizes the blocks of a file of unknown size."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for k, v in (attrs or {}).items():
            if k != "t_offset":  # timestamps are written with any offset already applied
                f.attrs[k] = v
        f.attrs["producer"] = f"{producer} (evdenoise {__version__})"
        datasets = _event_datasets(f.create_group("events"), 0, chunk=1 << 16)
        last, size = [np.iinfo(np.int64).min], [width, height]
        sized = width is not None and height is not None

        def append(events: Events) -> None:
            if not len(events):
                return
            if events.t[0] < last[0] or np.any(np.diff(events.t) < 0):
                raise ValueError(f"{path}: events appended out of time order")
            n = datasets[0].shape[0]
            for ds, a in zip(datasets, (events.t, events.x, events.y, events.p)):
                ds.resize((n + len(a),))
                ds[n:] = a
            last[0] = int(events.t[-1])
            if not sized:
                size[:] = max(size[0] or 1, events.width), max(size[1] or 1, events.height)

        yield append
        f.attrs.update({"width": size[0] or 1, "height": size[1] or 1})


def write_events(path: str | os.PathLike, events: Events, attrs: Mapping[str, Any] | None = None,
                 producer: str = "evdenoise") -> None:
    """Atomically write a sorted event file with width/height/producer attributes."""
    if len(events) > 1 and np.any(np.diff(events.t) < 0):
        events = events.sorted()
    with event_writer(path, events.width, events.height, attrs, producer) as append:
        append(events)
