"""Denoise event files with a trained model, outside Snakemake.

read -> windows -> voxels -> predict -> decode -> merge -> write, a chunk of windows at a time
so long recordings never need all their voxels in memory at once. Settings (window length,
grid, voxel spec, default decode strategy) come from the model file.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import DEFAULT_DECODE, load_model
from .decode import DEFAULT_KEEP_THRESHOLD, decode_windows, output_attrs, within_input
from .events import Events, read_events, write_events
from .formats import EVENT_SUFFIXES, event_files
from .infer import DEFAULT_MODE, predict_voxels, resolve_device
from .voxel import VoxelSpec, encode_windows
from .windows import merge, windows_for

log = logging.getLogger(__name__)

PathLike = str | os.PathLike
CHUNK_WINDOWS = 32  # windows encoded, predicted and decoded together


def _denoise(events: Events, model: nn.Module, meta: dict[str, Any], *, decode: str | None, mode: str,
             batch_size: int, device: str, seed: int, progress: bool, keep_threshold: float = DEFAULT_KEEP_THRESHOLD,
             **predict_kw: Any) -> Events:
    windows = windows_for(events, int(meta["segment_us"]), str(meta.get("grid", "relative")))
    spec = VoxelSpec(**meta["voxel"])
    strategy = decode or meta.get("decode", DEFAULT_DECODE)
    train_size = meta.get("train_size")
    parts = []
    starts = range(0, len(windows), CHUNK_WINDOWS)
    for k, i in enumerate(tqdm(starts, desc="windows", unit="chunk", disable=not progress, leave=False)):
        sub = windows.select(slice(i, i + CHUNK_WINDOWS))
        ev = events.between(int(sub.start[0]), int(sub.end[-1]))
        pred = predict_voxels(model, encode_windows(ev, sub, spec), mode=mode, train_size=train_size,
                              batch_size=batch_size, device=device, **predict_kw)
        # One independent stream per chunk: the result does not depend on how many chunks ran before.
        chunk_seed = int(np.random.SeedSequence([seed, k]).generate_state(1)[0])
        parts.append(decode_windows(pred, sub, strategy, events_in=ev, spec=spec, seed=chunk_seed,
                                    keep_threshold=keep_threshold))
    return within_input(merge(parts, events.width, events.height), events)


def denoise_events(events: Events, model_path: PathLike, *, decode: str | None = None, mode: str = DEFAULT_MODE,
                   batch_size: int = 4, device: str = "auto", seed: int = 0, progress: bool = False,
                   **predict_kw: Any) -> Events:
    """Denoised copy of a time-sorted event stream.

    ``decode`` overrides the model's default strategy; ``keep_threshold`` goes to the ``mask``
    decoder; ``mode``/``predict_kw`` (tile, overlap, amp) go to :func:`evdenoise.infer.predict_voxels`.
    Output timestamps lie inside the input's range.
    """
    model, meta = load_model(model_path, resolve_device(device))
    return _denoise(events, model, meta, decode=decode, mode=mode, batch_size=batch_size, device=device,
                    seed=seed, progress=progress, **predict_kw)


def _denoise_file(in_path: Path, out_path: Path, model: nn.Module, meta: dict[str, Any], *, sort: bool,
                  progress: bool, **kw: Any) -> Events:
    events = read_events(in_path, sort=sort)
    out = _denoise(events, model, meta, progress=progress, **kw)
    attrs = output_attrs(in_path, kw.get("decode") or meta.get("decode", DEFAULT_DECODE))
    write_events(out_path, out, attrs=attrs, producer="evdenoise.denoise")
    log.info("%s: %d -> %d events -> %s", in_path, len(events), len(out), out_path)
    return out


def denoise_file(in_path: PathLike, out_path: PathLike, model_path: PathLike, *, decode: str | None = None,
                 mode: str = DEFAULT_MODE, batch_size: int = 4, device: str = "auto", seed: int = 0, sort: bool = False,
                 progress: bool = True, **predict_kw: Any) -> Path:
    """Denoise one event file into ``out_path`` (atomic), keeping the input's root attributes."""
    model, meta = load_model(model_path, resolve_device(device))
    _denoise_file(Path(in_path), Path(out_path), model, meta, decode=decode, mode=mode, batch_size=batch_size,
                  device=device, seed=seed, sort=sort, progress=progress, **predict_kw)
    return Path(out_path)


def denoise_dir(in_dir: PathLike, out_dir: PathLike, model_path: PathLike, *, decode: str | None = None,
                mode: str = DEFAULT_MODE, batch_size: int = 4, device: str = "auto", seed: int = 0, sort: bool = False,
                progress: bool = True, **predict_kw: Any) -> list[Path]:
    """Denoise every event file of ``in_dir`` (any format) into ``out_dir/<stem>.h5``, loading the model once."""
    files = event_files(in_dir)
    if not files:
        raise FileNotFoundError(f"{in_dir}: no event files ({', '.join(EVENT_SUFFIXES)})")
    model, meta = load_model(model_path, resolve_device(device))
    outs = []
    for f in tqdm(files, desc="files", unit="file", disable=not progress):
        out = Path(out_dir) / f"{f.stem}.h5"
        _denoise_file(f, out, model, meta, decode=decode, mode=mode, batch_size=batch_size, device=device,
                      seed=seed, sort=sort, progress=progress, **predict_kw)
        outs.append(out)
    return outs
