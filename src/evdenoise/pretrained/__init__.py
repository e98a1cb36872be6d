"""The pretrained model shipped with evdenoise, its card, and the settings that rebuild it.

``model.pt`` (weights-only model file, see :mod:`evdenoise.checkpoint`) and ``MODEL_CARD.md`` live in this
folder. ``snakemake pretrained`` rebuilds both from ``config/pretrained.yaml`` (generator ranges, voxel,
model and training settings) and :func:`ship` copies them here; ``evdenoise denoise`` without ``--model`` and
the workflow's ``model.pretrained: true`` use :data:`MODEL_PATH`.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import yaml

from ..events import atomic_path

HERE = Path(__file__).resolve().parent
MODEL_PATH = HERE / "model.pt"
CARD_PATH = HERE / "MODEL_CARD.md"
REBUILD = "snakemake --cores 2 pretrained"
_CARD_META = "<!-- meta: "  # the card's machine-readable line: the facts tests compare with the model file


def require_model(path: str | os.PathLike = MODEL_PATH) -> Path:
    """The shipped model file, or a clear error saying how to rebuild it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no pretrained model here; rebuild it with `{REBUILD}` "
                                "or pass --model")
    return path


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """``config/pretrained.yaml`` as a dict, its generator, voxel and training settings checked."""
    from ..synth import SynthConfig
    from ..train import TrainConfig
    from ..voxel import VoxelSpec

    with open(path) as f:
        cfg = yaml.safe_load(f)
    missing = [k for k in ("data", "windows", "voxel", "model", "train", "threads") if k not in cfg]
    if missing:
        raise ValueError(f"{path}: missing section(s) {missing}")
    try:
        SynthConfig.from_dict(cfg["data"]["params"])
        TrainConfig.from_dict(cfg["train"])
        VoxelSpec(**cfg["voxel"])
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"{path}: {err}") from None
    return cfg


def card_facts(meta: Mapping[str, Any], history: pd.DataFrame) -> dict[str, Any]:
    """What the card states about a model file, all read from the file's own meta and history."""
    last = history.iloc[-1]
    return {
        "model": meta["model"], "voxel": meta["voxel"], "segment_us": meta["segment_us"],
        "train": meta["train"], "best_step": int(meta["step"]), "val_loss": float(meta["val_loss"]),
        "steps": int(last["step"]), "train_seconds": float(last["seconds"]),
        "data_sha256": meta["data_sha256"], "config_hash": meta["config_hash"],
        "evdenoise_version": meta["evdenoise_version"],
        "n_train_files": len(meta["train_files"]), "n_val_files": len(meta["val_files"]),
    }


def read_card_facts(card: str | os.PathLike = CARD_PATH) -> dict[str, Any]:
    """The facts line of a card written by :func:`write_card`."""
    for line in Path(card).read_text().splitlines():
        if line.startswith(_CARD_META):
            return json.loads(line[len(_CARD_META):].removesuffix(" -->"))
    raise ValueError(f"{card}: no facts line ({_CARD_META}...)")


def git_commit(repo: str | os.PathLike) -> str:
    """The commit the rebuild ran from (``unknown`` outside a git checkout)."""
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_card(path: str | os.PathLike, facts: Mapping[str, Any], cfg: Mapping[str, Any],
               quality: str = "") -> None:
    """The model card: what the model is for, how it was made (from ``facts``), and its measured quality."""
    hours = facts["train_seconds"] / 3600
    text = f"""# evdenoise pretrained flare-removal model

{_CARD_META}{json.dumps(facts, sort_keys=True)} -->

**Use**: `evdenoise denoise IN OUT` (file or folder) uses this model when `--model` is not given; the workflow
uses it with `model.pretrained: true` and fine-tunes from it with `train.init: pretrained`. It keeps or drops
each input event (mask decoding), so it never invents events or moves timestamps.

**Made by** `{REBUILD}` from commit `{facts['commit']}` (evdenoise {facts['evdenoise_version']}):
{facts['n_train_files']} training and {facts['n_val_files']} validation pairs from the synthetic generator,
{facts['steps']} steps (best validation at step {facts['best_step']}, loss {facts['val_loss']:.4f}),
{facts['train_seconds']:.0f} s ({hours:.2f} h) of training on {cfg['threads']} CPU threads.
Training data hash `{facts['data_sha256'][:16]}`, configuration hash `{facts['config_hash']}`.

## Model
`{json.dumps(facts['model'])}`; voxels `{json.dumps(facts['voxel'])}` over {facts['segment_us']} µs windows.

## Training settings
`{json.dumps(facts['train'])}`

## Data: generator ranges (`config/pretrained.yaml`, seed {cfg['data']['seed']})
```yaml
{yaml.safe_dump(cfg['data']['params'], sort_keys=False).rstrip()}
```

## Quality
{quality or "Not measured yet: run `.venv/bin/python benchmarks/quality_pretrained.py`."}
"""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def ship(model: str | os.PathLike, history: str | os.PathLike, cfg: Mapping[str, Any], dest: str | os.PathLike,
         commit: str) -> dict[str, Any]:
    """Copy a trained model into ``dest`` (``model.pt``) with its card; returns the card's facts."""
    from ..checkpoint import load_checkpoint

    meta = load_checkpoint(model)["meta"]
    facts = {**card_facts(meta, pd.read_csv(history)), "commit": commit}
    dest = Path(dest)
    with atomic_path(dest / "model.pt") as tmp:
        shutil.copyfile(model, tmp)
    write_card(dest / "MODEL_CARD.md", facts, cfg)
    return facts
