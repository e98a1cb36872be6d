"""Event formats: each reader against the HDF5 conversion, DSEC's compressed layout, bad files, file modes."""
from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import faery
import h5py
import hdf5plugin
import numpy as np
import pandas as pd
import pytest

from evdenoise.cli import main
from evdenoise.events import EventFileError, Events, read_events, stream_blocks, stream_events, write_events
from evdenoise.formats import TextFormat, event_files
from evdenoise.samples import folder_samples, inference_samples

FORMATS_DIR = Path(__file__).resolve().parents[2] / "shared/data/formats"
EVT3 = FORMATS_DIR / "prophesee_evt3_1280x720_street.raw"
# (suffix, faery writer options): every camera format faery writes (EVT 2.1: _evt21_write below)
CAMERA = [(".raw", {"version": "evt3"}), (".raw", {"version": "evt2"}),
          (".dat", {}), (".aedat4", {}), (".es", {})]


def _faery_write(events: Events, path: Path, **kw: object) -> Path:
    a = np.zeros(len(events), dtype=faery.EVENTS_DTYPE)
    a["t"], a["x"], a["y"], a["on"] = events.t, events.x, events.y, events.p > 0
    faery.events_stream_from_array(a, (events.width, events.height)).to_file(path, zero_t0=False, **kw)
    return path


@pytest.fixture(scope="module")
def spinner(real_dir: Path) -> Events:
    return read_events(real_dir / "prophesee_640x480_spinner.h5")


def test_the_real_evt3_sample_reads_with_its_sensor_size_and_converts_to_the_same_events(tmp_path: Path) -> None:
    events = read_events(EVT3)
    assert (events.width, events.height) == (1280, 720)  # from the file's header, not a fallback
    assert len(events) > 200_000 and np.all(np.diff(events.t) >= 0)
    assert set(np.unique(events.p).tolist()) == {-1, 1}
    assert main(["convert", str(EVT3), str(tmp_path / "street.h5")]) == 0
    assert read_events(tmp_path / "street.h5").equals(events)


@pytest.mark.parametrize(("suffix", "kw"), CAMERA, ids=[f"{s}-{k.get('version', '')}" for s, k in CAMERA])
def test_each_camera_format_gives_the_events_of_the_hdf5_file(tmp_path: Path, spinner: Events, suffix: str,
                                                              kw: dict[str, str]) -> None:
    path = _faery_write(spinner, tmp_path / f"spinner{suffix}", **kw)
    got = read_events(path)
    assert got.equals(spinner)


def _evt21_write(events: Events, path: Path) -> Path:
    """EVT 2.1 as Prophesee documents it (no library writes it): 64-bit little-endian words, type in bits 60-63;
    an event word holds the timestamp's low 6 bits, x aligned on 32, y and a 32-pixel validity mask, and a
    TIME_HIGH word (type 8) the timestamp's upper 28 bits before the first event they apply to."""
    t, x, y = events.t.astype(np.uint64), events.x.astype(np.uint64), events.y.astype(np.uint64)
    base = x - x % np.uint64(32)
    words = ((events.p > 0).astype(np.uint64) << np.uint64(60) | (t & np.uint64(63)) << np.uint64(54)
             | base << np.uint64(43) | y << np.uint64(32) | np.uint64(1) << (x - base))
    high = t >> np.uint64(6)
    starts = np.flatnonzero(np.r_[True, high[1:] != high[:-1]])
    time_high = np.uint64(8) << np.uint64(60) | (high[starts] & np.uint64(2**28 - 1)) << np.uint64(32)
    w, h = events.width, events.height
    header = f"% evt 2.1\n% format EVT21;width={w};height={h}\n% geometry {w}x{h}\n% end\n".encode()
    path.write_bytes(header + np.insert(words, starts, time_high).astype("<u8").tobytes())
    return path


def test_evt21_reads_the_documented_words_with_the_headers_sensor_size(tmp_path: Path, spinner: Events) -> None:
    got = read_events(_evt21_write(spinner, tmp_path / "spinner.raw"))
    assert got.equals(spinner)
    assert main(["convert", str(tmp_path / "spinner.raw"), str(tmp_path / "spinner.h5")]) == 0
    assert read_events(tmp_path / "spinner.h5").equals(spinner)
    # faery's EVT 2.1 decoder panics (a BaseException): a file it would get still fails with the file's name
    bad = tmp_path / "bad.raw"
    bad.write_bytes(b"% evt 2.1\n% end\n" + bytes(range(7)))
    with pytest.raises(EventFileError, match="bad.raw.*sensor size"):
        read_events(bad)
    cut = tmp_path / "cut.raw"
    cut.write_bytes((tmp_path / "spinner.raw").read_bytes()[:-3])
    with pytest.raises(EventFileError, match="cut.raw.*truncated"):
        read_events(cut)


