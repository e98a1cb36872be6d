"""Speed (and, separately, quality at equal budget) of our voxel models against pytorch-3dunet's ResidualUNet3D.

Timing part (run by default):
  * forward time per 20 ms window at 640x480, 8 bins, C=1, batch 1, no grad, eval mode;
  * one training step (forward + MSE backward + Adam) on 128x128 crops, batch 2;
  * parameter counts and conv multiply-accumulates per window (hardware-independent, noise-free).
Each model is timed ``--repeats`` times, interleaved round-robin so background load hits all alike; the table
shows the minimum (the least-disturbed run) and the median of wall time, and the minimum process CPU time of
the forward pass (all threads; less sensitive to other jobs stealing the cores). The CPU may be shared with
other jobs: expect noise, and compare ratios rather than absolute times.

Reference: ``pytorch3dunet.unet3d.model.ResidualUNet3D`` with E-Deflare's settings (f_maps [32, 64, 128, 256],
GroupNorm 8, layer_order "gcr", regression output). It max-pools (2, 2, 2) between its 4 levels, so 8 time bins
become 4, 2, 1: they survive, but the bottleneck has a single time bin and the input needs B divisible by 8.

Quality part (``--quality-steps N``): the default model (``config/config.yaml``'s ``model``) and ResidualUNet3D are
each trained N steps on the embedded default data (the config's synthetic set, split and voxelized under ``--work``)
with the config's ``train`` settings - same crops in the same order, same validation frames - once with the
default loss and once with MSE; their final validation losses are printed beside the input's own. At 150 steps
a run's loss moves by 10-20 % with the seed (docs/ablations.md), so ``--quality-seeds`` trains each pair once per
seed and the table shows every seed and the mean.

Last line: ``default_speedup_vs_residualunet3d: X`` (forward-time ratio, ResidualUNet3D / our default).

Needs the benchmark extra: ``pip install pytorch3dunet`` (imported lazily).
Usage: python benchmarks/bench_model.py [--repeats 3] [--threads 2] [--quality-steps 0] [--quality-seeds 0 1 2]
       [--work DIR]
"""
from __future__ import annotations

import argparse
import csv
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable, Mapping

import torch
from torch import nn

from evdenoise.models import build_model
import yaml

ROOT = Path(__file__).resolve().parents[1]


def load_config(path: Path) -> dict[str, Any]:
    with open(path) as f:
        return yaml.safe_load(f)

WINDOW = (1, 1, 8, 480, 640)  # one 20 ms window of a 640x480 sensor, 8 bins, C=1
CROPS = (2, 1, 8, 128, 128)  # a training batch of 128x128 crops

CONFIG = load_config(ROOT / "config" / "config.yaml")  # the workflow's defaults
DEFAULT_MODEL = {k: v for k, v in CONFIG["model"].items() if k != "pretrained"}
PRETRAINED_MODEL = load_config(ROOT / "config" / "pretrained.yaml")["model"]  # the shipped model's architecture
OUR_MODELS: dict[str, dict[str, Any]] = {
    "unet3d (default)": DEFAULT_MODEL,
    "unet3d + context (pretrained)": PRETRAINED_MODEL,
    "unet3d factorised": {"name": "unet3d", "factorised": True},
    "unet3d f_maps [16,32,64]": {"name": "unet3d", "f_maps": [16, 32, 64]},
    "smp Unet resnet18": {"name": "smp", "arch": "Unet", "encoder_name": "resnet18"},
    "umamba (default)": {"name": "umamba"},
    "identity": {"name": "identity"},
}
REFERENCE = "pytorch3dunet ResidualUNet3D"
REFERENCE_TIME_LAST = "  same, fed time-last (H,W,B)"


class TimeLast(nn.Module):
    """Runs a network on (N, C, H, W, B) channels-last: the layout trick our unet3d uses internally (PyTorch's
    CPU heuristic sends small batch-1 3-D convolutions with B in front to a slow kernel). ResidualUNet3D pools
    (2, 2, 2), symmetric in its axes, so the permuted run has the same cost structure; shown for a fair split
    of our speed-up into "layout" and "architecture"."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 1, 3, 4, 2).contiguous(memory_format=torch.channels_last_3d)
        return self.net(x).permute(0, 1, 4, 2, 3).contiguous()


def residual_unet3d(in_channels: int = 1) -> nn.Module:
    """pytorch-3dunet's ResidualUNet3D as E-Deflare configures it (imported lazily: a benchmark extra)."""
    from pytorch3dunet.unet3d.model import ResidualUNet3D

    return ResidualUNet3D(
        in_channels=in_channels, out_channels=in_channels, final_sigmoid=False, f_maps=[32, 64, 128, 256],
        layer_order="gcr", num_groups=8, is_segmentation=False,
    )


