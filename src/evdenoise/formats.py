"""Event files in camera and data-set formats other than this project's HDF5 layout.

Camera formats go through ``faery`` (Rust decoders, maintained by the ICNS group, one reader for Prophesee
``.raw`` EVT 2.0/3.0 and ``.dat``, iniVation AEDAT4 and ``.es``, with writers for the same formats, which the
tests use for round trips). faery's EVT 2.1 decoder is not implemented (it panics), so EVT 2.1 ``.raw`` files go
through ``evlib`` (Rust decoders too, imported only for them: it pulls polars, pyarrow and pandera in); ``aedat``
reads AEDAT4 only; ``expelliarmus`` reads Prophesee formats only and was last released in 2023.
Text files of whole numbers go through ``textparse`` (a compiled parser in threads: pandas' general parser was
the whole cost), any other text through pandas; NumPy files through NumPy. Every reader returns raw ``t, x, y, p`` arrays and
the attributes the file carries (sensor size where it has one); ``events.read_events`` validates them the same
way for every format.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .errors import EventFileError

if TYPE_CHECKING:  # numpy, faery and pandas load only when a file is read: the workflow imports this module to plan
    import numpy as np

HDF5_SUFFIXES = (".h5", ".hdf5")
CAMERA_SUFFIXES = {".raw": "evt", ".dat": "dat", ".aedat4": "aedat", ".es": "es"}
TEXT_SUFFIXES = {".csv": ",", ".txt": r"\s+"}
NUMPY_SUFFIXES = (".npy", ".npz")
EVENT_SUFFIXES = (*HDF5_SUFFIXES, *CAMERA_SUFFIXES, *TEXT_SUFFIXES, *NUMPY_SUFFIXES)
# Field names other tools use for the same thing, so a .npy/.npz from them reads as is.
_ALIASES = {"t": ("t", "ts", "timestamp", "timestamps"), "x": ("x",), "y": ("y",),
            "p": ("p", "on", "polarity", "pol")}


@dataclass(frozen=True)
class TextFormat:
    """How a CSV/TXT event file is laid out: column order (a permutation of ``txyp``) and time unit."""

    columns: str = "txyp"
    time_unit: str = "us"  # "us" (integers) or "s" (decimal seconds, as many data sets write them)

    def __post_init__(self) -> None:
        if sorted(self.columns) != sorted("txyp"):
            raise ValueError(f"text columns {self.columns!r}: give the order of t, x, y, p, e.g. 'txyp' or 'xytp'")
        if self.time_unit not in ("us", "s"):
            raise ValueError(f"text time unit {self.time_unit!r}: 'us' or 's'")


def is_hdf5(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in HDF5_SUFFIXES


def event_files(folder: str | os.PathLike) -> list[Path]:
    """Every file of ``folder`` in a readable event format, sorted by name."""
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in EVENT_SUFFIXES)


def read_foreign(path: str | os.PathLike, text: TextFormat | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Raw ``{t, x, y, p}`` arrays and attributes of a non-HDF5 event file, chosen by its suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise EventFileError(path, "file does not exist")
    if suffix in CAMERA_SUFFIXES:
        return _read_camera(path, CAMERA_SUFFIXES[suffix])
    if suffix in TEXT_SUFFIXES:
        return _read_text(path, TEXT_SUFFIXES[suffix], text or TextFormat()), {}
    if suffix in NUMPY_SUFFIXES:
        return _read_numpy(path), {}
    raise EventFileError(path, f"unknown event file type {suffix!r}; readable: {', '.join(EVENT_SUFFIXES)}")


@contextlib.contextmanager
def _decoding(path: Path, what: str) -> Iterator[None]:
    """Any failure of faery or evlib inside becomes an EventFileError naming the file. A Rust panic is a
    BaseException, so those are caught too; interrupts and a closed generator pass through."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit, GeneratorExit, EventFileError):
        raise
    except BaseException as err:
        raise EventFileError(path, f"cannot decode as {what} ({err})") from None


