"""Model files and training checkpoints.

A model file (``model.pt``) carries everything needed to use the model: its config (name +
builder kwargs), the voxel settings and window length it was trained on, the training
resolution, the default decode strategy, the evdenoise version, content hashes of the data and
the training config. Only plain Python types and tensors go in, so every file loads with
``torch.load(path, weights_only=True)`` (no pickled code runs on load).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from . import __version__
from .artifacts import voxel_meta
from .events import atomic_path
from .models import build_model

MODEL_FORMAT = "evdenoise-model"
FORMAT_VERSION = 1

_PLAIN = (str, int, float, bool, type(None))


def _check_plain(value: Any, where: str) -> None:
    """Reject anything ``torch.load(weights_only=True)`` could not read back."""
    if isinstance(value, _PLAIN) or isinstance(value, torch.Tensor):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} is not a str/int")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise TypeError(f"{where}: {type(value).__name__} cannot be stored in a weights-only file")


def save_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any]) -> None:
    """Atomically write a weights-only-loadable dict of plain types and tensors."""
    _check_plain(dict(payload), str(path))
    with atomic_path(path) as tmp:
        torch.save(dict(payload), tmp)


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a file written by :func:`save_checkpoint` (weights_only=True)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such model/checkpoint file")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises many types for truncated / foreign files
        raise ValueError(f"{path}: not a readable evdenoise model/checkpoint ({err})") from None


def save_model(path: str | os.PathLike, model: nn.Module, meta: Mapping[str, Any]) -> None:
    """Write ``model``'s weights and ``meta`` (must hold ``meta["model"]``, the build config)."""
    if "model" not in meta or "name" not in meta["model"]:
        raise ValueError(f"{path}: meta must hold the model config as meta['model'] = {{'name': ..., ...}}")
    module = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    save_checkpoint(path, {"format": MODEL_FORMAT, "format_version": FORMAT_VERSION,
                           "meta": dict(meta), "state_dict": state})


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a model file describes, load its weights; returns (model in eval mode, meta)."""
    payload = load_checkpoint(path, "cpu")
    if payload.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: not an evdenoise model file (format={payload.get('format')!r})")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path}: model file format {payload['format_version']} is newer than this "
                         f"evdenoise supports ({FORMAT_VERSION})")
    meta = payload["meta"]
    try:
        model = build_model(meta["model"])
    except ValueError as err:  # e.g. a setting a newer evdenoise added
        raise ValueError(f"{path}: made by evdenoise {meta.get('evdenoise_version', '?')}, whose model this "
                         f"evdenoise {__version__} cannot build ({err})") from None
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit model {meta['model']!r}: {err}") from None
    return model.to(device).eval(), meta


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def data_hash(files: Sequence[str | os.PathLike]) -> str:
    """One sha256 over the names and contents of ``files`` (order matters: it sets sample indices)."""
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{Path(f).name}\0{file_sha256(f)}\n".encode())
    return digest.hexdigest()


def config_hash(*parts: Any) -> str:
    """Stable hash of JSON-serialisable configuration parts."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def voxel_settings(files: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """Voxel settings shared by all ``files``; raises naming the first file that differs.

    Returns ``{"voxel": {bins, channels, assignment}, "segment_us", "grid", "size": [H, W] or None}``
    (``size`` is None when the files come from sensors of different sizes).
    """
    if not files:
        raise ValueError("no voxel files given")
    first: dict[str, Any] | None = None
    sizes = set()
    for f in files:
        m = voxel_meta(f)
        settings = {"voxel": dataclasses.asdict(m.spec), "segment_us": int(m.attrs["segment_us"]),
                    "grid": str(m.attrs.get("grid", "relative"))}
        sizes.add((int(m.attrs["height"]), int(m.attrs["width"])))
        if first is None:
            first, first_file = settings, f
        elif settings != first:
            raise ValueError(f"{f}: voxel settings {settings} differ from {first_file}'s {first}")
    assert first is not None
    first["size"] = list(sizes.pop()) if len(sizes) == 1 else None
    return first
