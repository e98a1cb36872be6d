"""The sets of ``snakemake quality`` (config/quality.yaml) as workflow samples.

Light on purpose (no numpy, pandas or torch): the workflow reads it at parse time. :mod:`evdenoise.quality`
turns the scored sets into ``benchmarks/quality.md``.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .samples import Sample, repo_path

PathLike = str | os.PathLike

_SET_KEYS = {"about", "role", "split", "count", "seed", "width", "height", "params", "backgrounds"}


def load_quality_config(path: PathLike) -> dict[str, Any]:
    """``config/quality.yaml``: ``sets`` (name -> extra pairs to score), ``real`` (flare-free recordings) and
    ``examples`` (sets whose first pair is pictured), checked with errors that name the file and key."""
    import yaml

    with open(path) as f:
        cfg = yaml.safe_load(f) or {}
    missing = [k for k in ("sets", "real", "examples") if k not in cfg]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}")
    for name, s in cfg["sets"].items():
        where = f"{path}: sets.{name}"
        if not isinstance(s, dict) or not re.fullmatch(r"[A-Za-z0-9_-]+", str(name)):
            raise ValueError(f"{where}: a set is a mapping named with letters, digits, '_' or '-'")
        if set(s) - _SET_KEYS or not {"about", "role", "count"} <= set(s):
            raise ValueError(f"{where}: keys about, role and count are required, others among {sorted(_SET_KEYS)}")
        if s["role"] not in ("test", "heldout") or not isinstance(s["count"], int) or s["count"] < 1:
            raise ValueError(f"{where}: role is test or heldout and count a positive integer")
    unknown = [e for e in cfg["examples"] if e != "test" and e not in cfg["sets"]]
    if unknown:
        raise ValueError(f"{path}: examples {unknown} are neither 'test' nor a set")
    return cfg


def set_synth_settings(qcfg: Mapping[str, Any], synthetic: Mapping[str, Any], root: str,
                       basedir: PathLike) -> dict[str, dict[str, Any]]:
    """Per set, the settings of the workflow's synthesize script: the workflow's own synthetic data
    (size, length, generator params, seed) with the set's keys on top; its files under ``<root>/<set>``."""
    out = {}
    for name, s in qcfg["sets"].items():
        out[name] = {
            "root": f"{root}/{name}/data", "counts": {s.get("split", "heldout"): s["count"]},
            "width": s.get("width", synthetic["width"]), "height": s.get("height", synthetic["height"]),
            "duration_us": synthetic["duration_us"], "seed": s.get("seed", synthetic["seed"]), "previews": False,
            "backgrounds": [repo_path(basedir, b) for b in s.get("backgrounds", [])],
            "params": {**synthetic["params"], **s.get("params", {})},
        }
    return out


def set_samples(settings: Mapping[str, Mapping[str, Any]]) -> dict[str, list[Sample]]:
    """Per set, its pairs as workflow samples named ``<set>.<pair>`` (the files need not exist yet)."""
    from .synth.dataset import pair_paths

    out = {}
    for name, s in settings.items():
        (split, count), = s["counts"].items()
        out[name] = []
        for i in range(count):
            pair, noisy, clean = pair_paths(split, i)
            out[name].append(Sample(f"{name}.{pair}", "test", Path(s["root"]) / noisy, Path(s["root"]) / clean))
    return out


def real_samples(qcfg: Mapping[str, Any], basedir: PathLike) -> list[Sample]:
    """The flare-free recordings as workflow samples named ``real.<stem>`` (no clean partner)."""
    return [Sample(f"real.{Path(p).stem}", "infer", Path(repo_path(basedir, p)), None) for p in qcfg["real"]]
