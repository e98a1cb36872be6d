"""Denoise event files with a trained model, outside Snakemake.

A file streams through read (blocks of events) -> runs of RUN_WINDOWS windows that hold events -> voxels ->
predict -> decode -> append to the output, so memory stays bounded whatever the recording's length and a time
gap costs nothing. Decoding is ``decode.decode_runs``'s (same runs, same seeds), so the workflow's decode rule
gives the same events for the same model, file and seed. Settings (window length, grid, voxel spec, default
decode strategy) come from the model file.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import load_model
from .decode import RUN_WINDOWS, decode_windows, output_attrs, run_seed, within
from .events import Events, event_writer, stream_events
from .formats import EVENT_SUFFIXES, TextFormat, event_files
from .infer import predict_voxels, resolve_device
from .voxel import VoxelSpec, encode_windows
from .windows import merge, window_chunks
from .defaults import DECODE, DECODE_SEED, DEVICE, GRID, KEEP_THRESHOLD, PREDICT_BATCH_SIZE, PREDICT_MODE

log = logging.getLogger(__name__)

PathLike = str | os.PathLike


def _denoised_chunks(blocks: Iterable[Events], t_first: int, t_last: int, model: nn.Module, meta: dict[str, Any], *,
                     decode: str | None, mode: str, batch_size: int, device: str, seed: int,
                     keep_thresholds: Sequence[float] = (KEEP_THRESHOLD,),
                     **predict_kw: Any) -> Iterator[tuple[int, int, list[Events]]]:
    """(input events, windows, denoised events at each keep threshold) per run of RUN_WINDOWS windows holding
    events, in time order. The thresholds share one prediction and each run's seed, so each output is the one a
    run at that threshold alone gives."""
    spec = VoxelSpec(**meta["voxel"])
    strategy = decode or meta.get("decode", DECODE)
    runs = window_chunks(blocks, t_first, t_last, int(meta["segment_us"]), str(meta.get("grid", GRID)),
                         RUN_WINDOWS)
    for k, (sub, ev) in enumerate(runs):
        pred = predict_voxels(model, encode_windows(ev, sub, spec), mode=mode, train_size=meta.get("train_size"),
                              batch_size=batch_size, device=device, **predict_kw)
        outs = []
        for threshold in keep_thresholds:
            out = decode_windows(pred, sub, strategy, events_in=ev, spec=spec, seed=run_seed(seed, k),
                                 keep_threshold=threshold)
            out = within(out, t_first, t_last)
            outs.append(out if len(out) < 2 or np.all(np.diff(out.t) >= 0) else out.sorted())
        yield len(ev), len(sub), outs


def _denoise(events: Events, model: nn.Module, meta: dict[str, Any], *, progress: bool,
             keep_thresholds: Sequence[float], **kw: Any) -> list[Events]:
    if not len(events):
        return [Events.empty(events.width, events.height) for _ in keep_thresholds]
    chunks = _denoised_chunks([events], int(events.t[0]), int(events.t[-1]), model, meta,
                              keep_thresholds=keep_thresholds, **kw)
    parts = [outs for _, _, outs in tqdm(chunks, desc="windows", unit="chunk", disable=not progress, leave=False)]
    return [merge([p[i] for p in parts], events.width, events.height) for i in range(len(keep_thresholds))]


def denoise_events(events: Events, model_path: PathLike, *, decode: str | None = None, mode: str = PREDICT_MODE,
                   batch_size: int = PREDICT_BATCH_SIZE, device: str = DEVICE, seed: int = DECODE_SEED, progress: bool = False,
                   keep_threshold: float = KEEP_THRESHOLD, **predict_kw: Any) -> Events:
    """Denoised copy of a time-sorted event stream.

    ``decode`` overrides the model's default strategy; ``keep_threshold`` goes to the ``mask``
    decoder; ``mode``/``predict_kw`` (tile, overlap, amp) go to :func:`evdenoise.infer.predict_voxels`.
    Output timestamps lie inside the input's range.
    """
    return denoise_events_at(events, model_path, [keep_threshold], decode=decode, mode=mode, batch_size=batch_size,
                             device=device, seed=seed, progress=progress, **predict_kw)[0]


def denoise_events_at(events: Events, model_path: PathLike, keep_thresholds: Sequence[float], *,
                      decode: str | None = None, mode: str = PREDICT_MODE, batch_size: int = PREDICT_BATCH_SIZE,
                      device: str = DEVICE, seed: int = DECODE_SEED, progress: bool = False,
                      **predict_kw: Any) -> list[Events]:
    """:func:`denoise_events` at each of several mask keep thresholds, from one prediction: the same events as
    one call per threshold, for the network's time once."""
    model, meta = load_model(model_path, resolve_device(device))
    return _denoise(events, model, meta, decode=decode, mode=mode, batch_size=batch_size, device=device,
                    seed=seed, progress=progress, keep_thresholds=list(keep_thresholds), **predict_kw)


