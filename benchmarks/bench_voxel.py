"""Throughput of voxel encoding and decoding (a script, not a test).

Prints one table of events/s: our ``encode`` against tonic's ``ToVoxelGrid`` (when tonic is
installed: ``pip install tonic``) and a plain per-bin numpy loop, for 1 M events on a 640x480
sensor with 8 bins, C = 1 and 2, nearest and bilinear; then each decoder (mask also on a
bilinear prediction). The last line is ``encode_speedup_vs_tonic: X`` for the comparable
setting: our C=1 bilinear encode against tonic's ToVoxelGrid (also a signed, time-bilinear voxel
grid; it puts bins at integer positions over the data's own span rather than at bin centres of a
fixed window, the same amount of work).

Usage: python benchmarks/bench_voxel.py [--events 1000000] [--repeats 5]
"""
from __future__ import annotations

import argparse
import time
from typing import Any
from collections.abc import Callable

import numpy as np

from evdenoise.decode import STRATEGIES, decode
from evdenoise.events import Events
from evdenoise.voxel import VoxelSpec, encode

WIDTH, HEIGHT, BINS, SPAN = 640, 480, 8, 20_000


def best_times(fns: list[Callable[[], Any]], repeats: int) -> list[float]:
    """Best wall time of each function, runs interleaved so load changes hit all alike."""
    for fn in fns:
        fn()  # warm-up (allocations, lazy imports)
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, acc in zip(fns, times):
            start = time.process_time()
            fn()
            acc.append(time.process_time() - start)
    return [min(acc) for acc in times]


def loop_encode(ev: Events, spec: VoxelSpec) -> np.ndarray:
    """Baseline: a Python loop over bins (and channels), numpy inside each."""
    out = np.zeros((spec.channels, spec.bins, HEIGHT, WIDTH), np.float64)
    pixel = ev.y.astype(np.int64) * WIDTH + ev.x
    pos = (ev.t - 0) * spec.bins / SPAN
    channel = (ev.p < 0).astype(np.int64) if spec.channels == 2 else np.zeros(len(ev), np.int64)
    sign = np.ones(len(ev)) if spec.channels == 2 else ev.p.astype(np.float64)
    for b in range(spec.bins):
        for c in range(spec.channels):
            plane = out[c, b].reshape(-1)
            if spec.assignment == "nearest":
                sel = (np.floor(pos).astype(np.int64) == b) & (channel == c)
                np.add.at(plane, pixel[sel], sign[sel])
            else:
                centre = pos - 0.5
                weight = np.clip(1 - np.abs(centre - b), 0, 1)
                weight[(b == 0) & (centre < 0)] = 1  # edge clamp, as in encode
                weight[(b == spec.bins - 1) & (centre > b)] = 1
                sel = (weight > 0) & (channel == c)
                np.add.at(plane, pixel[sel], sign[sel] * weight[sel])
    return out.astype(np.float32)


def tonic_encoder(ev: Events) -> Callable[[], Any] | None:
    try:
        from tonic.transforms import ToVoxelGrid
    except ImportError:
        return None
    structured = np.zeros(len(ev), dtype=[("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])
    for name in "xytp":
        structured[name] = getattr(ev, name)
    transform = ToVoxelGrid(sensor_size=(WIDTH, HEIGHT, 2), n_time_bins=BINS)
    return lambda: transform(structured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    n = args.events
    rng = np.random.default_rng(0)
    ev = Events.from_arrays(np.sort(rng.integers(0, SPAN, n)), rng.integers(0, WIDTH, n),
                            rng.integers(0, HEIGHT, n), rng.integers(0, 2, n), WIDTH, HEIGHT)
    tonic = tonic_encoder(ev)

    rows: list[tuple[str, str, str, str, str]] = []
    mev = lambda count, seconds: f"{count / seconds / 1e6:.1f}"  # noqa: E731
    speedup = float("nan")
    for channels in (1, 2):
        for assignment in ("nearest", "bilinear"):
            spec = VoxelSpec(BINS, channels, assignment)
            fns = [lambda spec=spec: encode(ev, 0, SPAN, spec), lambda spec=spec: loop_encode(ev, spec)]
            comparable = tonic is not None and (channels, assignment) == (1, "bilinear")
            ours, loop, *rest = best_times(fns + ([tonic] if comparable else []), args.repeats)
            tonic_cell = "n/a" if tonic is None else "-"
            if comparable:
                tonic_cell, speedup = mev(n, rest[0]), rest[0] / ours
            rows.append((f"encode C={channels} {assignment}", mev(n, ours), tonic_cell, mev(n, loop), "in"))

    # mask also reads bilinear predictions (each event's share from its two bins: one more encode and pass).
    decoders = [(strategy, "nearest") for strategy in STRATEGIES] + [("mask", "bilinear")]
    for channels in (1, 2):
        for strategy, assignment in decoders:
            spec = VoxelSpec(BINS, channels, assignment)
            vox = encode(ev, 0, SPAN, spec)
            # mask is given a prediction that keeps about 70 % of the input.
            pred = vox * 0.7 if strategy == "mask" else vox
            out = decode(pred, 0, SPAN, strategy, events_in=ev, spec=spec)
            [seconds] = best_times([lambda: decode(pred, 0, SPAN, strategy, events_in=ev, spec=spec)], args.repeats)  # noqa: B023 (called at once)
            counted, label = (n, "in") if strategy == "mask" else (len(out), "out")
            name = f"decode C={channels} {strategy}" + (" (bilinear prediction)" if assignment == "bilinear" else "")
            rows.append((name, mev(counted, seconds), "-", "-", label))

    header = ("operation (1 M events, 640x480, 8 bins)", "ours Mev/s", "tonic Mev/s", "numpy loop Mev/s", "events")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, tuple("-" * w for w in widths), *rows):
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    print("(tonic ToVoxelGrid is C=1 bilinear-in-time; it is compared on that row only)")
    print(f"encode_speedup_vs_tonic: {'n/a' if tonic is None else f'{speedup:.1f}'}")


if __name__ == "__main__":
    main()
