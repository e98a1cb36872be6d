"""Shared helpers for the training/inference tests: tiny models, tiny voxel files, a train entry point.

Run as a script (``python tests/_trainkit.py '<json>'`` or under ``torchrun``) it trains with
the JSON's ``cfg``, ``model``, ``train``, ``val``, ``out``: the resume and DDP tests start it
as a separate process.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from evdenoise.artifacts import write_voxels
from evdenoise.models import register
from evdenoise.voxel import VoxelSpec
from evdenoise.windows import make_windows


class TinyConv(nn.Module):
    """x + conv(relu(conv(x))): receptive field 5 cells, no normalisation (batch-size independent)."""

    def __init__(self, in_channels: int = 1, hidden: int = 4) -> None:
        super().__init__()
        self.a = nn.Conv3d(in_channels, hidden, 3, padding=1)
        self.b = nn.Conv3d(hidden, in_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(torch.relu(self.a(x)))


class Frozen(nn.Module):
    """Identity with a trainable parameter that gets zero gradient: validation loss never changes."""

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.0 * self.p


register("test_tiny_conv")(lambda in_channels=1, hidden=4: TinyConv(in_channels, hidden))
register("test_frozen")(lambda in_channels=1: Frozen(in_channels))


def voxel_pair(rng: np.random.Generator, shape: tuple[int, ...], density: float = 0.1,
               noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Sparse integer (S, C, B, H, W) voxels: label = signal, raw = signal + isolated noise counts."""
    signal = (rng.random(shape) < density) * rng.integers(-2, 3, shape)
    extra = (rng.random(shape) < noise) * rng.choice([-1, 1], shape)
    return (signal + extra).astype(np.float32), signal.astype(np.float32)


def write_pair_file(path: Path, raw: np.ndarray, label: np.ndarray, segment_us: int = 20000,
                    assignment: str = "nearest") -> Path:
    S, C, B = raw.shape[:3]
    windows = make_windows(0, S * segment_us - 1, segment_us)
    write_voxels(path, {"raw": raw, "label": label}, windows, VoxelSpec(B, C, assignment))
    return path


def make_files(root: Path, n: int = 2, shape: tuple[int, ...] = (3, 1, 4, 24, 28), seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    return [write_pair_file(root / f"pair{i}.h5", *voxel_pair(rng, shape)) for i in range(n)]


def main(args: dict) -> None:
    from evdenoise.train import train

    train(args["cfg"], args["model"], args["train"], args["val"], Path(args["out"]), progress=False)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
