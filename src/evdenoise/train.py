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
from typing import Any, Iterator, Mapping, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import __version__
from .checkpoint import (DEFAULT_DECODE, config_hash, data_hash, load_checkpoint, save_checkpoint,
                         save_model, voxel_settings)
from .dataset import Augment, Frames, RandomCrops, StepSampler
from .events import atomic_path
from .infer import autocast, resolve_device
from .models import build_model

log = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("cosine", "plateau", "none")
LOSSES = ("mse", "l1", "huber", "keep_bce")
DEVICES = ("auto", "cpu", "cuda", "mps")
# Settings that change speed but never results: left out of the resume hash.
_RESULT_NEUTRAL = ("num_workers", "threads", "cache_windows")
HISTORY_COLUMNS = ("step", "train_loss", "val_loss", "lr", "seconds")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (the workflow config's ``train`` section)."""

    steps: int = 600  # optimiser steps
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
    loss: str = "mse"  # mse | l1 | huber | keep_bce (see loss_terms)
    huber_delta: float = 1.0
    empty_weight: float = 1.0  # weight of cells where raw == label == 0 (the empty majority)
    changed_weight: float = 1.0  # weight of cells where raw != label (what the model must change)
    changed_crop_p: float = 0.5  # probability that a crop is placed on a cell where raw != label
    val_every: int = 100  # validate + checkpoint every N steps (and after the last)
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
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("loss", LOSSES)):
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
    def from_dict(cls, d: Mapping[str, Any] | None) -> "TrainConfig":
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


