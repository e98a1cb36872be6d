"""One function per workflow stage, file in -> file out. The Snakemake scripts and the CLI call these.

Each reads its inputs read-only and writes its output atomically, so an interrupted or failed
stage leaves no partial artifact and a rerun starts that stage cleanly.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .artifacts import Segments, read_segments, read_voxels, voxel_meta, write_segments, write_voxels
from .decode import decode_runs, output_attrs
from .events import Events, StreamTally, event_writer, read_events, stream_blocks, write_events
from .formats import EVENT_SUFFIXES, TextFormat, event_files
from .defaults import (DECODE, DECODE_SEED, DEVICE, GRID, KEEP_THRESHOLD, PREDICT_BATCH_SIZE, PREDICT_MODE,
                       SEGMENT_US)
from .voxel import VoxelSpec, encode_windows

log = logging.getLogger(__name__)

PathLike = str | os.PathLike


def convert_file(src: PathLike, dst: PathLike, *, width: int | None = None, height: int | None = None,
                 sort: bool = False, text: TextFormat | None = None) -> StreamTally:
    """Any readable event file (``evdenoise.formats``) -> this project's HDF5 layout, validated, atomically.

    One pass, a block at a time, so memory stays bounded whatever the file's length; ``sort`` holds the whole
    file, since sorting needs it."""
    attrs, producer = {"converted_from": str(src)}, "evdenoise.convert"
    tally = StreamTally()
    if sort:
        events = tally.add(read_events(src, width=width, height=height, sort=True, text=text))
        write_events(dst, events, attrs=attrs, producer=producer)
    else:
        size, blocks = stream_blocks(src, width, height, text)
        with event_writer(dst, *(size or (None, None)), attrs, producer) as append:
            for events in map(tally.add, blocks):
                append(events)
    log.info("%s: %d events, %dx%d -> %s", src, tally.count, tally.width, tally.height, dst)
    return tally


def convert_dir(src: PathLike, dst: PathLike, **kw: object) -> list[Path]:
    """Every event file of folder ``src`` -> ``dst/<stem>.h5``; stems must not collide."""
    files = event_files(src)
    if not files:
        raise FileNotFoundError(f"{src}: no event files ({', '.join(EVENT_SUFFIXES)})")
    stems = [f.stem for f in files]
    if len(set(stems)) < len(stems):
        twins = sorted({s for s in stems if stems.count(s) > 1})
        raise ValueError(f"{src}: files {twins} differ only in their suffix; they would convert to the same file")
    outs = [Path(dst) / f"{f.stem}.h5" for f in files]
    for f, out in zip(files, outs):
        convert_file(f, out, **kw)
    return outs


def split_file(noisy: PathLike, clean: PathLike | None, out: PathLike, *, segment_us: int = SEGMENT_US,
               grid: str = GRID, width: int | None = None, height: int | None = None) -> None:
    """Cut a noisy file (and its clean partner, on the noisy file's windows) into fixed windows."""
    from .windows import windows_for

    raw = read_events(noisy, width=width, height=height)
    label = None
    if clean is not None:
        label = read_events(clean, width=raw.width, height=raw.height)
        if (label.width, label.height) != (raw.width, raw.height):
            raise ValueError(f"{clean}: sensor {label.width}x{label.height} differs from its noisy partner "
                             f"{noisy} ({raw.width}x{raw.height})")
    windows = windows_for(raw, segment_us=segment_us, grid=grid)
    if label is not None and len(windows):
        dropped = len(label) - len(label.between(int(windows.start[0]), int(windows.end[-1])))
        if dropped:
            log.warning("%s: %d clean events lie outside the noisy file's windows and are dropped", clean, dropped)
    attrs = {"source": str(noisy), "clean_source": str(clean) if clean is not None else ""}
    write_segments(out, windows, raw, label, attrs=attrs)
    log.info("%s: %d events in %d windows of %d us -> %s", noisy, len(raw), len(windows), segment_us, out)


def voxelize_file(segments: PathLike, out: PathLike, spec: VoxelSpec) -> None:
    """Encode every window of a segments file: ``raw`` and, when a clean partner exists, ``label``."""
    seg = read_segments(segments)
    arrays = {"raw": encode_windows(seg.raw, seg.windows, spec)}
    if seg.label is not None:
        arrays["label"] = encode_windows(seg.label, seg.windows, spec)
    write_voxels(out, arrays, seg.windows, spec, attrs={"source": seg.attrs.get("source", str(segments))})
    log.info("%s: voxels %s -> %s", segments, arrays["raw"].shape, out)


def predict_file(model_path: PathLike, voxels: PathLike, out: PathLike, *, mode: str = PREDICT_MODE,
                 batch_size: int = PREDICT_BATCH_SIZE, device: str = DEVICE) -> None:
    """Run a trained model over every window of a voxel file; writes ``pred`` in the same layout.

    ``mode``: see :mod:`evdenoise.infer` (torch loads only when a stage runs).
    """
    from .checkpoint import load_model
    from .infer import predict_voxels

    model, meta = load_model(model_path, device="cpu")
    vm = voxel_meta(voxels)
    _check_voxel_settings(meta, vm.spec, voxels)
    raw = read_voxels(voxels, "raw")
    pred = predict_voxels(model, raw, mode=mode, train_size=meta.get("train_size"),
                          batch_size=batch_size, device=device)
    write_voxels(out, {"pred": pred}, vm.windows, vm.spec,
                 attrs={"source": vm.attrs.get("source", ""), "model": str(model_path)})


def _check_voxel_settings(meta: dict, spec: VoxelSpec, path: PathLike) -> None:
    trained = meta.get("voxel", {})
    mine = {"bins": spec.bins, "channels": spec.channels, "assignment": spec.assignment}
    if trained and any(trained.get(k) != v for k, v in mine.items()):
        raise ValueError(f"{path}: voxel settings {mine} differ from the model's training settings {trained}")


def decode_file(predicted: PathLike, segments: PathLike, original: PathLike, out: PathLike, *,
                strategy: str = DECODE, seed: int = DECODE_SEED, keep_threshold: float = KEEP_THRESHOLD) -> None:
    """Write the denoised events in the original file's format, keeping its attributes
    (``mask`` keeps a subset of the file's own input events)."""
    vm = voxel_meta(predicted)
    seg = read_segments(segments)
    events = decode_runs(read_voxels(predicted, "pred"), seg.windows, strategy, events_in=seg.raw, spec=vm.spec,
                         seed=seed, keep_threshold=keep_threshold)
    write_events(out, events, attrs=output_attrs(original, strategy))
    log.info("%s: %d events decoded (%s) -> %s", predicted, len(events), strategy, out)


def baseline_estimates(seg: Segments, *, baselines: Sequence[str], decodes: Sequence[str], spec: VoxelSpec,
                       seed: int = DECODE_SEED) -> dict[str, Events]:
    """The event streams of the methods that need no network, keyed by name.

    ``raw``: the noisy input; ``roundtrip_<d>``: encode -> decode ``d`` with no network (for ``mask``
    that is the input itself, so it is left out); classical filters by name.
    """
    from .filters import apply_filter

    out: dict[str, Events] = {}
    for name in baselines:
        if name == "raw":
            out["raw"] = seg.raw
        elif name == "roundtrip":
            vox = encode_windows(seg.raw, seg.windows, spec)
            for d in decodes:
                if d != "mask":
                    out[f"roundtrip_{d}"] = decode_runs(vox, seg.windows, d, events_in=seg.raw, spec=spec, seed=seed)
        else:
            out[name] = apply_filter(name, seg.raw)
    return out


def method_estimates(seg: Segments, preds: Mapping[str, np.ndarray], *, baselines: Sequence[str],
                     decodes: Sequence[str], spec: VoxelSpec, seed: int = DECODE_SEED,
                     keep_threshold: float = KEEP_THRESHOLD) -> dict[str, Events]:
    """:func:`baseline_estimates` and ``<name>_<d>``: the prediction ``preds[name]`` decoded with ``d``
    (the decode of :func:`decode_file`, so the same events as the files it writes)."""
    out = baseline_estimates(seg, baselines=baselines, decodes=decodes, spec=spec, seed=seed)
    for name, pred in preds.items():
        for d in decodes:
            out[f"{name}_{d}"] = decode_runs(pred, seg.windows, d, events_in=seg.raw, spec=spec, seed=seed,
                                             keep_threshold=keep_threshold)
    return out


def evaluate_sample(segments: PathLike, denoised: Mapping[str, PathLike], out: PathLike, *, sample: str,
                    baselines: Sequence[str], decodes: Sequence[str], spec: VoxelSpec, seed: int = DECODE_SEED) -> pd.DataFrame:
    """Per-window metrics against the clean events of one file, written as CSV: of each denoised file
    (``denoised`` maps a method name such as ``model_mask`` to the file users get) and of the baselines
    (``decodes``: the decoders of the network-free round trip)."""
    from .evaluate import write_csv
    from .metrics import methods_metrics

    seg = read_segments(segments)
    if seg.label is None:
        raise ValueError(f"{segments}: no clean events to evaluate against")
    estimates = baseline_estimates(seg, baselines=baselines, decodes=decodes, spec=spec, seed=seed)
    estimates.update({name: read_events(path) for name, path in denoised.items()})
    table = methods_metrics(estimates, seg.label, seg.windows, sample)
    write_csv(table, out)
    return table


def concat_csvs(paths: Iterable[PathLike]) -> pd.DataFrame:
    return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
