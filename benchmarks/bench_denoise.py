"""Denoising long recordings end to end: rates per stage and peak memory (a script, not a test).

Synthesises a recording streamed to disk (uniform random events: the cost of every stage depends on the event
and window counts, not on what the events show), then in one run:
- each stage alone over the same stream (read, encode, predict, decode, write): events/s and windows/s;
  predict (the network) runs on the first ``--predict-runs`` runs of windows only, and is scaled per window;
- ``denoise_file`` end to end in a child process, for its own peak RSS;
and prints the table with the targets of issue 16 as ratios (value / target, >= 1 meets it).

Usage: python benchmarks/bench_denoise.py [--events 100000000] [--size 640x480] [--rate 20e6] [--model PATH]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from evdenoise.checkpoint import load_model
from evdenoise.decode import RUN_WINDOWS, decode_windows
from evdenoise.events import Events, event_writer, stream_events
from evdenoise.infer import predict_voxels
from evdenoise.pretrained import MODEL_PATH
from evdenoise.voxel import VoxelSpec, encode_windows
from evdenoise.windows import window_chunks
from evdenoise.defaults import DECODE, KEEP_THRESHOLD

BLOCK = 1 << 22
TARGETS = {"peak_rss_gb": 3.0, "decode_mev_s": 20.0, "others_vs_network": 5.0}


def synthesize(path: Path, n: int, width: int, height: int, rate: float, seed: int = 0) -> None:
    """``n`` sorted random events at ``rate`` events/s, written a block at a time (never all in memory)."""
    rng = np.random.default_rng(seed)
    t0 = 0
    with event_writer(path, width, height, producer="bench_denoise") as append:
        for i in range(0, n, BLOCK):
            k = min(BLOCK, n - i)
            span = int(k / rate * 1e6)
            t = t0 + np.sort(rng.integers(0, span, k))
            append(Events.from_arrays(t, rng.integers(0, width, k), rng.integers(0, height, k), rng.integers(0, 2, k),
                                      width, height))
            t0 += span


def stage_rates(path: Path, model_path: Path, predict_runs: int) -> dict[str, tuple[float, float]]:
    """Seconds per stage over the whole stream -> (events/s, windows/s); predict scaled from its first runs."""
    model, meta = load_model(model_path, torch.device("cpu"))
    spec, strategy = VoxelSpec(**meta["voxel"]), meta.get("decode", DECODE)
    info, blocks = stream_events(path)
    seconds = dict.fromkeys(("read", "encode", "predict", "decode", "write"), 0.0)
    n_windows, predicted = 0, 0
    runs = window_chunks(_timed(blocks, seconds, "read"), info.t_first, info.t_last, int(meta["segment_us"]),
                         meta.get("grid", "relative"), RUN_WINDOWS)
    with tempfile.TemporaryDirectory() as tmp, event_writer(Path(tmp) / "out.h5", info.width, info.height) as append:
        for k, (sub, ev) in enumerate(runs):
            if k == 0:  # warm-up, untimed: numba compiles the encoder and decoders on first use
                decode_windows(encode_windows(ev, sub, spec), sub, strategy, events_in=ev, spec=spec)
            tick = time.perf_counter()
            vox = encode_windows(ev, sub, spec)
            seconds["encode"] += time.perf_counter() - tick
            if k < predict_runs:
                tick = time.perf_counter()
                pred = predict_voxels(model, vox, train_size=meta.get("train_size"), device="cpu")
                seconds["predict"] += time.perf_counter() - tick
                predicted += len(sub)
            # Decode the real prediction where there is one, else the input itself (same work for mask).
            tick = time.perf_counter()
            out = decode_windows(pred if k < predict_runs else vox, sub, strategy, events_in=ev, spec=spec, seed=k,
                                 keep_threshold=KEEP_THRESHOLD)
            seconds["decode"] += time.perf_counter() - tick
            tick = time.perf_counter()
            append(out)
            seconds["write"] += time.perf_counter() - tick
            n_windows += len(sub)
    seconds["predict"] *= n_windows / max(predicted, 1)
    return {k: (info.count / s, n_windows / s) for k, s in seconds.items()} | {"_counts": (info.count, n_windows)}


def _timed(blocks, seconds: dict[str, float], key: str):
    it = iter(blocks)
    while True:
        tick = time.perf_counter()
        block = next(it, None)
        seconds[key] += time.perf_counter() - tick
        if block is None:
            return
        yield block


def end_to_end(path: Path, model_path: Path) -> dict[str, float]:
    """``denoise_file`` in a child process: wall seconds and that process's peak RSS."""
    code = ("import json, resource, sys, time; from evdenoise.denoise import denoise_file; t = time.perf_counter(); "
            "denoise_file(sys.argv[1], sys.argv[2], sys.argv[3], device='cpu', progress=False); "
            "print(json.dumps({'seconds': time.perf_counter() - t, "
            "'peak_rss_gb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))")
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-c", code, str(path), str(Path(tmp) / "out.h5"), str(model_path)],
                              capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=float, default=1e8)
    ap.add_argument("--size", default="640x480", help="WIDTHxHEIGHT (also e.g. 1280x720)")
    ap.add_argument("--rate", type=float, default=20e6, help="events per second of recording")
    ap.add_argument("--model", type=Path, default=MODEL_PATH)
    ap.add_argument("--predict-runs", type=int, default=2, help="runs of windows the network really predicts")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("results/bench_denoise"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    width, height = map(int, args.size.split("x"))
    path = args.work / f"random_{args.size}_{int(args.events)}.h5"
    if not path.exists():  # named by its settings: the same file is the same data
        synthesize(path, int(args.events), width, height, args.rate)
    rates = stage_rates(path, args.model, args.predict_runs)
    events, windows = rates.pop("_counts")
    e2e = end_to_end(path, args.model)
    print(f"{events:,} events, {windows} windows of {args.size}, model {args.model}, {args.threads} threads\n")
    print("| stage | M events/s | windows/s |\n|---|---|---|")
    for stage, (ev_s, win_s) in rates.items():
        print(f"| {stage} | {ev_s / 1e6:.2f} | {win_s:.1f} |")
    print(f"| end to end | {events / e2e['seconds'] / 1e6:.2f} | {windows / e2e['seconds']:.1f} |")
    others = 1 / sum(1 / rates[s][1] for s in ("read", "encode", "decode", "write"))
    measured = {"peak_rss_gb": e2e["peak_rss_gb"], "decode_mev_s": rates["decode"][0] / 1e6,
                "others_vs_network": others / rates["predict"][1]}
    print("\n| target | measured | anchor | ratio (>= 1 meets it) |\n|---|---|---|---|")
    for key, anchor in TARGETS.items():
        ratio = anchor / measured[key] if key == "peak_rss_gb" else measured[key] / anchor
        print(f"| {key} | {measured[key]:.2f} | {anchor} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