# ----------------------------------------------------------------------------------------- loss
def loss_terms(pred: torch.Tensor, label: torch.Tensor, raw: torch.Tensor, cfg: TrainConfig
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of weighted per-cell losses, sum of weights); the loss is their ratio.

    ``mse``/``l1``/``huber`` compare counts. Cells where raw and label are both empty get
    ``empty_weight``, cells the model must change (raw != label) get ``changed_weight``, all others 1.

    ``keep_bce`` scores what the ``mask`` decoder does with a prediction: per input cell, the
    binary cross-entropy of the kept share ``pred / raw`` against the clean share ``label / raw``
    (both clipped to [0, 1]), weighted by the cell's ``|raw|`` so every input event counts once.
    MSE on counts instead weighs a cell by its count squared, so dense flare outweighs the sparse
    real events that the point-cloud and F1 metrics count one by one. Cells without input carry
    no weight (nothing there to keep); ``changed_weight`` still multiplies cells with raw != label.
    """
    pred, label, raw = pred.float(), label.float(), raw.float()
    if cfg.loss == "keep_bce":
        has = raw != 0
        safe = torch.where(has, raw, torch.ones_like(raw))
        target = (label / safe).clamp(0.0, 1.0)
        share = (pred / safe).clamp(1e-6, 1.0 - 1e-6)
        err = nn.functional.binary_cross_entropy(share, target, reduction="none")
        weight = raw.abs()
    else:
        if cfg.loss == "mse":
            err = (pred - label) ** 2
        elif cfg.loss == "l1":
            err = (pred - label).abs()
        else:
            err = nn.functional.huber_loss(pred, label, reduction="none", delta=cfg.huber_delta)
        weight = torch.ones_like(err)
        if cfg.empty_weight != 1.0:
            weight = torch.where((raw == 0) & (label == 0), cfg.empty_weight, weight)
    if cfg.changed_weight != 1.0:
        weight = torch.where(raw != label, cfg.changed_weight * weight, weight)
    return (weight * err).sum(), weight.sum()


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
    def from_env(cls) -> "_Dist":
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


def _train(cfg: TrainConfig, model_cfg: dict[str, Any], train_files: list[Path], val_files: list[Path],
           out_dir: Path, extra_meta: dict[str, Any], progress: bool, ranks: _Dist, device: torch.device) -> Path:
    settings = voxel_settings(train_files + val_files)
    model_cfg, init_state, init_sha = _init_weights(cfg.init, model_cfg, settings["voxel"])
    channels = settings["voxel"]["channels"]
    if model_cfg.setdefault("in_channels", channels) != channels:
        raise ValueError(f"model in_channels={model_cfg['in_channels']} but the voxel files have {channels} channel(s)")
    data = {"train": data_hash(train_files), "val": data_hash(val_files) if val_files else None, "init": init_sha}
    hashed = {k: v for k, v in cfg.to_dict().items() if k not in _RESULT_NEUTRAL}
    chash = config_hash(hashed, model_cfg, data, ranks.world)

    ckpt_dir = out_dir / "checkpoints"
    last_path, best_path, model_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt", out_dir / "model.pt"
    state: dict[str, Any] | None = None
    if last_path.exists():
        found = load_checkpoint(last_path)
        if found.get("config_hash") == chash:
            state = found
            if ranks.main:
                log.info("%s: resuming from step %d", out_dir, state["step"])
        elif ranks.main:
            log.warning("%s: checkpoint was made with a different configuration; starting fresh", out_dir)
    if state is None and ranks.main:
        for stale in (last_path, best_path, model_path, out_dir / "history.csv"):
            stale.unlink(missing_ok=True)

    use_amp = device.type == "cuda" if cfg.amp is None else cfg.amp and device.type == "cuda"
    if cfg.amp and device.type != "cuda":
        log.warning("amp requested but the device is %s; training in float32", device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: let cuDNN pick the fastest kernels

    torch.manual_seed(cfg.seed)
    module = build_model(model_cfg)
    if init_state is not None:
        module.load_state_dict(init_state)
    module = module.to(device)
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"model {model_cfg['name']!r} has no trainable parameters")
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    opt = opt_cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(cfg))
    plateau = (torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=cfg.plateau_factor,
                                                          patience=cfg.plateau_patience)
               if cfg.schedule == "plateau" else None)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    step, history, best, bad, elapsed, finished = 0, [], math.inf, 0, 0.0, False
    if state is not None:
        module.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if plateau is not None:
            plateau.load_state_dict(state["plateau"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        if device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        step, history, best, bad = state["step"], list(state["history"]), state["best"], state["bad"]
        elapsed, finished = state["elapsed"], state["finished"]

    model: nn.Module = module
    if ranks.world > 1:
        model = nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None)

    meta = {
        "model": model_cfg, "voxel": settings["voxel"], "segment_us": settings["segment_us"],
        "grid": settings["grid"], "train_size": settings["size"], "patch": list(cfg.patch),
        "decode": DEFAULT_DECODE, "evdenoise_version": __version__,
        "train_files": [f.name for f in train_files], "val_files": [f.name for f in val_files],
        "data_sha256": data["train"], "val_data_sha256": data["val"], "train": cfg.to_dict(),
        "config_hash": chash, "world_size": ranks.world, **extra_meta,
    }

    crops = RandomCrops(train_files, cfg.patch, cfg.steps * cfg.batch_size * ranks.world, seed=cfg.seed,
                        aug=cfg.augment, changed_crop_p=cfg.changed_crop_p, cache=cfg.cache_windows)
    loader = DataLoader(crops, batch_size=cfg.batch_size,
                        sampler=StepSampler(step, cfg.steps, cfg.batch_size, ranks.rank, ranks.world),
                        num_workers=cfg.num_workers, pin_memory=device.type == "cuda")
    frames = Frames(val_files) if val_files else None
    val_batches = frames.batches(cfg.batch_size, ranks.rank, ranks.world) if frames else []
    writer = _tensorboard(out_dir) if ranks.main and not finished else None
    if ranks.main:
        log.info("%s: training %s (%d parameters) on %s, %d train / %d val files, steps %d-%d, "
                 "batch %d x %d processes, patch %s", out_dir, model_cfg["name"], sum(p.numel() for p in params),
                 device, len(train_files), len(val_files), step, cfg.steps, cfg.batch_size, ranks.world,
                 list(cfg.patch))
    bar = tqdm(total=cfg.steps, initial=step, unit="step", dynamic_ncols=True,
               disable=not (progress and ranks.main) or finished, desc="train")

    running = torch.zeros(2, dtype=torch.float64, device=device)
    started = time.perf_counter() - elapsed
    batches = iter(loader) if not finished else iter(())
    for raw, label in batches:
        model.train()
        raw, label = raw.to(device, non_blocking=True), label.to(device, non_blocking=True)
        with autocast(device, use_amp):
            pred = model(raw)
        num, den = loss_terms(pred, label, raw, cfg)
        loss = num / den.clamp_min(1e-12)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.grad_clip > 0:
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        lr = opt.param_groups[0]["lr"]
        # LambdaLR sets lr absolutely; after warm-up it must leave the plateau scheduler's lr alone.
        if cfg.schedule == "cosine" or step < cfg.warmup:
            sched.step()
        running += torch.stack([loss.detach().double(), torch.ones((), dtype=torch.float64, device=device)])
        step += 1
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{float(loss.detach()):.4g}")
        if step % cfg.val_every and step != cfg.steps:
            continue

        totals = ranks.all_sum(running.clone())
        train_loss = float(totals[0] / totals[1])
        running.zero_()
        val_loss = _validate(module, frames, val_batches, device, use_amp, cfg, ranks) if frames else math.nan
        if plateau is not None:
            plateau.step(val_loss)
        improved = not frames or val_loss < best
        best, bad = (val_loss if frames else best, 0) if improved else (best, bad + 1)
        finished = step >= cfg.steps or bool(cfg.patience and bad >= cfg.patience)
        elapsed = time.perf_counter() - started
        history.append({"step": step, "train_loss": train_loss, "val_loss": val_loss, "lr": lr,
                        "seconds": round(elapsed, 3)})
        bar.set_postfix(loss=f"{train_loss:.4g}", val=f"{val_loss:.4g}")
        if ranks.main:
            # The log line doubles as the progress report where no terminal shows the bar (Snakemake logs).
            log.info("step %d/%d: train loss %.5g, val loss %.5g%s, lr %.3g, %.1f s", step, cfg.steps, train_loss,
                     val_loss, " (best)" if improved else "", lr, elapsed)
            if improved:
                save_model(best_path, module, {**meta, "step": step, "val_loss": val_loss})
            save_checkpoint(last_path, {
                "config_hash": chash, "step": step, "history": history, "best": best, "bad": bad,
                "elapsed": elapsed, "finished": finished, "model": module.state_dict(),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "plateau": plateau.state_dict() if plateau is not None else None,
                "scaler": scaler.state_dict(), "rng": torch.get_rng_state(),
                **({"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}),
            })
            _write_history(out_dir / "history.csv", history)
            if writer is not None:
                for key in ("train_loss", "val_loss", "lr"):
                    writer.add_scalar(key, history[-1][key], step)
        if finished:
            if step < cfg.steps and ranks.main:
                log.info("%s: early stop at step %d (no improvement in %d validations)", out_dir, step, bad)
            break
    bar.close()
    if writer is not None:
        writer.close()

    if ranks.main:
        best_model = load_checkpoint(best_path)
        save_checkpoint(model_path, {**best_model, "meta": {**best_model["meta"], "last_step": step,
                                                              "history": history}})
        _write_history(out_dir / "history.csv", history)
        log.info("%s: best validation loss %.5g at step %s -> %s", out_dir, best_model["meta"].get("val_loss", math.nan),
                 best_model["meta"].get("step"), model_path)
    if ranks.world > 1:
        dist.barrier()
    return model_path