def _read_camera(path: Path, file_type: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    attrs, blocks = camera_stream(path, 1 << 62)
    raw = next(blocks(), None)  # one block of every event (the block size above any file's count), or none
    return (_faery_raw({k: [] for k in _FAERY_FIELDS}) if raw is None else raw), attrs


def camera_stream(path: str | os.PathLike, block: int
                  ) -> tuple[dict[str, Any], Callable[[], Iterator[dict[str, np.ndarray]]]]:
    """A camera file as (its attributes, a function that decodes it afresh into raw blocks of about ``block``
    events): faery's decoders, evlib's for EVT 2.1 (``_evt21_blocks``). Raises EventFileError."""
    import faery

    path = Path(path)
    file_type = CAMERA_SUFFIXES[path.suffix.lower()]
    header = _prophesee_header(path) if file_type in ("evt", "dat") else ""
    if file_type in ("evt", "dat") and not header:
        # faery decodes any bytes after a missing header (as a 1280x720 EVT stream): refuse instead
        raise EventFileError(path, f"no Prophesee header ('%' lines) at the start of this .{path.suffix[1:]} file")
    if file_type == "evt" and re.search(r"^% (evt 2\.1|format EVT21)", header, re.M | re.I):
        return _evt21_size(path, header), lambda: _evt21_blocks(path, header, block)
    with _decoding(path, file_type):
        width, height = faery.events_stream_from_file(path, file_type=file_type).dimensions()
    return {"width": int(width), "height": int(height)}, lambda: _faery_blocks(path, file_type, block)


_FAERY_FIELDS = {"t": "t", "x": "x", "y": "y", "p": "on"}  # ours: faery's


def _faery_blocks(path: Path, file_type: str, block: int) -> Iterator[dict[str, np.ndarray]]:
    """Raw blocks of at least ``block`` events (but the last), each field joined from faery's packets on its
    own: contiguous arrays, and t widened while it is copied."""
    import faery

    pending: dict[str, list[np.ndarray]] = {k: [] for k in _FAERY_FIELDS}
    size = 0
    with _decoding(path, file_type):
        for packet in faery.events_stream_from_file(path, file_type=file_type):
            for field, name in _FAERY_FIELDS.items():
                pending[field].append(packet[name])
            size += len(packet)
            if size >= block:
                yield _faery_raw(pending)
                pending, size = {k: [] for k in _FAERY_FIELDS}, 0
    if size:
        yield _faery_raw(pending)


def _faery_raw(pending: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    import faery
    import numpy as np

    if not pending["t"]:
        empty = np.zeros(0, dtype=faery.EVENTS_DTYPE)
        return {field: empty[name] for field, name in _FAERY_FIELDS.items()}
    return {field: np.concatenate(parts, dtype=np.int64 if field == "t" else None) for field, parts in pending.items()}


def _read_text(path: Path, separator: str, fmt: TextFormat) -> dict[str, np.ndarray]:
    return next(_text_blocks(path, separator, fmt, None))


def _text_blocks(path: Path, separator: str, fmt: TextFormat, block: int | None) -> Iterator[dict[str, np.ndarray]]:
    """Raw blocks of a CSV/TXT file: byte ranges of about ``block`` lines each (None: one block), cut at line
    ends. Lines of whole numbers go through ``textparse``'s threads, anything else through pandas."""
    import numpy as np

    from .textparse import bytes_per_line, line_end

    skip, start = _text_preamble(path)
    size = path.stat().st_size
    buf = np.memmap(path, np.uint8, mode="r") if size > start else np.zeros(0, np.uint8)  # no map of 0 bytes
    ncols = len(_text_fields(bytes(buf[start:line_end(buf, start)]), separator))
    if block is None:
        yield _text_range(path, buf, (start, size), ncols, separator, fmt, skip)
        return
    step = block * bytes_per_line(buf, start)
    at = start
    while at < size:  # no lines past the preamble: no blocks
        end = line_end(buf, min(at + step, size))
        yield _text_range(path, buf, (at, end), ncols, separator, fmt, None)
        at = end


def _text_range(path: Path, buf: np.ndarray, span: tuple[int, int], ncols: int, separator: str, fmt: TextFormat,
                skip: int | None) -> dict[str, np.ndarray]:
    """Raw arrays of the lines in ``buf[span]``: compiled for whole numbers in microseconds, else pandas (on the
    file itself when the span is the whole file, ``skip`` lines in, so its errors give the file's line numbers)."""
    from .textparse import parse_integers

    if fmt.time_unit == "us" and ncols >= len(fmt.columns):
        cols = parse_integers(buf, *span, ncols, ord(separator) if len(separator) == 1 else 0)
        if cols is not None:
            return {k: cols[fmt.columns.index(k)] for k in _ALIASES}
    return _pandas_text(path, path if skip is not None else io.BytesIO(bytes(buf[span[0]:span[1]])), separator, fmt,
                        skip or 0)


def _pandas_text(path: Path, source: Any, separator: str, fmt: TextFormat, skip: int) -> dict[str, np.ndarray]:
    import numpy as np
    import pandas as pd

    try:
        # No names/usecols/comment: each of those halves the C parser's speed; columns are taken by position.
        return _text_raw(path, pd.read_csv(source, sep=separator, header=None, skiprows=skip, engine="c"), fmt)
    except EventFileError:
        raise
    except pd.errors.EmptyDataError:  # nothing past the preamble: a recording of no events
        return {k: np.zeros(0, np.int64) for k in _ALIASES}
    except (ValueError, pd.errors.ParserError) as err:
        raise EventFileError(path, f"cannot read as {fmt.columns} text columns ({err})") from None


def _text_preamble(path: Path) -> tuple[int, int]:
    """(lines, bytes) before the events: leading ``#`` comments, then a header line if the next line is not
    numbers."""
    skip = offset = 0
    with path.open("rb") as f:
        for line in f:
            if not line.lstrip().startswith(b"#"):
                first = line.replace(b",", b" ").split()
                header = bool(first) and not all(_is_number(v.decode("latin-1")) for v in first)
                return skip + header, offset + len(line) * header
            skip, offset = skip + 1, offset + len(line)
    return skip, offset


def _text_fields(line: bytes, separator: str) -> list[bytes]:
    return line.split(separator.encode()) if len(separator) == 1 else line.split()


def _text_raw(path: Path, table: Any, fmt: TextFormat) -> dict[str, np.ndarray]:
    import numpy as np

    if table.shape[1] < len(fmt.columns):
        raise EventFileError(path, f"{table.shape[1]} text column(s); expected at least {len(fmt.columns)} "
                                   f"({fmt.columns})")
    raw = {k: table.iloc[:, fmt.columns.index(k)].to_numpy() for k in _ALIASES}
    if fmt.time_unit == "s":
        raw["t"] = np.round(raw["t"].astype(np.float64) * 1e6)
    elif raw["t"].dtype.kind == "f" and not np.array_equal(raw["t"], np.round(raw["t"])):
        raise EventFileError(path, "timestamps are not whole microseconds; for seconds pass --time-unit s")
    return raw


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _load_numpy(path: Path, mmap: bool) -> tuple[Any, dict[str, str]]:
    """The loaded file (a memory map of a .npy with ``mmap``) and the name of each of t, x, y, p in it."""
    import numpy as np

    try:
        loaded = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (OSError, ValueError, EOFError) as err:
        raise EventFileError(path, f"not a readable NumPy file ({err})") from None
    names = set(loaded.files) if isinstance(loaded, np.lib.npyio.NpzFile) else set(loaded.dtype.names or ())
    fields = {}
    for field, aliases in _ALIASES.items():
        found = next((a for a in aliases if a in names), None)
        if found is None:
            raise EventFileError(path, f"no {field!r} field (looked for {', '.join(aliases)}); has {sorted(names)}")
        fields[field] = found
    return loaded, fields


def _read_numpy(path: Path) -> dict[str, np.ndarray]:
    """A .npy through a memory map (its fields are read once, by the validating scan, not copied first); a .npz's
    members in threads, each through its own handle (zlib inflates and checks CRCs with the GIL released)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    loaded, fields = _load_numpy(path, mmap=path.suffix.lower() == ".npy")
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        return {field: np.asarray(loaded[name]) for field, name in fields.items()}
    loaded.close()
    with ThreadPoolExecutor(len(fields)) as pool:
        return dict(zip(fields, pool.map(lambda name: _npz_member(path, name), fields.values())))


def _npz_member(path: Path, name: str) -> np.ndarray:
    """One member of a .npz: a stored one mapped (:func:`_stored_member`), a compressed one through ``np.load``."""
    import numpy as np

    stored = _stored_member(path, name)
    return np.load(path, allow_pickle=False)[name] if stored is None else stored


def _stored_member(path: Path, name: str) -> np.ndarray | None:
    """A stored (uncompressed) member of a .npz, memory-mapped once ISA-L's crc32 matches the archive's (zipfile's
    own reading copies it and checks it with zlib, at half the speed); None for a compressed or empty one."""
    import zipfile

    import numpy as np
    from isal import isal_zlib

    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(f"{name}.npy")
            if info.compress_type != zipfile.ZIP_STORED or not info.file_size:
                return None
            f, dtype, count = _npy_member(archive, name, path)
            header = f.tell()
            f.close()
        with path.open("rb") as raw:  # the local header's name and extra field lengths say where the data starts
            raw.seek(info.header_offset + 26)
            start = info.header_offset + 30 + sum(int.from_bytes(raw.read(2), "little") for _ in range(2))
        data = np.memmap(path, np.uint8, mode="r", offset=start, shape=(info.file_size,))
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise EventFileError(path, f"member {name!r} is not readable ({err})") from None
    if isal_zlib.crc32(data) != info.CRC:
        raise EventFileError(path, f"member {name!r} fails its CRC check; is the file damaged?")
    body = np.asarray(data[header:header + count * dtype.itemsize])
    if len(body) < count * dtype.itemsize:
        raise EventFileError(path, f"member {name!r} ends early; is the file truncated?")
    return body.view(dtype)


def _numpy_blocks(path: Path, block: int) -> Iterator[dict[str, np.ndarray]]:
    """Raw blocks of a .npy file of named fields, ``block`` rows each, read through a memory map."""
    import numpy as np

    loaded, fields = _load_numpy(path, mmap=True)
    if loaded.ndim != 1:
        raise EventFileError(path, f"a .npy of events must be one-dimensional, has shape {loaded.shape}")
    for i in range(0, len(loaded), block):
        part = loaded[i:i + block]
        yield {field: np.array(part[name]) for field, name in fields.items()}


def _npz_blocks(path: Path, block: int) -> Iterator[dict[str, np.ndarray]]:
    """Raw blocks of a .npz of one array per field, ``block`` rows each: stored members are mapped (after their CRC
    check), compressed ones inflated as they are read (zipfile streams them), so no archive is in memory whole."""
    import zipfile

    import numpy as np

    loaded, fields = _load_numpy(path, mmap=False)  # the names only: NpzFile reads members on access
    loaded.close()
    stored = {field: _stored_member(path, name) for field, name in fields.items()}
    if all(a is not None for a in stored.values()):  # mapped: a block is a copy out of the map
        yield from _mapped_blocks(path, stored, block)
        return
    with zipfile.ZipFile(path) as archive:
        members = {field: _npy_member(archive, name, path) for field, name in fields.items()}
        total = _common_length(path, {count for _, _, count in members.values()})
        for i in range(0, total, block):
            k = min(block, total - i)
            raw = {field: np.frombuffer(f.read(k * dtype.itemsize), dtype) for field, (f, dtype, _) in members.items()}
            if any(len(a) < k for a in raw.values()):
                raise EventFileError(path, "a member ends early; is the file truncated?")
            yield raw


def _common_length(path: Path, counts: set[int]) -> int:
    if len(counts) != 1:
        raise EventFileError(path, f"the fields have different lengths ({sorted(counts)})")
    return counts.pop()


def _mapped_blocks(path: Path, arrays: Mapping[str, np.ndarray], block: int) -> Iterator[dict[str, np.ndarray]]:
    import numpy as np

    for i in range(0, _common_length(path, {len(a) for a in arrays.values()}), block):
        yield {field: np.array(a[i:i + block]) for field, a in arrays.items()}


def _npy_member(archive: Any, name: str, path: Path) -> tuple[Any, np.dtype, int]:
    """(the open member ``name`` of a .npz past its header, its dtype, its length) of a one-dimensional array."""
    import numpy as np

    f = archive.open(f"{name}.npy")
    try:
        version = np.lib.format.read_magic(f)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        shape, _, dtype = read_header[version](f)
    except (KeyError, ValueError) as err:
        raise EventFileError(path, f"member {name!r} is not a readable .npy ({err})") from None
    if len(shape) != 1 or dtype.hasobject:
        raise EventFileError(path, f"member {name!r} must be a one-dimensional array of numbers, is {shape} {dtype}")
    return f, dtype, shape[0]


def foreign_stream(path: str | os.PathLike, block: int, text: TextFormat | None = None
                   ) -> tuple[dict[str, Any], Callable[[], Iterator[dict[str, np.ndarray]]]]:
    """(attributes, a function that reads the file afresh in raw blocks of about ``block`` events) for a
    non-HDF5 file read by parts: camera files (``camera_stream``), CSV/TXT (byte ranges cut at line ends), .npy (a memory map),
    .npz (each member inflated as it is read)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise EventFileError(path, "file does not exist")
    if suffix in CAMERA_SUFFIXES:
        return camera_stream(path, block)
    if suffix in TEXT_SUFFIXES:
        return {}, lambda: _text_blocks(path, TEXT_SUFFIXES[suffix], text or TextFormat(), block)
    if suffix == ".npy":
        return {}, lambda: _numpy_blocks(path, block)
    if suffix == ".npz":
        return {}, lambda: _npz_blocks(path, block)
    raise EventFileError(path, f"unknown event file type {suffix!r}; readable: {', '.join(EVENT_SUFFIXES)}")


def _prophesee_header(path: Path) -> str:
    """The ``%`` lines a Prophesee file starts with ("" when it has none)."""
    lines = []
    with path.open("rb") as f:
        for line in iter(f.readline, b""):
            if not line.startswith(b"%") or len(lines) > 1000:
                break
            lines.append(line.decode("latin-1"))
            if line.strip() == b"% end":
                break
    return "".join(lines)


def _evt21_size(path: Path, header: str) -> dict[str, int]:
    """The sensor size from an EVT 2.1 header's ``format`` or ``geometry`` line; refuses a partial last word."""
    found = (re.search(r"width=(\d+).*?height=(\d+)", header) or re.search(r"geometry (\d+)x(\d+)", header))
    flipped = re.search(r"height=(\d+).*?width=(\d+)", header)
    if not (found or flipped):
        raise EventFileError(path, "EVT 2.1 header names no sensor size (format width/height or geometry)")
    width, height = map(int, found.groups()) if found else map(int, flipped.groups()[::-1])
    tail = (path.stat().st_size - len(header.encode("latin-1"))) % 8
    if tail:  # evlib skips a partial last word silently
        raise EventFileError(path, f"EVT 2.1 data ends {tail} bytes into a 64-bit word; is the file truncated?")
    return {"width": width, "height": height}


_EVT21_TIME_HIGH = 8  # the word type (bits 60-63) carrying a timestamp's upper bits


def _evt21_blocks(path: Path, header: str, block: int) -> Iterator[dict[str, np.ndarray]]:
    """Raw blocks of an EVT 2.1 file. evlib decodes a file only whole, so a file of more than ``block`` words is
    cut just before TIME_HIGH words, where every later event is later than every earlier one and the next part
    starts from a full timestamp; each part, behind the header, is decoded from a temporary file (memory stays
    bounded at the price of one more write). evlib unwraps TIME_HIGH's 28 bits (4.8 h) inside what it decodes;
    a part that starts past a wrap is lifted here (``_evt21_unwrapped``), so parts give the whole file's times."""
    import tempfile

    import numpy as np

    head = header.encode("latin-1")
    empty = path.stat().st_size == len(head)  # np.memmap refuses a map of no bytes
    words = np.zeros(0, "<u8") if empty else np.memmap(path, "<u8", mode="r", offset=len(head))
    if len(words) <= block:
        yield _evt21_decode(path, path)
        return
    with tempfile.TemporaryDirectory(prefix="evdenoise-evt21-") as tmp:
        part = Path(tmp) / path.name
        lift, last = 0, None
        for i, j in _evt21_cuts(words, block):
            part.write_bytes(head + words[i:j].tobytes())
            raw = _evt21_decode(part, path)
            lift, last = _evt21_unwrapped(raw, lift, last)
            yield raw


_EVT21_WRAP = 1 << 34  # µs: TIME_HIGH's 28 bits above the event words' 6


def _evt21_unwrapped(raw: dict[str, np.ndarray], lift: int, last: int | None) -> tuple[int, int | None]:
    """Add ``lift`` to a part's timestamps, and a wrap more for each time the part starts over half a wrap below the
    last part's ``last`` event (evlib's own unwrapping, across parts); returns the new (lift, last)."""
    if not len(raw["t"]):
        return lift, last
    while last is not None and int(raw["t"][0]) + lift < last - _EVT21_WRAP // 2:
        lift += _EVT21_WRAP
    raw["t"] += lift
    return lift, int(raw["t"][-1])


def _evt21_cuts(words: np.ndarray, block: int) -> Iterator[tuple[int, int]]:
    """(first, end) word ranges of at least ``block`` words (but the last), each end at a TIME_HIGH word."""
    import numpy as np

    i, n = 0, len(words)
    while i < n:
        j = i + block
        while j < n:  # the first TIME_HIGH from i + block on (cameras write one every 64 µs that hold events)
            high = np.flatnonzero((words[j:j + block] >> np.uint64(60)) == _EVT21_TIME_HIGH)
            if len(high):
                j += int(high[0])
                break
            j += block
        yield i, min(j, n)
        i = min(j, n)


def _evt21_decode(file: Path, path: Path) -> dict[str, np.ndarray]:
    """``file`` (``path`` or a part of it) decoded by evlib into raw arrays; errors name ``path``."""
    import numpy as np

    with _decoding(path, "EVT 2.1"):  # evlib raises OSError
        import evlib

        frame = evlib.load_events(str(file)).collect()
    t = frame["t"].cast(int).to_numpy().astype(np.int64)  # a µs duration column
    return {"t": t, "x": frame["x"].to_numpy(), "y": frame["y"].to_numpy(), "p": frame["polarity"].to_numpy() > 0}