def test_text_columns_and_units_are_configurable(tmp_path: Path, tiny_events) -> None:
    e = tiny_events(n=300, width=40, height=30)
    p01 = (e.p > 0).astype(int)
    path = tmp_path / "events.txt"  # space-separated, seconds, x y t p order, no header (as data sets ship them)
    np.savetxt(path, np.column_stack([e.x, e.y, e.t / 1e6, p01]), fmt=["%d", "%d", "%.6f", "%d"])
    got = read_events(path, width=40, height=30, text=TextFormat(columns="xytp", time_unit="s"))
    assert got.equals(e)
    csv = tmp_path / "events.csv"
    csv.write_text("t,x,y,p\n" + "".join(f"{t},{x},{y},{p}\n" for t, x, y, p in zip(e.t, e.x, e.y, e.p)))
    assert read_events(csv, width=40, height=30).equals(e)
    with pytest.raises(EventFileError, match="--time-unit s"):
        read_events(path, width=40, height=30, text=TextFormat(columns="xytp"))


def test_text_preamble_extra_columns_and_empty_files(tmp_path: Path, tiny_events) -> None:
    e = tiny_events(n=50, width=40, height=30)
    rows = "".join(f"{t} {x} {y} {p} 0.5\n" for t, x, y, p in zip(e.t, e.x, e.y, e.p))  # a fifth column: ignored
    path = tmp_path / "events.txt"
    path.write_text("# recorded with a camera\n#\n  # width 40\ntimestamp x y polarity confidence\n" + rows)
    assert read_events(path, width=40, height=30).equals(e)
    header_only = tmp_path / "none.csv"
    header_only.write_text("# nothing recorded\nt,x,y,p\n")
    assert len(read_events(header_only, width=40, height=30)) == 0
    narrow = tmp_path / "narrow.txt"
    narrow.write_text("1 2 3\n4 5 6\n")
    with pytest.raises(EventFileError, match="narrow.txt: 3 text column.*at least 4"):
        read_events(narrow, width=40, height=30)


@pytest.mark.parametrize("sep, newline", [(",", "\n"), (",", "\r\n"), (" \t ", "\n")])
def test_whole_number_text_parses_in_parts_exactly_as_pandas_reads_it(monkeypatch, sep: str, newline: str) -> None:
    from evdenoise import textparse

    monkeypatch.setattr(textparse, "cpu_threads", lambda: 4)
    rng = np.random.default_rng(0)
    table = np.column_stack([np.sort(rng.integers(0, 10**12, 200_000)), rng.integers(0, 1280, 200_000),
                             rng.integers(0, 720, 200_000), rng.choice([-1, 0, 1], 200_000)])
    text = newline.join(sep.join(map(str, row)) for row in table) + newline
    buf = np.frombuffer(text.encode(), np.uint8)
    assert len(buf) >> 20 >= 4  # four parts, cut at line ends
    got = textparse.parse_integers(buf, 0, len(buf), 4, ord(sep) if sep == "," else 0)
    assert np.array_equal(got, pd.read_csv(io.BytesIO(buf), sep=sep.strip() or r"\s+", header=None).to_numpy().T)
    assert np.array_equal(got.T, table)


@pytest.mark.parametrize("line", ["1,2,3,4,", "1,2,3", "1,2,3,4,5", "1,,3,4", "", "1.5,2,3,4", "-,2,3,4", "1e3,2,3,4",
                                  "+1,2,3,4", '"1",2,3,4', "1,2\r,3,4", "1 ,2,3,4", "1" * 19 + ",2,3,4"])
def test_text_lines_outside_whole_numbers_are_left_to_pandas(line: str) -> None:
    from evdenoise.textparse import parse_integers

    buf = np.frombuffer(f"5,6,7,8\n{line}\n9,10,11,12\n".encode(), np.uint8)
    assert parse_integers(buf, 0, len(buf), 4, ord(",")) is None