def conv_macs(model: nn.Module, shape: tuple[int, ...]) -> float:
    """Multiply-accumulates of every (transposed) 3-D convolution for one forward pass on ``shape``, in G."""
    total = 0

    def hook(mod: nn.Module, inputs: Any, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.ConvTranspose3d):  # every input voxel is spread over the kernel
            total += inputs[0].numel() * mod.out_channels // mod.groups * math.prod(mod.kernel_size)
        else:
            total += out.numel() * mod.in_channels // mod.groups * math.prod(mod.kernel_size)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d))]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(shape))
    finally:
        for h in handles:
            h.remove()
    return total / 1e9


def forward_timer(model: nn.Module, shape: tuple[int, ...]) -> Callable[[], tuple[float, float]]:
    """A function that runs one forward pass and returns (wall seconds, process CPU seconds)."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))

    def run() -> tuple[float, float]:
        model.eval()
        with torch.no_grad():
            t0, c0 = time.perf_counter(), time.process_time()
            model(x)
            return time.perf_counter() - t0, time.process_time() - c0

    return run


def train_step_timer(model: nn.Module, shape: tuple[int, ...]) -> Callable[[], float]:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(trainable, lr=1e-4) if trainable else None

    def run() -> float:
        model.train()
        t0 = time.perf_counter()
        loss = nn.functional.mse_loss(model(x), y)
        if opt is not None:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return time.perf_counter() - t0

    return run


def timing_table(models: Mapping[str, nn.Module], repeats: int) -> list[dict[str, Any]]:
    """Time every model (forward on WINDOW, train step on CROPS), round-robin, keep min and median."""
    timers = {name: (forward_timer(m, WINDOW), train_step_timer(m, CROPS)) for name, m in models.items()}
    for fwd, step in timers.values():  # warm-up: allocator, oneDNN primitive caches
        fwd()
        step()
    samples: dict[str, tuple[list[float], list[float], list[float]]] = {name: ([], [], []) for name in models}
    for _ in range(repeats):
        for name, (fwd, step) in timers.items():
            wall, cpu = fwd()
            samples[name][0].append(wall)
            samples[name][1].append(cpu)
            samples[name][2].append(step())
    rows = []
    for name, model in models.items():
        fwd_s, cpu_s, step_s = samples[name]
        rows.append({
            "model": name,
            "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "gmacs": conv_macs(model, WINDOW),
            "fwd_min": min(fwd_s), "fwd_med": statistics.median(fwd_s), "fwd_cpu": min(cpu_s),
            "step_min": min(step_s), "step_med": statistics.median(step_s),
        })
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    ref = next(r for r in rows if r["model"] == REFERENCE)
    print(f"{'model':<30} {'params':>11} {'GMAC/win':>9} {'fwd s/win':>10} {'(median)':>9} "
          f"{'x faster':>9} {'fwd CPU s':>10} {'x faster':>9} {'step s':>8} {'(median)':>9}")
    for r in rows:
        print(f"{r['model']:<30} {r['params']:>11,} {r['gmacs']:>9.1f} {r['fwd_min']:>10.3f} {r['fwd_med']:>9.3f} "
              f"{ref['fwd_min'] / r['fwd_min']:>9.1f} {r['fwd_cpu']:>10.3f} "
              f"{ref['fwd_cpu'] / max(r['fwd_cpu'], 1e-9):>9.1f} "
              f"{r['step_min']:>8.3f} {r['step_med']:>9.3f}")


# ------------------------------------------------------------------------------ quality at equal budget
def identity_loss(val_files: list[Path], train_cfg: Mapping[str, Any]) -> float:
    """Validation loss of the untouched input (the trainer refuses a model without parameters)."""
    from evdenoise.dataset import Frames
    from evdenoise.train import TrainConfig, loss_terms

    cfg, frames = TrainConfig.from_dict(train_cfg), Frames(val_files)
    num = den = 0.0
    for i in range(len(frames)):
        raw, label = frames[i]
        n, d = loss_terms(raw, label, raw, cfg)
        num, den = num + float(n), den + float(d)
    return num / den


def default_voxels(work: Path) -> dict[str, list[Path]]:
    """The embedded default data (config.yaml's data.synthetic), split and voxelized as `make run` does it,
    under ``work`` (built once: Snakemake is not involved, so a changed config needs a fresh ``work``)."""
    from evdenoise.stages import split_file, voxelize_file
    from evdenoise.synth import SynthConfig, synthesize
    from evdenoise.voxel import VoxelSpec

    syn, win = CONFIG["data"]["synthetic"], CONFIG["windows"]
    if not (work / "data" / "manifest.csv").exists():
        synthesize(work / "data", counts=syn["counts"], seed=syn["seed"], cfg=SynthConfig.from_dict(
            {"width": syn["width"], "height": syn["height"], "duration_us": syn["duration_us"], **syn["params"]}))
    vox: dict[str, list[Path]] = {}
    for split in ("train", "val"):
        for noisy in sorted((work / "data" / split / "noisy").glob("*_bg_flare.h5")):
            name = noisy.name.removesuffix("_bg_flare.h5")
            seg, out = work / "segments" / f"{name}.h5", work / "voxels" / f"{name}.h5"
            if not out.exists():
                split_file(noisy, noisy.parents[1] / "clean" / f"{name}_bg_light.h5", seg,
                           segment_us=win["segment_us"], grid=win["grid"])
                voxelize_file(seg, out, VoxelSpec(**CONFIG["voxel"]))
            vox.setdefault(split, []).append(out)
    return vox


def compare_training(model_cfgs: Mapping[str, Mapping[str, Any]], losses: list[str], *, steps: int,
                     seeds: list[int], work: Path, threads: int) -> dict[str, dict[str, list[float]]]:
    """Train each model on the embedded default data (``config/config.yaml``'s synthetic set, split and
    voxelized as ``make run`` does) with the default ``train`` settings for ``steps`` steps, once per loss and
    training seed; return ``{loss: {model: [final validation loss per seed]}}`` (lower is better), with
    "identity" (the input as it is, one value).

    For each seed every model gets the same crops in the same order and the same validation frames.
    pytorch-3dunet's ResidualUNet3D is registered under the name "residualunet3d" for this run only.
    """
    from evdenoise.models.registry import MODELS, register
    from evdenoise.train import train

    if "residualunet3d" not in MODELS:
        register("residualunet3d")(residual_unet3d)
    vox = default_voxels(work)
    out: dict[str, dict[str, list[float]]] = {}
    for loss in losses:
        settings = {**CONFIG["train"], "loss": loss, "steps": steps, "val_every": steps, "threads": threads}
        out[loss] = {"identity": [identity_loss(vox["val"], settings)]}
        for seed in seeds:
            with tempfile.TemporaryDirectory() as tmp:
                for name, model_cfg in model_cfgs.items():
                    path = train({**settings, "seed": seed}, dict(model_cfg), vox["train"], vox["val"],
                                 Path(tmp) / name.replace(" ", "_"), progress=False)
                    with open(path.parent / "history.csv", newline="") as f:
                        out[loss].setdefault(name, []).append(float(list(csv.DictReader(f))[-1]["val_loss"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quality-steps", type=int, default=0, help="also run compare_training for N steps")
    ap.add_argument("--quality-seeds", type=int, nargs="+", default=[int(CONFIG["train"].get("seed", 0))],
                    help="training seeds for compare_training (default: the config's)")
    ap.add_argument("--work", type=Path, default=ROOT / "results" / "bench_model",
                    help="where the default data is built")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.repeats} interleaved repeats; "
          "shared CPU, numbers are noisy (min and median shown)")

    models = {name: build_model(cfg) for name, cfg in OUR_MODELS.items()}
    models[REFERENCE] = residual_unet3d()
    models[REFERENCE_TIME_LAST] = TimeLast(residual_unet3d())
    rows = timing_table(models, args.repeats)
    print_table(rows)

    if args.quality_steps:
        cfgs = {"unet3d (default)": DEFAULT_MODEL, "residualunet3d": {"name": "residualunet3d"}}
        default_loss = (CONFIG.get("train") or {}).get("loss", "mse")
        losses = list(dict.fromkeys([default_loss, "mse"]))
        results = compare_training(cfgs, losses, steps=args.quality_steps, seeds=args.quality_seeds,
                                   work=args.work, threads=args.threads)
        print(f"\nvalidation loss after {args.quality_steps} steps on the default data (default train settings, "
              f"training seeds {args.quality_seeds}; lower is better):")
        print(f"{'loss':<10} {'seed':>5} {'identity':>10} {'unet3d (default)':>17} {'ResidualUNet3D':>15}")
        for loss, row in results.items():
            ours, ref = row["unet3d (default)"], row["residualunet3d"]
            per_seed = list(zip(map(str, args.quality_seeds), ours, ref))
            if len(args.quality_seeds) > 1:
                per_seed.append(("mean", statistics.mean(ours), statistics.mean(ref)))
            for seed, a, b in per_seed:
                print(f"{loss:<10} {seed:>5} {row['identity'][0]:>10.5f} {a:>17.5f} {b:>15.5f}")

    ref = next(r for r in rows if r["model"] == REFERENCE)
    default = next(r for r in rows if r["model"] == "unet3d (default)")
    print(f"default_speedup_vs_residualunet3d_cpu_time: {ref['fwd_cpu'] / default['fwd_cpu']:.1f}")
    print(f"default_speedup_vs_residualunet3d: {ref['fwd_min'] / default['fwd_min']:.1f}")
    pre = next(r for r in rows if r["model"] == "unet3d + context (pretrained)")
    print(f"pretrained_speedup_vs_residualunet3d: {ref['fwd_min'] / pre['fwd_min']:.1f}")


if __name__ == "__main__":
    main()
