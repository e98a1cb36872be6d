"""Train a voxel model against clean voxels: random crops in, whole-frame validation, checkpoints.

``train(cfg, model_cfg, train_files, val_files, out_dir)`` writes, under ``out_dir``:
``model.pt`` (the best-by-validation weights + everything needed to use them, see
:mod:`evdenoise.checkpoint`), ``history.csv`` (step, train_loss, val_loss, lr, seconds),
``checkpoints/last.pt`` (full training state, for resuming) and ``checkpoints/best.pt``.

Resume: re-running with the same configuration (same config hash: settings, model, data
content, world size) continues from ``checkpoints/last.pt``; on CPU the result is bit-identical
to an uninterrupted run. A different configuration starts fresh and logs that it does.

Multi-GPU: launched by ``torchrun``, each process trains on its own share of the samples
(DistributedDataParallel; nccl on CUDA, gloo on CPU); only rank 0 writes files.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from collections.abc import Iterator, Mapping, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import __version__
from .checkpoint import config_hash, data_hash, load_checkpoint, save_checkpoint, save_model, voxel_settings
from .dataset import Frames, RandomCrops, StepSampler
from .events import atomic_path
from .infer import autocast, resolve_device
from .losses import loss_terms
from .models import build_model
from .train_config import _RESULT_NEUTRAL, TrainConfig
from .defaults import DECODE

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ("step", "train_loss", "val_loss", "lr", "seconds")


# ------------------------------------------------------------------------------- distributed
@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    local_rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> _Dist:
        """Rank layout torchrun sets in the environment; a plain run is one process."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world)

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            dist.all_reduce(t)
        return t


@contextlib.contextmanager
def _torch_settings(threads: int | None, deterministic: bool) -> Iterator[None]:
    """Thread count and deterministic algorithms for the run, restored afterwards."""
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    if threads:
        torch.set_num_threads(threads)
    if deterministic:
        # warn_only: an op without a deterministic kernel must not stop training.
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)


def _device_for(cfg: TrainConfig, ranks: _Dist) -> torch.device:
    device = resolve_device(cfg.device)
    if ranks.world > 1 and device.type == "cuda":
        # One GPU per process.
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    return device


# --------------------------------------------------------------------------------- helpers
def _lr_factor(cfg: TrainConfig) -> Any:
    """Learning-rate multiplier of step s: linear warm-up, then cosine to 0 (or flat)."""
    def factor(s: int) -> float:
        warm = min(1.0, (s + 1) / cfg.warmup) if cfg.warmup else 1.0
        if cfg.schedule != "cosine":
            return warm
        progress = max(s - cfg.warmup, 0) / max(cfg.steps - cfg.warmup, 1)
        return warm * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return factor


def _write_history(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _validate(model: nn.Module, frames: Frames, batches: Sequence[Sequence[int]], device: torch.device,
              use_amp: bool, cfg: TrainConfig, ranks: _Dist) -> float:
    """Weighted loss over whole frames of every validation window (all ranks together)."""
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=device)
    with torch.inference_mode():
        for batch in batches:
            pairs = [frames[i] for i in batch]
            raw = torch.stack([p[0] for p in pairs]).to(device)
            label = torch.stack([p[1] for p in pairs]).to(device)
            with autocast(device, use_amp):
                pred = model(raw)
            num, den = loss_terms(pred, label, raw, cfg)
            total += torch.stack([num.double(), den.double()])
    total = ranks.all_sum(total)
    return float(total[0] / total[1]) if float(total[1]) > 0 else math.nan


def _tensorboard(out_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))


