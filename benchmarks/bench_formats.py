"""Reading each input format: our readers against the library each one uses (a script, not a test).

Writes one recording (uniform random events, 640x480) in every format the library's own writers produce
(faery: EVT 3.0 / 2.0 ``.raw``, ``.dat``, AEDAT4, ``.es``; NumPy ``.npy`` / ``.npz``; pandas CSV and TXT; our
HDF5), then
times, best of ``--repeats``, runs interleaved:
- the library alone: the whole file decoded into arrays, nothing checked (faery's packets concatenated,
  ``np.load``, ``pandas.read_csv``, h5py's datasets). A ``.npy`` of records is timed twice: ``np.load`` alone
  (one copy of the bytes, records interleaved) and ``fields.npy``, with the four field arrays copied out of the
  records, which is what every other library gives; ``zip.npz`` is ``np.savez_compressed``'s;
- ``read_events``: the whole file, validated (sorted, in bounds, polarity) into ``Events``;
- ``stream_blocks``: one pass of the bounded-memory reader, as ``convert`` and ``check`` read;
- ``stream_events``: both passes of the bounded-memory reader (facts, then blocks), as ``denoise`` reads
  (HDF5: one pass, its facts are in the file).
Prints M events/s and the ratios against the library (issue 16's target: reading at least as fast as the library
it uses, ratio >= 1). EVT 2.1 is left out: no library here writes it.

Usage: python benchmarks/bench_formats.py [--events 2000000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

import faery
import h5py
import numpy as np
import pandas as pd

from evdenoise.events import Events, read_events, stream_blocks, stream_events, write_events
from evdenoise.formats import CAMERA_SUFFIXES

WIDTH, HEIGHT = 640, 480
CAMERA = {"evt3.raw": {"version": "evt3"}, "evt2.raw": {"version": "evt2"}, "dat": {}, "aedat4": {}, "es": {}}


def recording(n: int, seed: int = 0) -> Events:
    rng = np.random.default_rng(seed)
    return Events.from_arrays(np.sort(rng.integers(0, n // 20, n)), rng.integers(0, WIDTH, n),
                              rng.integers(0, HEIGHT, n), rng.integers(0, 2, n), WIDTH, HEIGHT)


def write_all(events: Events, folder: Path) -> dict[str, Path]:
    """The recording in every format, by the library that reads it (ours for HDF5)."""
    paths = {name: folder / f"rec.{name}" for name in (*CAMERA, "npy", "fields.npy", "npz", "zip.npz", "csv", "txt", "h5")}
    a = np.zeros(len(events), dtype=faery.EVENTS_DTYPE)
    a["t"], a["x"], a["y"], a["on"] = events.t, events.x, events.y, events.p > 0
    for name, kw in CAMERA.items():
        faery.events_stream_from_array(a, (WIDTH, HEIGHT)).to_file(paths[name], zero_t0=False, **kw)
    fields = {"t": events.t, "x": events.x, "y": events.y, "p": events.p}
    for name in ("npy", "fields.npy"):
        np.save(paths[name], np.rec.fromarrays(list(fields.values()), names="t,x,y,p"))
    np.savez(paths["npz"], **fields)
    np.savez_compressed(paths["zip.npz"], **fields)
    pd.DataFrame(fields).to_csv(paths["csv"], index=False)
    pd.DataFrame(fields).to_csv(paths["txt"], index=False, header=False, sep=" ")
    write_events(paths["h5"], events)
    return paths


def library_read(path: Path) -> Callable[[], Any]:
    """The library alone: the whole file into arrays."""
    suffix = path.suffix.lower()
    if suffix in CAMERA_SUFFIXES:
        kind = CAMERA_SUFFIXES[suffix]
        return lambda: np.concatenate(list(faery.events_stream_from_file(path, file_type=kind)))
    if path.name.endswith(".fields.npy"):  # the four arrays every other library gives, out of the records
        return lambda: (lambda records: [np.ascontiguousarray(records[k]) for k in "txyp"])(np.load(path))
    if suffix == ".npy":  # one array of records
        return lambda: np.load(path)
    if suffix == ".npz":
        return lambda: {k: v for k, v in np.load(path).items()}
    if suffix in (".csv", ".txt"):
        return lambda: pd.read_csv(path, sep="," if suffix == ".csv" else r"\s+", header=0 if suffix == ".csv" else None)

    def h5() -> dict[str, np.ndarray]:
        with h5py.File(path, "r") as f:
            return {k: f["events"][k][:] for k in "txyp"}
    return h5


def streamed(path: Path, reader: Callable[..., tuple[Any, Any]]) -> Callable[[], int]:
    def run() -> int:
        _, blocks = reader(path, WIDTH, HEIGHT)
        return sum(len(b) for b in blocks)
    return run


def best_times(fns: list[Callable[[], Any]], repeats: int) -> list[float]:
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            tick = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - tick)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=float, default=2e6)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    n = int(args.events)
    events = recording(n)
    print(f"{n:,} random events, {WIDTH}x{HEIGHT}; M events/s, best of {args.repeats}\n")
    print("| format | library | read_events | stream_blocks (1 pass) | stream_events (2 passes) | read / library "
          "| 1 pass / library | 2 passes / library |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in write_all(events, Path(tmp)).items():
            whole = lambda p=path: read_events(p, WIDTH, HEIGHT)  # noqa: E731 - the size, as a user would give it
            assert whole().equals(events), path  # the same events from every format
            fns = [library_read(path), whole, streamed(path, stream_blocks), streamed(path, stream_events)]
            lib, read, once, twice = best_times(fns, args.repeats)
            print(f"| {name} | {n / lib / 1e6:.1f} | {n / read / 1e6:.1f} | {n / once / 1e6:.1f} | "
                  f"{n / twice / 1e6:.1f} | {lib / read:.2f} | {lib / once:.2f} | {lib / twice:.2f} |")


if __name__ == "__main__":
    main()
