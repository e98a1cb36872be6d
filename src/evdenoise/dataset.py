"""Torch datasets over voxel files (datasets ``raw`` and ``label``, each (S, C, B, H, W)).

Files are opened lazily, once per process (so DataLoader workers never share an h5py handle,
and the datasets pickle cleanly). Every random choice of training sample ``i`` comes from a
generator seeded with ``(seed, i)``: a batch is the same whatever the number of workers, the
rank layout or whether the run was resumed, which is what makes resumed runs bit-identical.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from collections.abc import Iterator, Sequence

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .events import EventFileError, open_h5
from .train_config import Augment
from .voxel import pad_to


def augment(raw: np.ndarray, label: np.ndarray, aug: Augment, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:
    """Apply the same random flips / rotation / polarity swap to two (C, B, H, W) grids."""
    ops: list[Any] = []
    if aug.flips:
        axes = tuple(a for a, flip in ((-1, rng.random() < 0.5), (-2, rng.random() < 0.5)) if flip)
        if axes:
            ops.append(lambda a: np.flip(a, axis=axes))
    if aug.rot90 and raw.shape[-1] == raw.shape[-2]:
        k = int(rng.integers(4))
        if k:
            ops.append(lambda a: np.rot90(a, k, axes=(-2, -1)))
    if aug.polarity_swap and rng.random() < 0.5:
        ops.append(lambda a: -a if a.shape[0] == 1 else a[::-1])
    for op in ops:
        raw, label = op(raw), op(label)
    return np.ascontiguousarray(raw), np.ascontiguousarray(label)


_Packed = np.ndarray | tuple[tuple[int, ...], np.ndarray, np.ndarray]


def _pack(a: np.ndarray) -> _Packed:
    """``a`` as (shape, flat indices, values) when that is smaller, else ``a`` itself (lossless)."""
    flat = a.reshape(-1)
    idx = np.flatnonzero(flat)
    if idx.size * 2 >= flat.size or flat.size >= 2**31:
        return a
    return a.shape, idx.astype(np.int32), flat[idx]


def _unpack(p: _Packed) -> np.ndarray:
    if isinstance(p, np.ndarray):
        return p
    shape, idx, values = p
    out = np.zeros(int(np.prod(shape)), values.dtype)
    out[idx] = values
    return out.reshape(shape)


class _VoxelFiles:
    """Window-level access to the ``raw``/``label`` pairs of many voxel files, opened lazily."""

    def __init__(self, files: Sequence[str | os.PathLike], cache: bool = False) -> None:
        self.files = [Path(f) for f in files]
        # Decompressed windows kept in memory: a gzip-compressed 640x480 window pair takes ~0.1-1 s to read,
        # longer than a training step's compute. Kept sparse (most cells are empty: 4-30 % are not), so 600
        # windows of 640x480 fit in a few GB instead of 24.
        self._cache: dict[int, tuple[_Packed, _Packed]] | None = {} if cache else None
        if not self.files:
            raise ValueError("no voxel files given")
        counts = []
        self.shapes: list[tuple[int, ...]] = []
        for f in self.files:
            with open_h5(f) as h:
                for name in ("raw", "label"):
                    if name not in h or not isinstance(h[name], h5py.Dataset) or h[name].ndim != 5:
                        raise EventFileError(f, f"no 5-D voxel dataset /{name} (S, C, B, H, W)")
                if h["raw"].shape != h["label"].shape:
                    raise EventFileError(f, f"/raw {h['raw'].shape} and /label {h['label'].shape} differ in shape")
                self.shapes.append(tuple(h["raw"].shape))
                counts.append(h["raw"].shape[0])
        channels = {s[1:3] for s in self.shapes}
        if len(channels) > 1:
            raise ValueError(f"voxel files disagree on (channels, bins): {sorted(channels)}")
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._handles: list[h5py.File] | None = None
        self._pid = -1

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handles": None, "_pid": -1, "_cache": None if self._cache is None else {}}

    def locate(self, index: int) -> tuple[int, int]:
        """(file number, window number) of global window ``index``."""
        f = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return f, int(index - self.offsets[f])

    def window(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is None:
            return self._read(index)
        if index not in self._cache:
            self._cache[index] = tuple(_pack(a) for a in self._read(index))  # type: ignore[assignment]
        raw, label = self._cache[index]
        return _unpack(raw), _unpack(label)

    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        # A forked worker inherits the parent's handles; h5py handles must not cross processes.
        if self._pid != os.getpid():
            self._handles = [open_h5(f) for f in self.files]
            self._pid = os.getpid()
        assert self._handles is not None
        f, s = self.locate(index)
        h = self._handles[f]
        return h["raw"][s], h["label"][s]


class RandomCrops(Dataset):
    """Random (C, B, h, w) crops (all bins) of random windows, for training.

    With probability ``changed_crop_p`` the crop is placed so that it contains a random cell
    where ``raw != label`` (a cell the model has to change), so patches are not mostly empty
    or already clean; otherwise it is uniform. Frames smaller than the patch are zero-padded.
    """

    def __init__(self, files: Sequence[str | os.PathLike], patch: tuple[int, int], length: int, *,
                 seed: int = 0, aug: Augment = Augment(), changed_crop_p: float = 0.5, cache: bool = False) -> None:
        self.data = _VoxelFiles(files, cache)
        self.patch = (int(patch[0]), int(patch[1]))
        self.length = int(length)
        self.seed = int(seed)
        self.aug = aug
        self.changed_crop_p = float(changed_crop_p)

    def __len__(self) -> int:
        return self.length

    def _origin(self, rng: np.random.Generator, raw: np.ndarray, label: np.ndarray) -> tuple[int, int]:
        (h, w), (H, W) = self.patch, raw.shape[-2:]
        max_y, max_x = max(H - h, 0), max(W - w, 0)
        if rng.random() < self.changed_crop_p:
            ys, xs = np.nonzero((raw != label).any(axis=(0, 1)))
            if len(ys):
                k = int(rng.integers(len(ys)))
                # Uniform over the crops that contain the chosen cell.
                lo_y, hi_y = max(ys[k] - h + 1, 0), min(ys[k], max_y)
                lo_x, hi_x = max(xs[k] - w + 1, 0), min(xs[k], max_x)
                return int(rng.integers(lo_y, hi_y + 1)), int(rng.integers(lo_x, hi_x + 1))
        return int(rng.integers(max_y + 1)), int(rng.integers(max_x + 1))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(index)])
        raw, label = self.data.window(int(rng.integers(len(self.data))))
        y0, x0 = self._origin(rng, raw, label)
        h, w = self.patch
        crop = (Ellipsis, slice(y0, y0 + h), slice(x0, x0 + w))
        # Frames smaller than the patch are zero-padded (no events) up to it.
        raw, label = pad_to(raw[crop], (1, 1), (h, w))[0], pad_to(label[crop], (1, 1), (h, w))[0]
        raw, label = augment(raw, label, self.aug, rng)
        return torch.from_numpy(raw), torch.from_numpy(label)


class StepSampler(Sampler[int]):
    """Sample indices of steps ``start..steps-1`` for one rank: step s, rank r takes the
    ``batch_size`` indices from ``(s * world + r) * batch_size`` on, so ranks never overlap and
    a resumed run continues exactly where it stopped."""

    def __init__(self, start: int, steps: int, batch_size: int, rank: int = 0, world: int = 1) -> None:
        self.start, self.steps, self.batch_size, self.rank, self.world = start, steps, batch_size, rank, world

    def __len__(self) -> int:
        return max(self.steps - self.start, 0) * self.batch_size

    def __iter__(self) -> Iterator[int]:
        for s in range(self.start, self.steps):
            first = (s * self.world + self.rank) * self.batch_size
            yield from range(first, first + self.batch_size)


class Frames(Dataset):
    """Whole (C, B, H, W) frames of every window, for validation."""

    def __init__(self, files: Sequence[str | os.PathLike]) -> None:
        self.data = _VoxelFiles(files)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        raw, label = self.data.window(int(index))
        return torch.from_numpy(raw), torch.from_numpy(label)

    def batches(self, batch_size: int, rank: int = 0, world: int = 1) -> list[list[int]]:
        """Batches of consecutive windows of one file each (frame sizes may differ between
        files), dealt round-robin to ``world`` ranks; this rank's share."""
        out = []
        for f in range(len(self.data.files)):
            lo, hi = int(self.data.offsets[f]), int(self.data.offsets[f + 1])
            out += [list(range(i, min(i + batch_size, hi))) for i in range(lo, hi, batch_size)]
        return out[rank::world]