def _init_weights(init: str | None, model_cfg: dict[str, Any], voxel: Mapping[str, Any]
                  ) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None, str | None]:
    """(model config, weights, their file's sha256) to start from: the init model's own, or none.

    Fine-tuning keeps the init model's architecture (its weights fit nothing else); its voxel settings
    must be the data's, since the weights read voxels made that way.
    """
    if init is None:
        return model_cfg, None, None
    from .checkpoint import file_sha256
    from .pretrained import require_model

    path = require_model() if init == "pretrained" else Path(init)
    payload = load_checkpoint(path)
    meta = payload.get("meta", {})
    if meta.get("voxel") != dict(voxel):
        raise ValueError(f"train.init: {path} was trained on voxels {meta.get('voxel')}, the data has {dict(voxel)}")
    if {k: v for k, v in model_cfg.items() if k != "in_channels"} != {
            k: v for k, v in meta["model"].items() if k != "in_channels"}:
        log.info("train.init: fine-tuning %s's model %s (the config's model section is not used)", path, meta["model"])
    return dict(meta["model"]), payload["state_dict"], file_sha256(path)


# ----------------------------------------------------------------------------------- train
def train(cfg: TrainConfig | Mapping[str, Any], model_cfg: Mapping[str, Any], train_files: Sequence[Path],
          val_files: Sequence[Path], out_dir: Path, *, extra_meta: Mapping[str, Any] | None = None,
          progress: bool = True) -> Path:
    """Train ``model_cfg`` on voxel files; returns ``out_dir / "model.pt"`` (best-by-validation weights).

    ``extra_meta`` (plain types) is stored in the model file's meta and may override defaults
    such as ``decode``. Without validation files the last weights are kept.
    """
    if not isinstance(cfg, TrainConfig):
        cfg = TrainConfig.from_dict(cfg)
    train_files, val_files, out_dir = [Path(f) for f in train_files], [Path(f) for f in val_files], Path(out_dir)
    if not train_files:
        raise ValueError("train: no training files")
    if not val_files and (cfg.schedule == "plateau" or cfg.patience):
        raise ValueError("train: schedule 'plateau' and early stopping (patience > 0) need validation files")
    ranks = _Dist.from_env()
    own_group = ranks.world > 1 and not dist.is_initialized()
    device = _device_for(cfg, ranks)
    if own_group:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        with _torch_settings(cfg.threads, deterministic=device.type == "cpu"):
            return _train(cfg, dict(model_cfg), train_files, val_files, out_dir, dict(extra_meta or {}),
                          progress, ranks, device)
    finally:
        if own_group:
            dist.destroy_process_group()


class _Schedule:
    """The learning-rate schedule in one place: warm-up + cosine (or flat) per step, plateau per validation."""

    def __init__(self, opt: torch.optim.Optimizer, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.per_step = torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(cfg))
        self.plateau = (torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=cfg.plateau_factor,
                                                                   patience=cfg.plateau_patience)
                        if cfg.schedule == "plateau" else None)

    def after_step(self, step: int) -> None:
        """Called after optimiser step ``step`` (0-based)."""
        # LambdaLR sets lr absolutely; after warm-up it must leave the plateau scheduler's lr alone.
        if self.cfg.schedule == "cosine" or step < self.cfg.warmup:
            self.per_step.step()

    def after_validation(self, val_loss: float) -> None:
        if self.plateau is not None:
            self.plateau.step(val_loss)

    def state_dict(self) -> dict[str, Any]:
        return {"per_step": self.per_step.state_dict(),
                "plateau": self.plateau.state_dict() if self.plateau is not None else None}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.per_step.load_state_dict(state["per_step"])
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])


class _Rng:
    """The global torch generators (dropout, augmentation in the main process)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def state_dict(self) -> dict[str, Any]:
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return {"cpu": torch.get_rng_state(), "cuda": cuda}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        torch.set_rng_state(state["cpu"])
        if self.device.type == "cuda" and state["cuda"] is not None:
            torch.cuda.set_rng_state(state["cuda"], self.device)


@dataclass
class _Progress:
    """Where training stands: steps done, validation history, early-stopping count."""

    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: float = math.inf
    bad: int = 0  # validations since the last improvement
    elapsed: float = 0.0
    finished: bool = False

    def record(self, row: dict[str, Any], has_val: bool, cfg: TrainConfig) -> bool:
        """Add a validation's history row; returns whether it improved on the best so far."""
        improved = not has_val or row["val_loss"] < self.best
        self.best, self.bad = (row["val_loss"] if has_val else self.best, 0) if improved else (self.best, self.bad + 1)
        self.finished = self.step >= cfg.steps or bool(cfg.patience and self.bad >= cfg.patience)
        self.elapsed = row["seconds"]
        self.history.append(row)
        return improved

    def state_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for f in fields(self):
            setattr(self, f.name, state[f.name])
        self.history = list(self.history)


