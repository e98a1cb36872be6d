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
from typing import TYPE_CHECKING, Any
from collections.abc import Mapping

import yaml

from ..events import atomic_path

if TYPE_CHECKING:  # pandas costs ~0.4 s; the workflow imports this module at parse time
    import pandas as pd

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
    from ..train_config import TrainConfig
    from ..voxel import VoxelSpec

    with open(path) as f:
        cfg = yaml.safe_load(f)
    missing = [k for k in ("data", "windows", "voxel", "model", "train", "threads") if k not in cfg]
    if missing:
        raise ValueError(f"{path}: missing section(s) {missing}")
    unknown = sorted(set(cfg.get("finetune") or {}) - {"data", "train", "mix"})
    if unknown:
        raise ValueError(f"{path}: finetune takes data, train and mix, not {unknown}")
    if not isinstance((cfg.get("finetune") or {}).get("mix", False), bool):
        raise ValueError(f"{path}: finetune.mix must be true or false")
    ft_data = (cfg.get("finetune") or {}).get("data", {})
    if not (isinstance(ft_data, dict) or (isinstance(ft_data, list) and ft_data
                                          and all(isinstance(d, dict) for d in ft_data))):
        raise ValueError(f"{path}: finetune.data must be a mapping or a non-empty list of mappings")
    try:
        for rnd in round_configs(cfg).values():
            for data in rnd["sets"].values():
                SynthConfig.from_dict(data["params"])
                _check_backgrounds(data.get("backgrounds", []))
            TrainConfig.from_dict(rnd["train"])
        VoxelSpec(**cfg["voxel"])
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise ValueError(f"{path}: {err}") from None
    return cfg


def _check_backgrounds(paths: Any) -> None:
    if not (isinstance(paths, list) and all(isinstance(p, str) for p in paths)):
        raise ValueError(f"data.backgrounds must be a list of event file paths, got {paths!r}")


def round_configs(cfg: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each training round's ``sets`` (data set name -> ``data`` settings: the files it synthesizes),
    ``train`` settings and ``mix``: ``base`` is the config's own; the optional ``finetune`` section overrides
    them (``data.params`` key by key) and starts from the base round's model. ``finetune.data`` may be a list:
    one data set per entry (``finetune-1``, ``finetune-2``, ...), each with a seed of its own. With
    ``mix: true`` the round trains and validates on the base round's files as well as its own (a round on new
    files alone forgets what the base round learnt: docs/ablations.md, Round 9)."""
    base = {"sets": {"base": dict(cfg["data"])}, "train": dict(cfg["train"]), "mix": False}
    out = {"base": base}
    ft = cfg.get("finetune")
    if ft:
        out["finetune"] = {"sets": _finetune_sets(cfg["data"], ft.get("data", {})),
                           "train": {**base["train"], **ft.get("train", {})}, "mix": ft.get("mix", False)}
    return out


def _finetune_sets(base: Mapping[str, Any], given: Mapping[str, Any] | list) -> dict[str, dict[str, Any]]:
    """The finetune round's data sets: ``given`` (one override or a list of them) over the base data."""
    entries = given if isinstance(given, list) else [given]
    sets = {}
    for i, over in enumerate(entries, 1):
        where = f"finetune.data[{i - 1}]" if isinstance(given, list) else "finetune.data"
        if "counts" in over:  # the rounds' files share names: one count per split for all
            raise ValueError(f"{where}.counts: the rounds use the same counts (set data.counts)")
        data = {**base, **{k: v for k, v in over.items() if k != "params"}}
        data["params"] = {**base["params"], **over.get("params", {})}
        sets[f"finetune-{i}" if isinstance(given, list) else "finetune"] = data
    seeds = [d["seed"] for d in sets.values()]
    if isinstance(given, list) and len(set(seeds + [base["seed"]])) != len(seeds) + 1:
        raise ValueError(f"finetune.data: each data set needs a seed of its own and not the base's, got {seeds}")
    return sets


