"""Training settings (the workflow config's ``train`` section), with no torch import: the workflow checks them
at parse time, and parsing must stay light (a DAG of 10,000 files)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from typing import Any
from collections.abc import Mapping

LOSS_NAMES = ("mse", "l1", "huber", "keep_bce")  # evdenoise.losses registers one function for each


@dataclass(frozen=True)
class Augment:
    """Augmentations applied identically to ``raw`` and ``label``."""

    flips: bool = True  # random horizontal / vertical flips
    rot90: bool = True  # random multiples of 90 degrees (only when the patch is square)
    polarity_swap: bool = True  # C=1: negate; C=2: swap the ON/OFF channels

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Augment:
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown augment key(s) {unknown}; known: {sorted(known)}")
        for k, v in d.items():
            if not isinstance(v, bool):
                raise ValueError(f"augment.{k} must be true or false, got {v!r}")
        return cls(**d)


OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("cosine", "plateau", "none")
DEVICES = ("auto", "cpu", "cuda", "mps")
# Settings that change speed but never results: left out of the resume hash.
_RESULT_NEUTRAL = ("num_workers", "threads", "cache_windows")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (the workflow config's ``train`` section); the defaults are config/config.yaml's."""

    steps: int = 1000  # optimiser steps
    batch_size: int = 4  # crops per step and process
    patch: tuple[int, int] = (64, 64)  # crop (H, W); crops always hold all time bins
    lr: float = 2e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"  # adam | adamw
    schedule: str = "cosine"  # cosine (to 0 after warmup) | plateau | none
    warmup: int = 20  # steps of linear learning-rate warm-up
    plateau_factor: float = 0.5  # plateau: lr *= factor ...
    plateau_patience: int = 2  # ... after this many validations without improvement
    grad_clip: float = 1.0  # max gradient norm; 0 = off
    loss: str = "keep_bce"  # keep_bce | mse | l1 | huber (see evdenoise.losses)
    huber_delta: float = 1.0
    empty_weight: float = 1.0  # weight of cells where raw == label == 0 (the empty majority)
    changed_weight: float = 1.0  # weight of cells where raw != label (what the model must change)
    changed_crop_p: float = 0.5  # probability that a crop is placed on a cell where raw != label
    val_every: int = 200  # validate + checkpoint every N steps (and after the last)
    patience: int = 0  # early stopping after N validations without improvement; 0 = off
    augment: Augment = field(default_factory=Augment)
    seed: int = 0
    amp: bool | None = None  # mixed precision; None ("auto") = on for CUDA
    device: str = "auto"  # auto (cuda > mps > cpu) | cpu | cuda | mps | cuda:N
    num_workers: int = 0  # DataLoader worker processes
    threads: int | None = None  # torch.set_num_threads; None = leave as is
    cache_windows: bool = False  # keep decompressed training windows in memory (large frames: IO-bound steps)
    init: str | None = None  # start from these weights: "pretrained" (the shipped model) or a model file

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"train.{name}: {why}, got {getattr(self, name)!r}")

        for name in ("steps", "batch_size", "val_every"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise bad(name, "must be an integer >= 1")
        for name in ("warmup", "plateau_patience", "patience", "seed", "num_workers"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 0:
                raise bad(name, "must be an integer >= 0")
        for name in ("lr", "weight_decay", "grad_clip", "huber_delta", "empty_weight", "changed_weight",
                     "plateau_factor", "changed_crop_p"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise bad(name, "must be a finite number >= 0")
        if self.lr <= 0 or self.huber_delta <= 0:
            raise ValueError(f"train.lr and train.huber_delta must be > 0, got {self.lr}, {self.huber_delta}")
        if not 0 < self.plateau_factor < 1:
            raise bad("plateau_factor", "must be in (0, 1)")
        if self.changed_crop_p > 1:
            raise bad("changed_crop_p", "must be a probability in [0, 1]")
        if not (isinstance(self.patch, tuple) and len(self.patch) == 2
                and all(_is_int(v) and v >= 1 for v in self.patch)):
            raise bad("patch", "must be two integers >= 1 (H, W)")
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("loss", LOSS_NAMES)):
            if getattr(self, name) not in allowed:
                raise bad(name, f"must be one of {allowed}")
        if not isinstance(self.device, str) or self.device.split(":")[0] not in DEVICES:
            raise bad("device", f"must be one of {DEVICES} (or cuda:N)")
        if self.amp is not None and not isinstance(self.amp, bool):
            raise bad("amp", "must be true, false or auto")
        if self.threads is not None and (not _is_int(self.threads) or self.threads < 1):
            raise bad("threads", "must be an integer >= 1 or null")
        if not isinstance(self.cache_windows, bool):
            raise bad("cache_windows", "must be true or false")
        if self.init is not None and (not isinstance(self.init, str) or not self.init):
            raise bad("init", "must be 'pretrained', a model file or null")
        if not isinstance(self.augment, Augment):
            raise bad("augment", "must be an Augment")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> TrainConfig:
        """Build from a plain dict (YAML); unknown keys are an error that lists the known ones."""
        d = dict(d or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"unknown train setting(s) {unknown}; known settings: {', '.join(known)}")
        if "patch" in d:
            p = d["patch"]
            d["patch"] = (p, p) if _is_int(p) else tuple(p) if isinstance(p, (list, tuple)) else p
        if "augment" in d:
            d["augment"] = Augment.from_dict(d["augment"])
        if d.get("amp") == "auto":
            d["amp"] = None
        for name in ("lr", "weight_decay", "grad_clip", "huber_delta", "empty_weight", "changed_weight",
                     "plateau_factor", "changed_crop_p"):
            if _is_int(d.get(name)):
                d[name] = float(d[name])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Plain-type dict (lists, no tuples/dataclasses) that ``from_dict`` reads back."""
        d = dataclasses.asdict(self)
        d["patch"] = list(self.patch)
        return d


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