# Bumped when the parts or their state change: a checkpoint of another layout starts a fresh run.
_CHECKPOINT_LAYOUT = 2


class _Trainer:
    """Model, optimiser, schedule, gradient scaler, RNG and progress: each part owns its state.

    ``state_dict`` / ``load_state_dict`` go over :meth:`parts`, the one list of what a checkpoint holds.
    """

    def __init__(self, cfg: TrainConfig, model_cfg: dict[str, Any], init_state: dict[str, torch.Tensor] | None,
                 device: torch.device, config_hash: str) -> None:
        self.cfg, self.device, self.config_hash = cfg, device, config_hash
        self.use_amp = device.type == "cuda" if cfg.amp is None else cfg.amp and device.type == "cuda"
        torch.manual_seed(cfg.seed)
        module = build_model(model_cfg)
        if init_state is not None:
            module.load_state_dict(init_state)
        self.module = module.to(device)
        self.params = [p for p in self.module.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError(f"model {model_cfg['name']!r} has no trainable parameters")
        opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        self.opt = opt_cls(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.schedule = _Schedule(self.opt, cfg)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.progress = _Progress()
        self.ranks = _Dist()
        self.model: nn.Module = self.module  # DDP wrapper when distributed: see wrap()

    def parts(self) -> dict[str, Any]:
        return {"model": self.module, "optimizer": self.opt, "schedule": self.schedule, "scaler": self.scaler,
                "rng": _Rng(self.device)}

    def state_dict(self) -> dict[str, Any]:
        # Progress at the top level: a checkpoint's "step" is read without knowing the layout.
        return {"layout": _CHECKPOINT_LAYOUT, "config_hash": self.config_hash, **self.progress.state_dict(),
                **{name: part.state_dict() for name, part in self.parts().items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name, part in self.parts().items():
            part.load_state_dict(state[name])
        self.progress.load_state_dict(state)

    def matches(self, state: Mapping[str, Any]) -> bool:
        """Whether a checkpoint continues this very run."""
        return state.get("layout") == _CHECKPOINT_LAYOUT and state.get("config_hash") == self.config_hash

    def wrap(self, ranks: _Dist) -> None:
        self.ranks = ranks
        if ranks.world > 1:
            self.model = nn.parallel.DistributedDataParallel(
                self.module, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def _mean_den(self, den: torch.Tensor) -> torch.Tensor:
        """The loss normaliser averaged over the ranks. keep_bce's normaliser (the events in the crops) differs
        per rank; DDP averages gradients, so dividing each rank's sum by the mean normaliser trains exactly like
        one process on all the crops."""
        if self.ranks.world == 1:
            return den
        return self.ranks.all_sum(den.detach().clone()) / self.ranks.world

    def train_step(self, raw: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, float]:
        """One optimiser step; returns (the batch's loss, the learning rate it used)."""
        self.model.train()
        raw, label = raw.to(self.device, non_blocking=True), label.to(self.device, non_blocking=True)
        with autocast(self.device, self.use_amp):
            pred = self.model(raw)
        num, den = loss_terms(pred, label, raw, self.cfg)
        loss = num / self._mean_den(den).clamp_min(1e-12)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.opt)
            nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        lr = self.opt.param_groups[0]["lr"]
        self.schedule.after_step(self.progress.step)
        self.progress.step += 1
        return loss.detach(), lr


@dataclass
class _Run:
    """One training run's inputs and output paths (what stays fixed while it trains)."""

    cfg: TrainConfig
    train_files: list[Path]
    val_files: list[Path]
    out_dir: Path
    ranks: _Dist
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def last(self) -> Path:
        return self.out_dir / "checkpoints" / "last.pt"

    @property
    def best(self) -> Path:
        return self.out_dir / "checkpoints" / "best.pt"

    @property
    def model(self) -> Path:
        return self.out_dir / "model.pt"

    @property
    def history(self) -> Path:
        return self.out_dir / "history.csv"


def _create_trainer(run: _Run, model_cfg: dict[str, Any], extra_meta: dict[str, Any], device: torch.device
                    ) -> _Trainer:
    """The trainer for ``run``: model config and weights to start from, resume hash, the model file's meta."""
    cfg, ranks = run.cfg, run.ranks
    settings = voxel_settings(run.train_files + run.val_files)
    model_cfg, init_state, init_sha = _init_weights(cfg.init, model_cfg, settings["voxel"])
    channels = settings["voxel"]["channels"]
    if model_cfg.setdefault("in_channels", channels) != channels:
        raise ValueError(f"model in_channels={model_cfg['in_channels']} but the voxel files have {channels} channel(s)")
    data = {"train": data_hash(run.train_files), "val": data_hash(run.val_files) if run.val_files else None,
            "init": init_sha}
    hashed = {k: v for k, v in cfg.to_dict().items() if k not in _RESULT_NEUTRAL}
    chash = config_hash(hashed, model_cfg, data, ranks.world)
    run.meta = {
        "model": model_cfg, "voxel": settings["voxel"], "segment_us": settings["segment_us"],
        "grid": settings["grid"], "train_size": settings["size"], "patch": list(cfg.patch),
        "decode": DECODE, "evdenoise_version": __version__,
        "train_files": [f.name for f in run.train_files], "val_files": [f.name for f in run.val_files],
        "data_sha256": data["train"], "val_data_sha256": data["val"], "init_sha256": init_sha, "train": cfg.to_dict(),
        "config_hash": chash, "world_size": ranks.world, **extra_meta,
    }
    if cfg.amp and device.type != "cuda":
        log.warning("amp requested but the device is %s; training in float32", device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: let cuDNN pick the fastest kernels
    return _Trainer(cfg, model_cfg, init_state, device, chash)


def _resume(run: _Run, trainer: _Trainer) -> None:
    """Continue from ``last.pt`` when it belongs to this run; else clear what an older run left."""
    if run.last.exists():
        found = load_checkpoint(run.last)
        if trainer.matches(found):
            trainer.load_state_dict(found)
            if run.ranks.main:
                log.info("%s: resuming from step %d", run.out_dir, trainer.progress.step)
            return
        if run.ranks.main:
            log.warning("%s: checkpoint was made with a different configuration; starting fresh", run.out_dir)
    if run.ranks.main:
        for stale in (run.last, run.best, run.model, run.history):
            stale.unlink(missing_ok=True)


def _train(cfg: TrainConfig, model_cfg: dict[str, Any], train_files: list[Path], val_files: list[Path],
           out_dir: Path, extra_meta: dict[str, Any], progress: bool, ranks: _Dist, device: torch.device) -> Path:
    run = _Run(cfg, train_files, val_files, out_dir, ranks)
    trainer = _create_trainer(run, model_cfg, extra_meta, device)
    _resume(run, trainer)
    trainer.wrap(ranks)
    _loop(run, trainer, progress)
    if ranks.main:
        best_model = load_checkpoint(run.best)
        history = trainer.progress.history
        save_checkpoint(run.model, {**best_model, "meta": {**best_model["meta"], "last_step": trainer.progress.step,
                                                            "history": history}})
        _write_history(run.history, history)
        log.info("%s: best validation loss %.5g at step %s -> %s", out_dir,
                 best_model["meta"].get("val_loss", math.nan), best_model["meta"].get("step"), run.model)
    if ranks.world > 1:
        dist.barrier()
    return run.model


def _loop(run: _Run, trainer: _Trainer, progress: bool) -> None:
    """Optimiser steps until the last step or early stopping, validating every ``val_every`` steps."""
    cfg, ranks, device, state = run.cfg, run.ranks, trainer.device, trainer.progress
    crops = RandomCrops(run.train_files, cfg.patch, cfg.steps * cfg.batch_size * ranks.world, seed=cfg.seed,
                        aug=cfg.augment, changed_crop_p=cfg.changed_crop_p, cache=cfg.cache_windows)
    loader = DataLoader(crops, batch_size=cfg.batch_size,
                        sampler=StepSampler(state.step, cfg.steps, cfg.batch_size, ranks.rank, ranks.world),
                        num_workers=cfg.num_workers, pin_memory=device.type == "cuda")
    frames = Frames(run.val_files) if run.val_files else None
    val_batches = frames.batches(cfg.batch_size, ranks.rank, ranks.world) if frames else []
    writer = _tensorboard(run.out_dir) if ranks.main and not state.finished else None
    if ranks.main:
        log.info("%s: training %s (%d parameters) on %s, %d train / %d val files, steps %d-%d, "
                 "batch %d x %d processes, patch %s", run.out_dir, run.meta["model"]["name"],
                 sum(p.numel() for p in trainer.params), device, len(run.train_files), len(run.val_files),
                 state.step, cfg.steps, cfg.batch_size, ranks.world, list(cfg.patch))
    bar = tqdm(total=cfg.steps, initial=state.step, unit="step", dynamic_ncols=True,
               disable=not (progress and ranks.main) or state.finished, desc="train")
    running = torch.zeros(2, dtype=torch.float64, device=device)
    started = time.perf_counter() - state.elapsed
    for raw, label in (iter(loader) if not state.finished else iter(())):
        loss, lr = trainer.train_step(raw, label)
        running += torch.stack([loss.double(), torch.ones((), dtype=torch.float64, device=device)])
        bar.update(1)
        if state.step % 10 == 0:
            bar.set_postfix(loss=f"{float(loss):.4g}")
        if state.step % cfg.val_every and state.step != cfg.steps:
            continue
        totals = ranks.all_sum(running.clone())
        running.zero_()
        val_loss = _validate(trainer.module, frames, val_batches, device, trainer.use_amp, cfg, ranks) \
            if frames else math.nan
        trainer.schedule.after_validation(val_loss)
        row = {"step": state.step, "train_loss": float(totals[0] / totals[1]), "val_loss": val_loss, "lr": lr,
               "seconds": round(time.perf_counter() - started, 3)}
        improved = state.record(row, frames is not None, cfg)
        bar.set_postfix(loss=f"{row['train_loss']:.4g}", val=f"{val_loss:.4g}")
        if ranks.main:
            _save(run, trainer, improved, writer)
        if state.finished:
            if state.step < cfg.steps and ranks.main:
                log.info("%s: early stop at step %d (no improvement in %d validations)", run.out_dir, state.step,
                         state.bad)
            break
    bar.close()
    if writer is not None:
        writer.close()


def _save(run: _Run, trainer: _Trainer, improved: bool, writer: Any) -> None:
    """After a validation (rank 0): log it, keep the best weights, the checkpoint, history and TensorBoard."""
    state, row = trainer.progress, trainer.progress.history[-1]
    # The log line doubles as the progress report where no terminal shows the bar (Snakemake logs).
    log.info("step %d/%d: train loss %.5g, val loss %.5g%s, lr %.3g, %.1f s", state.step, run.cfg.steps,
             row["train_loss"], row["val_loss"], " (best)" if improved else "", row["lr"], row["seconds"])
    if improved:
        save_model(run.best, trainer.module, {**run.meta, "step": state.step, "val_loss": row["val_loss"]})
    save_checkpoint(run.last, trainer.state_dict())
    _write_history(run.history, state.history)
    if writer is not None:
        for key in ("train_loss", "val_loss", "lr"):
            writer.add_scalar(key, row[key], state.step)
