"""The shipped model per generator factor, each pinned *inside* the training ranges: flare removed / clean kept.

Usage (from the repository root):

    .venv/bin/python benchmarks/factors_pretrained.py [--model PATH] [--threads 1]

Three 640x480 files per factor (346x260 for ``size346``), denoised at keep_threshold 0.25 and 0.1; inference only,
so it says what a model recognises. Data under ``results/factors``, in folders named by a hash of their settings.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any
from collections.abc import Mapping

import pandas as pd
import torch

from evdenoise.checkpoint import config_hash
from evdenoise.denoise import denoise_events_at
from evdenoise.pretrained import MODEL_PATH, load_config
from evdenoise.quality import read_pair
from evdenoise.synth import SynthConfig, synthesize
from quality_pretrained import kept_shares

ROOT = Path(__file__).resolve().parents[1]
FILES, SEED, THRESHOLDS = 3, 7000, (0.25, 0.1)
SHARES = ["flare_share", "flare_removed", "clean_kept"]
FACTORS: dict[str, dict[str, Any]] = {
    "base": {},
    "halo_only": {"streak_count": (0, 0), "ghost_count": (0, 0), "veil_prob": 0.0},
    "starburst": {"streak_count": (16, 32), "streak_strength": (0.05, 0.15), "streak_length": (0.6, 1.0),
                  "ghost_count": (0, 0)},
    "ghosts": {"ghost_count": (6, 10), "ghost_chain_prob": 1.0, "streak_count": (0, 0)},
    "dc": {"dc_prob": 1.0},
    "weak_depth": {"dc_prob": 0.0, "modulation_depth": (0.05, 0.15)},
    "full_depth": {"dc_prob": 0.0, "modulation_depth": (0.8, 1.0)},
    "static": {"source_moving_prob": 0.0, "roll_deg_s": (0, 0), "shake": (0, 0), "source_enter_prob": 0.0},
    "fast": {"source_moving_prob": 1.0, "source_speed": (1.0, 2.0)},
    "hz50": {"flicker_hz": (50,), "dc_prob": 0.0},
    "hz144": {"flicker_hz": (144,), "dc_prob": 0.0},
    "size346": {"sizes": [[346, 260]]},
}


def factor_files(work: Path, name: str, params: Mapping[str, Any], seed: int) -> pd.DataFrame:
    """The factor's files (generated once per settings hash), as a manifest with ``root``."""
    cfg = SynthConfig.from_dict(params)
    root = work / f"{name}-{config_hash(cfg.to_dict(), FILES, seed)}"
    if not (root / "manifest.csv").exists():
        synthesize(root, counts={"f": FILES}, cfg=cfg, seed=seed)
    m = pd.read_csv(root / "manifest.csv")
    m["root"] = str(root)
    return m


def score(model: Path, work: Path) -> pd.DataFrame:
    base = {**load_config(ROOT / "config" / "pretrained.yaml")["data"]["params"], "sizes": [[640, 480]]}
    rows = []
    for i, (name, over) in enumerate(FACTORS.items()):
        for _, row in factor_files(work, name, {**base, **over}, SEED + 10 * i).iterrows():
            raw, label, _ = read_pair(Path(row["root"]) / row["noisy"], Path(row["root"]) / row["clean"])
            for th, out in zip(THRESHOLDS, denoise_events_at(raw, model, THRESHOLDS, device="cpu")):
                rows.append({"factor": name, "file": row["name"], "th": th, **kept_shares(raw, label, out)})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=MODEL_PATH)
    ap.add_argument("--work", type=Path, default=ROOT / "results" / "factors")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    d = score(args.model, args.work)
    d.to_csv(args.work / f"factors_{args.model.stem}.csv", index=False)
    print(d.groupby(["factor", "th"], sort=False)[SHARES].mean().to_string())


if __name__ == "__main__":
    main()
