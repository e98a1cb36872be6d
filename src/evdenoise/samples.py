"""The sample table: which noisy files the workflow processes, their clean partners and split.

A sample name is the noisy file's stem without its noisy suffix (``scene_bg_flare.h5`` ->
``scene``); it names every per-file artifact (``results/voxels/scene.h5`` ...), so names must
be unique and free of path separators.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Mapping

from .formats import EVENT_SUFFIXES, event_files

SPLITS = ("train", "val", "test", "infer")
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.+-]*"
RESERVED_NAMES = ("per_file", "summary", "headline")  # results/metrics/<name>.csv holds the summaries
# The workflow's `sample` wildcard: any valid name, so the DAG's regexes do not grow with the data set;
# the lookahead keeps the summaries' paths from matching the per-sample rule.
WILDCARD_PATTERN = rf"(?!(?:{'|'.join(RESERVED_NAMES)})\.csv$){NAME_PATTERN}"
_NAME_RE = re.compile(rf"^{NAME_PATTERN}$")


def repo_path(basedir: str | os.PathLike, path: str | os.PathLike) -> str:
    """A configured path: an absolute one as given, a relative one taken from ``basedir`` (the repository,
    wherever Snakemake runs), normalised."""
    return os.path.normpath(Path(basedir) / path)


class SampleError(ValueError):
    """A problem with the configured data: missing folders, bad or duplicate names."""


@dataclass(frozen=True)
class Sample:
    name: str
    split: str  # train | val | test | infer
    noisy: Path
    clean: Path | None


def check_names(samples: list[Sample]) -> None:
    """Names must be unique and usable as file names (no path separators)."""
    seen: dict[str, Sample] = {}
    for s in samples:
        if not _NAME_RE.match(s.name):
            raise SampleError(f"sample name {s.name!r} (from {s.noisy}) is not a plain file name: "
                              "use letters, digits, '_', '-', '.', '+' and no path separators")
        if s.name in RESERVED_NAMES:
            raise SampleError(f"sample name {s.name!r} (from {s.noisy}) is reserved: results/metrics/{s.name}.csv "
                              "is a summary of every sample; rename the file")
        if s.name in seen:
            raise SampleError(f"sample name {s.name!r} is used by both {seen[s.name].noisy} and {s.noisy}")
        seen[s.name] = s


def synthetic_samples(cfg: Mapping[str, Any]) -> list[Sample]:
    """Samples of the embedded synthetic data set (the files need not exist yet)."""
    from .synth.dataset import pair_paths

    root = Path(cfg["root"])
    out = []
    for split in ("train", "val", "test"):
        for i in range(cfg["counts"][split]):
            name, noisy, clean = pair_paths(split, i)
            out.append(Sample(name, split, root / noisy, root / clean))
    return out


def _fraction_split(name: str, fractions: Mapping[str, float]) -> str:
    # Hash of the name, not a shuffled list: adding a file never moves another file between splits.
    u = int(hashlib.sha256(name.encode()).hexdigest()[:12], 16) / float(1 << 48)
    if u < fractions.get("test", 0.0):
        return "test"
    if u < fractions.get("test", 0.0) + fractions.get("val", 0.0):
        return "val"
    return "train"


def _pairs_in(noisy_dir: Path, clean_dir: Path, noisy_suffix: str, clean_suffix: str) -> list[tuple[str, Path, Path]]:
    if not noisy_dir.is_dir():
        raise SampleError(f"noisy folder {noisy_dir} does not exist")
    if not clean_dir.is_dir():
        raise SampleError(f"clean folder {clean_dir} does not exist")
    pairs = []
    clean_files = {f.stem: f for f in reversed(event_files(clean_dir))}  # one per stem: .h5 before others
    for noisy in event_files(noisy_dir):
        if not noisy.stem.endswith(noisy_suffix):
            continue
        stem = noisy.stem[: len(noisy.stem) - len(noisy_suffix)]
        clean = clean_files.get(f"{stem}{clean_suffix}")
        if clean is None:
            raise SampleError(f"{noisy} has no clean partner: expected {clean_dir / stem}{clean_suffix}.h5 "
                              f"(or another event format)")
        pairs.append((stem, noisy, clean))
    if not pairs:
        raise SampleError(f"no event files named *{noisy_suffix}.<{'|'.join(s[1:] for s in EVENT_SUFFIXES)}> "
                          f"in {noisy_dir}")
    return pairs


def folder_samples(cfg: Mapping[str, Any]) -> list[Sample]:
    """Pairs from folders, split by subfolders or by a deterministic hash fraction."""
    noisy_dir, clean_dir = Path(cfg["noisy"]), Path(cfg["clean"])
    ns, cs = cfg["noisy_suffix"], cfg["clean_suffix"]
    if cfg["split_by"] == "folders":
        samples = [Sample(stem, split, n, c)
                   for split in ("train", "val", "test")
                   for stem, n, c in _pairs_in(noisy_dir / split, clean_dir / split, ns, cs)]
    else:
        samples = [Sample(stem, _fraction_split(stem, cfg["fractions"]), n, c)
                   for stem, n, c in _pairs_in(noisy_dir, clean_dir, ns, cs)]
    for split in ("train", "val"):
        if not any(s.split == split for s in samples):
            raise SampleError(f"no {split} samples among the {len(samples)} pairs in {noisy_dir}: "
                              "add files or change data.folders.fractions")
    return samples


def inference_samples(folder: str | Path) -> list[Sample]:
    """Every event file (any format) of an inference folder; no clean partners, so never evaluated."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SampleError(f"inference folder {folder} does not exist")
    return [Sample(p.stem, "infer", p, None) for p in event_files(folder)]


def build_samples(data_cfg: Mapping[str, Any]) -> list[Sample]:
    """All samples the workflow's data config describes, checked."""
    if data_cfg["source"] == "synthetic":
        samples = synthetic_samples(data_cfg["synthetic"])
    else:
        samples = folder_samples(data_cfg["folders"])
    if data_cfg.get("inference"):
        samples += inference_samples(data_cfg["inference"])
    check_names(samples)
    return samples