def _denoise_file(in_path: Path, out_path: Path, model: nn.Module, meta: dict[str, Any], *, progress: bool,
                  source: Mapping[str, Any], keep_threshold: float = KEEP_THRESHOLD, **kw: Any) -> int:
    """Stream ``in_path`` through the model into ``out_path``: memory bounded by a block and a run of windows.
    ``source``: how to read the input (``stream_events``' width, height, text)."""
    info, blocks = stream_events(in_path, **source)
    attrs = output_attrs(in_path, kw.get("decode") or meta.get("decode", DECODE))
    kept = windows = 0
    start = time.perf_counter()
    bar = tqdm(total=info.count, desc=in_path.name, unit="ev", unit_scale=True, disable=not progress, leave=False)
    with event_writer(out_path, info.width, info.height, attrs) as append, bar:  # as decode_file writes
        for n_in, n_windows, (out,) in _denoised_chunks(blocks, info.t_first, info.t_last, model, meta,
                                                        keep_thresholds=[keep_threshold], **kw):
            append(out)
            kept, windows = kept + len(out), windows + n_windows
            bar.update(n_in)
            bar.set_postfix(windows=windows)
    seconds = max(time.perf_counter() - start, 1e-9)
    log.info("%s: %d -> %d events in %d windows -> %s (%.0f events/s, %.1f windows/s)", in_path, info.count, kept,
             windows, out_path, info.count / seconds, windows / seconds)
    return kept


def denoise_file(in_path: PathLike, out_path: PathLike, model_path: PathLike, *, decode: str | None = None,
                 mode: str = PREDICT_MODE, batch_size: int = PREDICT_BATCH_SIZE, device: str = DEVICE,
                 seed: int = DECODE_SEED, progress: bool = True, width: int | None = None, height: int | None = None,
                 text: TextFormat | None = None, **predict_kw: Any) -> Path:
    """Denoise one event file into ``out_path`` (atomic), keeping the input's root attributes.

    ``width``/``height``: the sensor size of a file that does not state it; ``text``: a CSV/TXT file's layout."""
    model, meta = load_model(model_path, resolve_device(device))
    _denoise_file(Path(in_path), Path(out_path), model, meta, decode=decode, mode=mode, batch_size=batch_size,
                  device=device, seed=seed, progress=progress,
                  source={"width": width, "height": height, "text": text}, **predict_kw)
    return Path(out_path)


def denoise_dir(in_dir: PathLike, out_dir: PathLike, model_path: PathLike, *, decode: str | None = None,
                mode: str = PREDICT_MODE, batch_size: int = PREDICT_BATCH_SIZE, device: str = DEVICE,
                seed: int = DECODE_SEED, progress: bool = True, width: int | None = None, height: int | None = None,
                text: TextFormat | None = None, **predict_kw: Any) -> list[Path]:
    """Denoise every event file of ``in_dir`` (any format) into ``out_dir/<stem>.h5``, loading the model once
    (``width``, ``height``, ``text``: as :func:`denoise_file`)."""
    files = event_files(in_dir)
    if not files:
        raise FileNotFoundError(f"{in_dir}: no event files ({', '.join(EVENT_SUFFIXES)})")
    model, meta = load_model(model_path, resolve_device(device))
    outs = []
    for f in tqdm(files, desc="files", unit="file", disable=not progress):
        out = Path(out_dir) / f"{f.stem}.h5"
        _denoise_file(f, out, model, meta, decode=decode, mode=mode, batch_size=batch_size, device=device,
                      seed=seed, progress=progress, source={"width": width, "height": height, "text": text},
                      **predict_kw)
        outs.append(out)
    return outs
