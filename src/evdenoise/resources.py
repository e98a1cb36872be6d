"""Time and memory per workflow rule, from Snakemake's benchmark TSV files."""
from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Iterable

import pandas as pd


def benchmark_rule(path: Path) -> str:
    """The rule a benchmark file belongs to, from its path."""
    # results/benchmarks/<rule>.tsv, <rule>/<sample>.tsv or <rule>/<decoder>/<sample>.tsv
    parts = path.parts
    if "benchmarks" not in parts:
        return path.parent.name
    rest = parts[len(parts) - parts[::-1].index("benchmarks"):]
    return rest[0] if len(rest) > 1 else path.stem


def benchmark_table(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """One row per rule: jobs, total and mean wall seconds, peak max_rss (MB)."""
    rows = []
    for p in map(Path, paths):
        df = pd.read_csv(p, sep="\t")
        rows.append({"rule": benchmark_rule(p), "seconds": float(df["s"].mean()),
                     "max_rss_mb": pd.to_numeric(df["max_rss"], errors="coerce").max()})
    jobs = pd.DataFrame(rows, columns=["rule", "seconds", "max_rss_mb"])
    table = jobs.groupby("rule", sort=False).agg(
        jobs=("seconds", "size"), total_s=("seconds", "sum"), mean_s=("seconds", "mean"),
        peak_rss_mb=("max_rss_mb", "max")).reset_index()
    return table.sort_values("total_s", ascending=False, ignore_index=True)
