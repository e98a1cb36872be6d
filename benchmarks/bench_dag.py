"""DAG-building cost at data-set scale: `snakemake -n` on the workflow vs a bare Snakefile with the same rules.

For each size (default 1,000 and 10,000 pairs) it writes that many empty noisy/clean file pairs (a dry run reads
no event file), plans the default target of this workflow and of a bare Snakefile with the same rules, paths
and job counts (shell: true, samples from a list), and prints wall time, peak RSS and their ratios (issue 17's
target: within 2x for both). Both run under the same workflow profile: `profiles/default` (what `snakemake` in
this folder uses: its default-resources make Snakemake size every job's inputs, a cost of any Snakefile) and
`none` (no profile). Run: `.venv/bin/python benchmarks/bench_dag.py [--sizes 1000 10000]`.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "src"))

from evdenoise.samples import build_samples  # noqa: E402

BARE = '''import json
S = json.load(open("samples.json"))
rule all:
    input: "results/model/model.pt", expand("results/denoised/{s}.h5", s=S["test"]), "results/metrics/summary.csv",
        "results/figures/training.png", "results/figures/resources.csv"
rule training_curve:
    input: "results/model/model.pt"
    output: "results/figures/training.png"
    shell: "true"
rule resources_table:
    input: expand("results/denoised/{s}.h5", s=S["test"]), "results/metrics/summary.csv"
    output: "results/figures/resources.csv"
    shell: "true"
rule split:
    input: noisy="data/noisy/{s}_bg_flare.h5", clean="data/clean/{s}_bg_light.h5"
    output: "results/segments/{s}.h5"
    shell: "true"
rule voxelize:
    input: "results/segments/{s}.h5"
    output: "results/voxels/{s}.h5"
    shell: "true"
rule train:
    input: expand("results/voxels/{s}.h5", s=S["train"] + S["val"])
    output: "results/model/model.pt"
    shell: "true"
rule predict:
    input: "results/model/model.pt", "results/voxels/{s}.h5"
    output: "results/predicted/{s}.h5"
    shell: "true"
rule decode:
    input: "results/predicted/{s}.h5", "results/segments/{s}.h5", "data/noisy/{s}_bg_flare.h5"
    output: "results/denoised/{d}/{s}.h5"
    wildcard_constraints: d="mask|sample|spread", s="[^/]+"
    shell: "true"
rule denoised:
    input: "results/denoised/mask/{s}.h5"
    output: "results/denoised/{s}.h5"
    wildcard_constraints: s="[^/]+"
    shell: "true"
rule evaluate:
    input: "results/segments/{s}.h5", expand("results/denoised/{d}/{{s}}.h5", d=["mask", "sample", "spread"])
    output: "results/metrics/{s}.csv"
    shell: "true"
rule summarize:
    input: expand("results/metrics/{s}.csv", s=S["test"])
    output: "results/metrics/summary.csv"
    shell: "true"
'''


def make_pairs(root: Path, n: int) -> dict:
    """n empty pairs under root/data and the workflow config that reads them."""
    for role, suffix in (("noisy", "_bg_flare"), ("clean", "_bg_light")):
        (root / "data" / role).mkdir(parents=True)
        for i in range(n):
            (root / "data" / role / f"rec{i:05d}{suffix}.h5").touch()
    data = {"source": "folders", "folders": {"noisy": "data/noisy", "clean": "data/clean"}}
    return {"data": data, "evaluate": {"pretrained": False, "figures": 0}}


def timed(args: list[str], cwd: Path) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, stdout) of one command, measured by GNU time."""
    out = subprocess.run(["/usr/bin/time", "-f", "TIME %e %M", *args], cwd=cwd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
    sec, kb = re.findall(r"TIME ([\d.]+) (\d+)", out.stderr)[-1]
    return float(sec), int(kb) / 1024, out.stdout


def job_counts(plan: str) -> dict[str, int]:
    table = plan.split("Job stats:")[1]
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", table, re.M) if m[0] != "total"}


def measure(n: int, profile: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cfg = make_pairs(root, n)
        (root / "config.yaml").write_text(yaml.safe_dump(cfg))
        data = yaml.safe_load((REPO / "config/config.yaml").read_text())["data"]
        folders = {role: str(root / path) for role, path in cfg["data"]["folders"].items()}
        samples = build_samples({**data, **cfg["data"], "folders": {**data["folders"], **folders}})
        splits = {s: [x.name for x in samples if x.split == s] for s in ("train", "val", "test")}
        (root / "samples.json").write_text(json.dumps(splits))
        (root / "Bare.smk").write_text(BARE)
        smk = [str(BIN / "snakemake"), "-n", "--quiet", "rules", "--cores", "1", "--workflow-profile", profile]
        t_wf, m_wf, plan_wf = timed([*smk, "-s", str(REPO / "Snakefile"), "--configfile", "config.yaml"], root)
        t_bare, m_bare, plan_bare = timed([*smk, "-s", "Bare.smk"], root)
    jobs_wf, jobs_bare = job_counts(plan_wf), job_counts(plan_bare)
    if jobs_wf != jobs_bare:
        raise RuntimeError(f"job counts differ: workflow {jobs_wf}, bare {jobs_bare}")
    return {"pairs": n, "profile": Path(profile).name, "jobs": sum(jobs_wf.values()), "workflow_s": t_wf,
            "bare_s": t_bare, "time_ratio": t_wf / t_bare, "workflow_mb": m_wf, "bare_mb": m_bare, "mem_ratio": m_wf / m_bare}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    args = ap.parse_args()
    print("| pairs | profile | jobs | workflow s | bare s | time ratio | workflow MB | bare MB | memory ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        for profile in (str(REPO / "profiles" / "default"), "none"):
            r = measure(n, profile)
            print(f"| {r['pairs']} | {r['profile']} | {r['jobs']} | {r['workflow_s']:.1f} | {r['bare_s']:.1f} "
                  f"| {r['time_ratio']:.2f}x | {r['workflow_mb']:.0f} | {r['bare_mb']:.0f} | {r['mem_ratio']:.2f}x |",
                  flush=True)


if __name__ == "__main__":
    main()
