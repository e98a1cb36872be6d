"""Reading, validating and writing event files (evdenoise.events)."""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evdenoise.events import (EventFileError, Events, atomic_path, read_events, read_fields, read_window,
                              write_events)


def write_raw(path: Path, attrs: dict[str, Any] | None = None, **datasets: Any) -> Path:
    """Write arbitrary /events datasets (bypassing validation) for bad-input tests."""
    with h5py.File(path, "w") as f:
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
        g = f.create_group("events")
        for name, data in datasets.items():
            g.create_dataset(name, data=data)
    return path


def good(n: int = 5) -> dict[str, np.ndarray]:
    return {"t": np.arange(n, dtype=np.int64) * 10, "x": np.arange(n) % 4, "y": np.arange(n) % 3,
            "p": np.array([1, -1] * n)[:n]}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_write_read_round_trip(tmp_path: Path, tiny_events) -> None:
    ev = tiny_events(500)
    path = tmp_path / "ev.h5"
    write_events(path, ev, attrs={"source": "unit test"}, producer="tester")
    back = read_events(path)
    assert back.equals(ev)
    with h5py.File(path) as f:
        assert f.attrs["width"] == 16 and f.attrs["height"] == 12
        assert f.attrs["producer"].startswith("tester") and f.attrs["source"] == "unit test"
        for name, dtype in zip("txyp", (np.int64, np.uint16, np.uint16, np.int8)):
            ds = f["events"][name]
            assert ds.dtype == dtype and ds.chunks is not None and ds.compression == "gzip"


def test_write_sorts_and_drops_t_offset(tmp_path: Path) -> None:
    ev = Events.from_arrays([30, 10, 20], [0, 1, 2], [0, 0, 0], [1, 1, -1], 4, 4)
    write_events(tmp_path / "a.h5", ev, attrs={"t_offset": 1000})
    back = read_events(tmp_path / "a.h5")
    # Timestamps were written with any offset applied, so it must not be added twice.
    assert back.t.tolist() == [10, 20, 30] and back.p.tolist() == [1, -1, 1]


@pytest.mark.parametrize("p", [[1, -1, 1, -1], [1, 0, 1, 0], [True, False, True, False],
                               np.array([1.0, -1.0, 1.0, -1.0])])
@pytest.mark.parametrize("xy_dtype", [np.uint8, np.int16, np.int32, np.uint64])
def test_polarity_and_integer_dtypes(tmp_path: Path, p: Any, xy_dtype: type) -> None:
    path = write_raw(tmp_path / "a.h5", {"width": 8, "height": 8},
                     t=np.array([1, 2, 2, 5], dtype=np.uint32), x=np.array([0, 1, 2, 7], xy_dtype),
                     y=np.array([7, 6, 5, 0], xy_dtype), p=p)
    ev = read_events(path)
    assert ev.p.tolist() == [1, -1, 1, -1] and ev.p.dtype == np.int8
    assert ev.t.dtype == np.int64 and ev.x.dtype == np.uint16 and ev.x.tolist() == [0, 1, 2, 7]


def test_t_offset_attribute_and_dsec_dataset(tmp_path: Path) -> None:
    d = good()
    a = write_raw(tmp_path / "a.h5", {"width": 4, "height": 3, "t_offset": 1_000_000}, **d)
    assert read_events(a).t.tolist() == (d["t"] + 1_000_000).tolist()
    b = write_raw(tmp_path / "b.h5", {"width": 4, "height": 3}, **d)
    with h5py.File(b, "a") as f:  # DSEC keeps t_offset as a root dataset
        f["t_offset"] = np.int64(7)
    assert read_events(b).t.tolist() == (d["t"] + 7).tolist()
    assert read_window(b, 17, 37).t.tolist() == [17, 27]


def test_sensor_size_attrs_then_arguments_then_inferred(tmp_path: Path, caplog) -> None:
    d = good()
    with_attrs = write_raw(tmp_path / "a.h5", {"width": 10, "height": 9}, **d)
    assert (read_events(with_attrs, width=99, height=99).width, read_events(with_attrs).height) == (10, 9)
    bare = write_raw(tmp_path / "b.h5", **d)
    ev = read_events(bare, width=20, height=30)
    assert (ev.width, ev.height) == (20, 30)
    with caplog.at_level(logging.WARNING):
        ev = read_events(bare)
    assert (ev.width, ev.height) == (4, 3)
    assert "inferred 4x3" in caplog.text and "b.h5" in caplog.text


