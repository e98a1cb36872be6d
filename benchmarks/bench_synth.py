"""Speed of the synthetic flare simulator: files/s and events/s at 160x120 and 640x480.

Usage: python benchmarks/bench_synth.py [--files N] [--large-files M]
Times generate_pair plus writing both HDF5 files (what synthesize does per pair), one core.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from evdenoise.events import write_events
from evdenoise.synth import SynthConfig, generate_pair


def bench(cfg: SynthConfig, seeds: range, folder: Path) -> dict[str, float]:
    n_events, shares = 0, []
    start = time.perf_counter()
    for seed in seeds:
        noisy, clean, meta = generate_pair(cfg, seed)
        write_events(folder / f"{seed}_bg_flare.h5", noisy)
        write_events(folder / f"{seed}_bg_light.h5", clean)
        n_events += len(noisy) + len(clean)
        shares.append(meta["flare_excess_share"])
    elapsed = time.perf_counter() - start
    return {"files": len(seeds), "seconds": elapsed, "files_per_s": len(seeds) / elapsed,
            "events_per_s": n_events / elapsed, "events_per_file": n_events / len(seeds) / 2,
            "excess_share": float(np.median(shares))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=8, help="pairs at 160x120")
    ap.add_argument("--large-files", type=int, default=2, help="pairs at 640x480")
    args = ap.parse_args()
    print(f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')} (numpy work here is single-threaded)")
    print(f"{'size':>9} {'pairs':>5} {'s':>7} {'pairs/s':>8} {'events/s':>10} {'events/file':>12} {'flare (excess)':>15}")
    with tempfile.TemporaryDirectory() as tmp:
        for (w, h), n in (((160, 120), args.files), ((640, 480), args.large_files)):
            r = bench(SynthConfig(width=w, height=h), range(n), Path(tmp))
            print(f"{w}x{h:<5} {n:>5} {r['seconds']:>7.2f} {r['files_per_s']:>8.2f} {r['events_per_s']:>10.3g} "
                  f"{r['events_per_file']:>12.3g} {r['excess_share']:>15.2f}")


if __name__ == "__main__":
    main()