def test_text_files_beyond_the_compiled_parser_read_and_stream_as_pandas_reads_them(tmp_path: Path, tiny_events) -> None:
    e = tiny_events(n=3000, width=40, height=30)
    rows = [f"{t},{x},{y},{p}" for t, x, y, p in zip(e.t, e.x, e.y, e.p)]
    rows[1500] = f"{e.t[1500]}.0,{e.x[1500]},{e.y[1500]},{e.p[1500]}"  # a whole number written as a float
    rows.insert(2000, "")  # a blank line, which pandas skips
    path = tmp_path / "events.csv"
    path.write_text("\n".join(rows) + "\n")
    assert read_events(path, width=40, height=30).equals(e)
    _, blocks = stream_events(path, width=40, height=30, block=400)
    assert Events.concatenate(list(blocks)).equals(e)


def test_numpy_files_with_named_fields(tmp_path: Path, tiny_events) -> None:
    e = tiny_events(n=100, width=20, height=10)
    np.savez(tmp_path / "a.npz", t=e.t, x=e.x, y=e.y, p=e.p)
    rec = np.rec.fromarrays([e.t, e.x, e.y, e.p > 0], names="timestamp,x,y,polarity")
    np.save(tmp_path / "b.npy", rec)
    assert read_events(tmp_path / "a.npz", width=20, height=10).equals(e)
    assert read_events(tmp_path / "b.npy", width=20, height=10).equals(e)
    np.savez(tmp_path / "c.npz", t=e.t, x=e.x, y=e.y)
    with pytest.raises(EventFileError, match="no 'p' field"):
        read_events(tmp_path / "c.npz")