def test_empty_file_is_valid(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "e.h5", {"width": 4, "height": 3},
                     t=np.zeros(0, np.int64), x=np.zeros(0, np.uint16), y=np.zeros(0, np.uint16),
                     p=np.zeros(0, np.int8))
    ev = read_events(path)
    assert len(ev) == 0 and (ev.width, ev.height) == (4, 3)
    write_events(tmp_path / "e2.h5", Events.empty(4, 3))
    assert len(read_events(tmp_path / "e2.h5")) == 0
    assert len(read_window(path, 0, 100)) == 0


def truncated(tmp_path: Path, tiny_events) -> Path:
    path = tmp_path / "cut.h5"
    write_events(path, tiny_events(20_000))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


BAD_FILES = {
    "no /events group": lambda d, tmp: (h5py.File(tmp / "bad.h5", "w").close(), tmp / "bad.h5")[1],
    "lacks dataset(s) /events/p": lambda d, tmp: write_raw(tmp / "bad.h5", t=d["t"], x=d["x"], y=d["y"]),
    "unequal lengths": lambda d, tmp: write_raw(tmp / "bad.h5", **{**d, "x": d["x"][:-1]}),
    "timestamps decrease at index 2 (5 -> 3)": lambda d, tmp: write_raw(tmp / "bad.h5",
                                                              **{**d, "t": np.array([0, 5, 3, 8, 9])}),
    "outside the 4x3 sensor": lambda d, tmp: write_raw(tmp / "bad.h5", {"width": 4, "height": 3},
                                                       **{**d, "x": np.array([0, 1, 2, 3, 4])}),
    "negative pixel coordinates": lambda d, tmp: write_raw(tmp / "bad.h5", **{**d, "y": np.array([0, -1, 0, 0, 0])}),
    "/events/x contains NaN": lambda d, tmp: write_raw(tmp / "bad.h5", **{**d, "x": np.array([0, np.nan, 0, 0, 0])}),
    "/events/t contains non-integer": lambda d, tmp: write_raw(tmp / "bad.h5", **{**d, "t": d["t"] + 0.5}),
    "/events/p has values": lambda d, tmp: write_raw(tmp / "bad.h5", **{**d, "p": np.array([1, 0, -1, 1, 1])}),
    "not a readable HDF5 file": lambda d, tmp: (tmp / "bad.h5").write_text("t,x,y,p\n1,2,3,1\n") and tmp / "bad.h5",
    "file does not exist": lambda d, tmp: tmp / "missing.h5",
}


@pytest.mark.parametrize("problem", list(BAD_FILES))
def test_bad_files_name_file_and_problem(tmp_path: Path, problem: str) -> None:
    path = BAD_FILES[problem](good(), tmp_path)
    with pytest.raises(EventFileError) as err:
        read_events(path)
    assert err.value.path == str(path) and str(path) in str(err.value)
    assert problem in str(err.value)


def test_truncated_file(tmp_path: Path, tiny_events) -> None:
    path = truncated(tmp_path, tiny_events)
    for read in (read_events, lambda p: read_window(p, 0, 50_000)):
        with pytest.raises(EventFileError, match=str(path)):
            read(path)


def test_sort_only_when_asked(tmp_path: Path) -> None:
    d = good()
    path = write_raw(tmp_path / "u.h5", **{**d, "t": np.array([0, 5, 3, 8, 9])})
    with pytest.raises(EventFileError, match="sort=True"):
        read_events(path)
    ev = read_events(path, sort=True)
    assert ev.t.tolist() == [0, 3, 5, 8, 9] and ev.x.tolist() == [0, 2, 1, 3, 0]


def test_inputs_are_never_modified(tmp_path: Path, tiny_events) -> None:
    path = tmp_path / "in.h5"
    write_events(path, tiny_events(1000))
    before = digest(path)
    read_events(path)
    read_window(path, 10_000, 20_000)
    with pytest.raises(EventFileError):
        read_events(path, group="nope")
    assert digest(path) == before


def test_atomic_write_leaves_no_partial_file(tmp_path: Path, tiny_events) -> None:
    target = tmp_path / "out.h5"
    with pytest.raises(TypeError):
        write_events(target, tiny_events(), attrs={"bad": object()})  # h5py cannot store an object
    assert list(tmp_path.iterdir()) == []
    write_events(target, tiny_events(10))
    before = digest(target)
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert digest(target) == before and list(tmp_path.iterdir()) == [target]