def data_sets(rounds: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every round's data sets by name, in order (what ``pretrained_synthesize`` writes)."""
    return {name: data for rnd in rounds.values() for name, data in rnd["sets"].items()}


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


def round_facts(name: str, meta: Mapping[str, Any]) -> dict[str, Any]:
    """One training round as the card lists it, from that round's model file."""
    import pandas as pd

    facts = card_facts(meta, pd.DataFrame(meta["history"]))
    keep = ("steps", "best_step", "val_loss", "train_seconds", "n_train_files", "data_sha256")
    return {"round": name, **{k: facts[k] for k in keep}, "init_sha256": meta.get("init_sha256")}


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
    rounds = facts.get("rounds") or []
    seconds = sum(r["train_seconds"] for r in rounds) if rounds else facts["train_seconds"]
    text = f"""# evdenoise pretrained flare-removal model

{_CARD_META}{json.dumps(facts, sort_keys=True)} -->

**Use**: `evdenoise denoise IN OUT` (file or folder) uses this model when `--model` is not given; the workflow
uses it with `model.pretrained: true` and fine-tunes from it with `train.init: pretrained`. It keeps or drops
each input event (mask decoding), so it never invents events or moves timestamps.

**Made by** `{REBUILD}` from commit `{facts['commit']}` (evdenoise {facts['evdenoise_version']}):
{facts['n_train_files']} training and {facts['n_val_files']} validation pairs from the synthetic generator per round,
{seconds:.0f} s ({seconds / 3600:.2f} h) of training in all on {cfg['threads']} CPU threads.
Last round: {facts['steps']} steps (best validation at step {facts['best_step']}, loss {facts['val_loss']:.4f}),
training data hash `{facts['data_sha256'][:16]}`, configuration hash `{facts['config_hash']}`.
{_rounds_table(rounds)}
## Model
`{json.dumps(facts['model'])}`; voxels `{json.dumps(facts['voxel'])}` over {facts['segment_us']} µs windows.

## Training settings
`{json.dumps(facts['train'])}`

## Data: generator ranges (`config/pretrained.yaml`, seed {cfg['data']['seed']})
```yaml
{yaml.safe_dump(cfg['data']['params'], sort_keys=False).rstrip()}
```
{_finetune_text(cfg)}
## Quality
{quality or "Not measured yet: run `.venv/bin/python benchmarks/quality_pretrained.py`."}
"""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def _rounds_table(rounds: list[Mapping[str, Any]]) -> str:
    if len(rounds) < 2:
        return ""
    rows = [f"| {r['round']} | {r['steps']} | {r['best_step']} | {r['val_loss']:.4f} | {r['train_seconds']:.0f} | "
            f"`{r['data_sha256'][:16]}` | {'`' + r['init_sha256'][:16] + '`' if r['init_sha256'] else '-'} |"
            for r in rounds]
    head = "| round | steps | best step | val loss | seconds | data hash | starts from (sha256) |\n|---|---|---|---|---|---|---|"
    return "\n" + "\n".join([head, *rows]) + "\n"


def _finetune_text(cfg: Mapping[str, Any]) -> str:
    ft = cfg.get("finetune")
    if not ft:
        return ""
    seeds = ", ".join(str(d["seed"]) for d in round_configs(cfg)["finetune"]["sets"].values())
    return (f"\nRound `finetune` starts from round `base`'s model and overrides (seed {seeds}):\n```yaml\n"
            f"{yaml.safe_dump(dict(ft), sort_keys=False).rstrip()}\n```\n")


def ship(models: Mapping[str, str | os.PathLike], history: str | os.PathLike, cfg: Mapping[str, Any],
         dest: str | os.PathLike, commit: str) -> dict[str, Any]:
    """Copy the last round's model (``models``: round name -> model file, in order) into ``dest``
    (``model.pt``) with its card; returns the card's facts."""
    import pandas as pd

    from ..checkpoint import load_checkpoint

    metas = {name: load_checkpoint(path)["meta"] for name, path in models.items()}
    name, model = list(models.items())[-1]
    facts = {**card_facts(metas[name], pd.read_csv(history)), "commit": commit,
             "rounds": [round_facts(n, m) for n, m in metas.items()]}
    dest = Path(dest)
    with atomic_path(dest / "model.pt") as tmp:
        shutil.copyfile(model, tmp)
    write_card(dest / "MODEL_CARD.md", facts, cfg)
    return facts