def test_npz_stored_and_compressed_read_alike_and_a_damaged_member_is_refused(tmp_path: Path, tiny_events) -> None:
    # Stored members are memory-mapped after a CRC check (formats._npz_member), compressed ones inflated.
    e = tiny_events(n=70_000, width=20, height=10)
    fields = {"t": e.t, "x": e.x.astype(np.int32), "y": e.y, "p": e.p}
    np.savez(tmp_path / "stored.npz", **fields)
    np.savez_compressed(tmp_path / "deflated.npz", **fields)
    for name in ("stored.npz", "deflated.npz"):
        assert read_events(tmp_path / name, width=20, height=10).equals(e)
    damaged = tmp_path / "damaged.npz"
    data = bytearray((tmp_path / "stored.npz").read_bytes())
    data[len(data) // 3] ^= 0xFF  # one byte inside the t member's values
    damaged.write_bytes(bytes(data))
    with pytest.raises(EventFileError, match="damaged.npz.*CRC check"):
        read_events(damaged, width=20, height=10)
    with pytest.raises(EventFileError, match="damaged.npz.*CRC check"):  # streamed: before the first block
        next(stream_blocks(damaged, 20, 10, block=700)[1])


def test_dsec_layout_blosc_compressed_with_t_offset_reads(tmp_path: Path, tiny_events) -> None:
    e = tiny_events(n=5000, width=640, height=480, duration=50_000)
    path = tmp_path / "events.h5"
    offset = 1_000_000_000
    with h5py.File(path, "w") as f:  # DSEC: relative t, 0/1 polarity, no size attributes, Blosc/zstd chunks
        g = f.create_group("events")
        for name, a in (("t", e.t.astype(np.uint32)), ("x", e.x), ("y", e.y), ("p", (e.p > 0).astype(np.uint8))):
            g.create_dataset(name, data=a, chunks=(1024,), **hdf5plugin.Blosc(cname="zstd"))
        f["t_offset"] = np.int64(offset)
        f["ms_to_idx"] = np.searchsorted(e.t, np.arange(0, 51) * 1000).astype(np.uint64)
    got = read_events(path, width=640, height=480)
    assert np.array_equal(got.t, e.t + offset) and np.array_equal(got.p, e.p) and np.array_equal(got.x, e.x)


@pytest.mark.parametrize("suffix", [".raw", ".dat", ".aedat4", ".es", ".csv", ".npy", ".npz", ".h5"])
def test_a_bad_file_in_each_format_fails_naming_it_with_no_output(tmp_path: Path, capsys, suffix: str) -> None:
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(b"not events at all\n" * 4)
    out = tmp_path / "out.h5"
    assert main(["convert", str(bad), str(out)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err
    assert not out.exists() and not list(tmp_path.glob(".out.h5.*"))


def test_outputs_get_the_umask_mode_not_mkstemps(tmp_path: Path, tiny_events) -> None:
    old = os.umask(0o022)
    try:
        write_events(tmp_path / "a.h5", tiny_events())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.h5").stat().st_mode) == 0o644


def test_folders_of_any_format_feed_convert_inference_and_pairs(tmp_path: Path, spinner: Events) -> None:
    short = spinner.between(int(spinner.t[0]), int(spinner.t[0]) + 5000)
    (tmp_path / "in").mkdir()
    _faery_write(short, tmp_path / "in" / "cam.raw", version="evt3")
    _faery_write(short, tmp_path / "in" / "ini.aedat4")
    (tmp_path / "in" / "notes.md").write_text("not an event file")
    assert [p.name for p in event_files(tmp_path / "in")] == ["cam.raw", "ini.aedat4"]
    assert [s.name for s in inference_samples(tmp_path / "in")] == ["cam", "ini"]
    assert main(["convert", str(tmp_path / "in"), str(tmp_path / "out")]) == 0
    assert read_events(tmp_path / "out" / "ini.h5").equals(short)
    for split in ("train", "val", "test"):
        for kind, suffix in (("noisy", "_bg_flare"), ("clean", "_bg_light")):
            (tmp_path / kind / split).mkdir(parents=True)
            _faery_write(short, tmp_path / kind / split / f"s{split}{suffix}.es")
    cfg = {"noisy": tmp_path / "noisy", "clean": tmp_path / "clean", "noisy_suffix": "_bg_flare",
           "clean_suffix": "_bg_light", "split_by": "folders"}
    samples = folder_samples(cfg)
    assert [(s.name, s.split, s.clean.suffix) for s in samples] == [
        ("strain", "train", ".es"), ("sval", "val", ".es"), ("stest", "test", ".es")]


@pytest.mark.parametrize(("suffix", "kw"), CAMERA, ids=[f"{s}-{k.get('version', '')}" for s, k in CAMERA])
def test_camera_files_stream_in_blocks_with_the_whole_files_events(tmp_path: Path, spinner: Events, suffix: str,
                                                                  kw: dict[str, str]) -> None:
    path = _faery_write(spinner, tmp_path / f"spinner{suffix}", **kw)
    info, blocks = stream_events(path, block=50_000)
    parts = list(blocks)
    assert (info.count, info.t_first, info.t_last) == (len(spinner), int(spinner.t[0]), int(spinner.t[-1]))
    assert (info.width, info.height) == (spinner.width, spinner.height)
    assert len(parts) > 5 and max(map(len, parts)) < 100_000  # blocks, not the whole file at once
    assert Events.concatenate(parts).equals(spinner)


def test_evt21_streams_in_parts_cut_before_time_high_words(tmp_path: Path, spinner: Events) -> None:
    path = _evt21_write(spinner, tmp_path / "spinner.raw")
    info, blocks = stream_events(path, block=20_000)
    parts = list(blocks)
    assert (info.count, info.width, info.height) == (len(spinner), spinner.width, spinner.height)
    assert len(parts) > 5  # parts, not the whole file at once
    assert Events.concatenate(parts).equals(spinner)
    assert path.read_bytes() == _evt21_write(spinner, tmp_path / "again.raw").read_bytes()  # input untouched


def test_evt21_parts_past_time_high_wraps_keep_the_whole_files_times(tmp_path: Path) -> None:
    wrap = 1 << 34  # µs: TIME_HIGH's 28 bits wrap every 4.8 h
    t = np.concatenate([np.arange(wrap - 5000, wrap + 5000, 37), np.arange(2 * wrap - 3000, 2 * wrap + 3000, 41)])
    n = len(t)
    events = Events.from_arrays(t, np.arange(n) % 64, np.arange(n) % 60, np.arange(n) % 2, 64, 64)
    path = _evt21_write(events, tmp_path / "wraps.raw")
    assert read_events(path).equals(events)  # evlib unwraps inside a file
    info, blocks = stream_events(path, block=100)
    parts = list(blocks)
    assert len(parts) > 3 and (info.t_first, info.t_last) == (int(t[0]), int(t[-1]))
    assert Events.concatenate(parts).equals(events)


@pytest.mark.parametrize("suffix", [".csv", ".txt", ".npy", ".npz", ".stored.npz"])
def test_text_and_numpy_files_stream_in_blocks_with_the_whole_files_events(tmp_path: Path, tiny_events,
                                                                          suffix: str) -> None:
    e = tiny_events(n=5000, width=40, height=30)
    path = tmp_path / f"events{suffix}"
    save_npz = np.savez if suffix == ".stored.npz" else np.savez_compressed  # mapped / inflated block by block
    if suffix == ".npy":
        np.save(path, np.rec.fromarrays([e.t, e.x, e.y, e.p], names="t,x,y,p"))
    elif suffix.endswith(".npz"):
        save_npz(path, t=e.t, x=e.x, y=e.y, p=e.p)
    else:
        np.savetxt(path, np.column_stack([e.t, e.x, e.y, e.p]), fmt="%d", delimiter="," if suffix == ".csv" else " ")
    info, blocks = stream_events(path, block=700)
    parts = list(blocks)
    assert (info.count, info.t_first, info.t_last) == (len(e), int(e.t[0]), int(e.t[-1]))
    # No size in these files: the largest coordinates give it, over all blocks, before any block is handed out.
    assert (info.width, info.height) == (int(e.x.max()) + 1, int(e.y.max()) + 1)
    if suffix not in (".csv", ".txt"):
        assert len(parts) == 8 and max(map(len, parts)) == 700
    else:  # byte ranges of about 700 lines, cut at line ends
        assert 6 <= len(parts) <= 10 and 500 < max(map(len, parts)) < 900
    assert Events.concatenate(parts).equals(read_events(path))
    # A bad value in a late block fails in the first pass, naming the file, before any block is used.
    if suffix.endswith(".npz"):
        save_npz(path, t=e.t, x=e.x[:-1], y=e.y, p=e.p)
        with pytest.raises(EventFileError, match="different lengths"):
            stream_events(path, block=700)
    elif suffix != ".npy":
        with path.open("a") as f:
            f.write("1,2,x,1\n" if suffix == ".csv" else "1 2 x 1\n")
        with pytest.raises(EventFileError, match=str(path.name)):
            stream_events(path, block=700)


@pytest.mark.parametrize("suffix", [".csv", ".npy", ".es", ".h5"])
def test_convert_and_check_stream_one_pass_with_the_whole_files_events(tmp_path: Path, monkeypatch, capsys,
                                                                     tiny_events, suffix: str) -> None:
    from evdenoise import stages
    from evdenoise.events import scan_stream, stream_blocks

    e = tiny_events(n=5000, width=40, height=30)
    path = tmp_path / f"events{suffix}"
    if suffix == ".npy":
        np.save(path, np.rec.fromarrays([e.t, e.x, e.y, e.p], names="t,x,y,p"))
    elif suffix == ".csv":
        np.savetxt(path, np.column_stack([e.t, e.x, e.y, e.p]), fmt="%d", delimiter=",")
    elif suffix == ".es":
        _faery_write(e, path)
    else:
        write_events(path, e)
    reads = []

    def counted(*args, **kw):  # every pass over the file goes through stream_blocks: count them
        reads.append(1)
        return stream_blocks(*args, **{**kw, "block": 700})

    monkeypatch.setattr(stages, "stream_blocks", counted)
    assert main(["convert", str(path), str(tmp_path / "out.h5")]) == 0
    # .npy/.csv have no size: the largest coordinates give it, once every block has been written
    size = (40, 30) if suffix in (".es", ".h5") else (int(e.x.max()) + 1, int(e.y.max()) + 1)
    assert read_events(tmp_path / "out.h5").equals(Events(e.t, e.x, e.y, e.p, *size)) and reads == [1]
    tally = scan_stream(path, block=700)
    assert (tally.count, tally.t_first, tally.t_last, tally.width, tally.height, tally.on) == (
        len(e), int(e.t[0]), int(e.t[-1]), *size, int((e.p > 0).sum()))
    capsys.readouterr()
    assert main(["check", str(path)]) == 0  # check prints that tally
    assert f"{len(e)} events, {size[0]}x{size[1]}, {int(e.t[-1] - e.t[0])} us" in capsys.readouterr().out


def test_convert_of_a_file_bad_late_leaves_no_output(tmp_path: Path, monkeypatch, tiny_events) -> None:
    from evdenoise import stages
    from evdenoise.events import stream_blocks

    e = tiny_events(n=5000, width=40, height=30)
    path = tmp_path / "events.csv"
    np.savetxt(path, np.column_stack([e.t, e.x, e.y, e.p]), fmt="%d", delimiter=",")
    with path.open("a") as f:
        f.write(f"{int(e.t[-1]) + 1},70000,3,1\n")  # past uint16 in the last block, after 4000 events are written
    monkeypatch.setattr(stages, "stream_blocks", lambda *a, **kw: stream_blocks(*a, **{**kw, "block": 700}))
    assert main(["convert", str(path), str(tmp_path / "out.h5")]) == 2
    assert not (tmp_path / "out.h5").exists() and not list(tmp_path.glob(".out.h5.*"))