@settings(max_examples=40, deadline=None)
@given(st.integers(-10, 1100), st.integers(0, 600))
def test_read_window_matches_full_read(tmp_path_factory, t0: int, length: int) -> None:
    path = tmp_path_factory.getbasetemp() / "window.h5"
    if not path.exists():
        rng = np.random.default_rng(1)
        t = np.sort(rng.integers(0, 1000, 3000))
        write_events(path, Events.from_arrays(t, rng.integers(0, 9, 3000), rng.integers(0, 7, 3000),
                                              rng.integers(0, 2, 3000), 9, 7))
    assert read_window(path, t0, t0 + length).equals(read_events(path).between(t0, t0 + length))


def test_read_window_reads_only_a_slice(tmp_path: Path, tiny_events, monkeypatch) -> None:
    path = tmp_path / "big.h5"
    write_events(path, tiny_events(200_000))
    read_sizes: list[int] = []
    original = h5py.Dataset.__getitem__

    def counting(self: h5py.Dataset, key: Any) -> Any:
        out = original(self, key)
        read_sizes.append(np.size(out))
        return out

    chunk_bytes: list[int] = []
    pread = os.pread
    monkeypatch.setattr(h5py.Dataset, "__getitem__", counting)
    monkeypatch.setattr("evdenoise.h5chunks.os.pread", lambda fd, n, at: chunk_bytes.append(n) or pread(fd, n, at))
    window = read_window(path, 50_000, 50_500)
    assert 0 < len(window) < 2000
    assert max(read_sizes) == 1  # the binary search's single timestamps
    assert 0 < sum(chunk_bytes) < path.stat().st_size / 2  # the chunks holding the window, never the whole file


@pytest.mark.parametrize("layout", [{"compression": "gzip", "shuffle": True}, {"compression": "gzip"},
                                    {"compression": "gzip", "shuffle": True, "fletcher32": True}, {}])
def test_chunked_reads_give_what_h5py_gives(tmp_path: Path, layout: dict[str, Any]) -> None:
    # Shuffle+gzip and gzip alone are read by chunks in threads (h5chunks); checksums and contiguous
    # datasets through h5py. Ranges start and end inside chunks, at their edges, and in the short last one.
    rng = np.random.default_rng(3)
    n = 100_003
    arrays = {"t": np.sort(rng.integers(0, 10**6, n)).astype(">i8"), "x": rng.integers(0, 640, n).astype(np.uint16),
              "y": rng.integers(0, 480, n).astype(np.int32), "p": rng.choice([-1, 1], n).astype(np.int8)}
    path = tmp_path / "layout.h5"
    with h5py.File(path, "w") as f:
        for k, a in arrays.items():
            f.create_dataset(f"events/{k}", data=a, chunks=(4096,) if layout else None, **layout)
    with h5py.File(path, "r") as f:
        for start, stop in [(0, n), (1, 4095), (4095, 4097), (5000, 70_001), (99_000, n + 50)]:
            got = read_fields(f["events"], start, stop)
            assert all(np.array_equal(got[k], a[start:stop]) for k, a in arrays.items())


def test_a_corrupt_chunk_is_an_error_naming_the_file(tmp_path: Path, tiny_events) -> None:
    path = tmp_path / "corrupt.h5"
    write_events(path, tiny_events(200_000))
    with h5py.File(path, "r") as f:
        info = f["events/t"].id.get_chunk_info(1)
    with path.open("r+b") as f:  # our own file: scribble over the middle of t's second chunk
        f.seek(info.byte_offset + info.size // 2)
        f.write(bytes(64))
    with pytest.raises(EventFileError, match=rf"{path.name}.*cannot read /events"):
        read_events(path)


def test_big_endian_datasets_read_as_native_ones(tmp_path: Path, tiny_events) -> None:
    ev = tiny_events(5000)
    path = tmp_path / "big_endian.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update(width=ev.width, height=ev.height)
        for k in ("t", "x", "y", "p"):
            a = getattr(ev, k)
            f.create_dataset(f"events/{k}", data=a.astype(a.dtype.newbyteorder(">")), chunks=(1024,),
                             compression="gzip", shuffle=True)
    assert read_events(path).equals(ev)
