"""profiles/slurm on a real throwaway Slurm (tests/slurm/cluster.sh: one node, one fake GPU, no accounting).

The tiny workflow of test_workflow.py runs through the cluster profile exactly as the README says, and every
job's Slurm record (partition, CPUs, memory, time limit, GPUs) is checked against the config's `resources`.
The cluster installs slurm-wlm and munge with apt-get when they are missing, so it needs root then.
"""
from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from test_workflow import TINY, make_workdir

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "tests/slurm/cluster.sh"
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]

# Distinct sizes, so that each one seen in a job's Slurm record can only have come from this config.
RESOURCES = {"gpu": 1, "cpu_partition": "cpu", "gpu_partition": "gpu",
             "train_threads": 2, "train_mem_mb": 1500, "train_runtime": 15,
             "predict_threads": 1, "predict_mem_mb": 1200, "predict_runtime": 10}
RUN_TIMEOUT_S = 600  # kills a hung executor; far above a run on a busy 2-core machine


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """Environment whose sbatch, squeue, ... talk to a fresh one-node Slurm; stopped whatever happens."""
    tools = ("sbatch", "srun", "squeue", "slurmctld", "slurmd", "munged")
    if not all(shutil.which(t) for t in tools) and os.geteuid() != 0:
        pytest.skip("slurm-wlm and munge are not installed, and installing them (apt-get) needs root")
    state = tmp_path_factory.mktemp("slurm")
    try:
        start = subprocess.run([str(CLUSTER), "start", str(state)], capture_output=True, text=True, timeout=600)
        assert start.returncode == 0, f"the test cluster did not start:\n{start.stdout}\n{start.stderr}"
        yield {**os.environ, "PATH": f"{state}/bin:{os.environ['PATH']}"}
    finally:
        subprocess.run([str(CLUSTER), "stop", str(state)], timeout=60)


class JobRecorder:
    """Every job's last `scontrol show job` record, polled while a run lasts.

    squeue and scontrol forget a finished job after MinJobAge; polling keeps all of them.
    """

    def __init__(self, env: dict) -> None:
        self.env, self.jobs, self._stop = env, {}, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while True:
            out = subprocess.run(["scontrol", "show", "job", "--details", "--oneliner"], capture_output=True,
                                 text=True, env=self.env).stdout
            for line in out.splitlines():
                record = dict(re.findall(r"(\S+?)=(\S*)", line))
                if "JobId" in record:
                    self.jobs[record["JobId"]] = record
            if self._stop.wait(2):
                return

    def __enter__(self) -> JobRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()  # the final states

    def by_rule(self) -> dict[str, list[dict]]:
        # The plugin comments each job "rule_<rule>" or "rule_<rule>_wildcards_<values>".
        rules: dict[str, list[dict]] = {}
        for record in self.jobs.values():
            rule = re.fullmatch(r"rule_(\w+?)(?:_wildcards_.*)?", record["Comment"])[1]
            rules.setdefault(rule, []).append(record)
        return rules


# One decoder: each one compared is a decode job per test file, and every job here is an sbatch submission.
SLURM_CONFIG = {**TINY, "resources": RESOURCES, "evaluate": {**TINY["evaluate"], "decodes": ["mask"]}}


def smk_slurm(workdir: Path, env: dict, *args: str, config: str = "config.yaml") -> subprocess.CompletedProcess:
    """The README's cluster command, run in `workdir`; a hung executor is killed after RUN_TIMEOUT_S.

    Only the status polling is quicker than the profile's (a 2 s instead of a 10 s pause after a job ends):
    tiny jobs on one node would otherwise spend most of the test waiting for the next check.
    """
    cmd = ["timeout", "-k", "10", str(RUN_TIMEOUT_S), sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
           "--configfile", config, "--profile", str(REPO / "profiles/slurm"), "--workflow-profile", "none",
           "--evdenoise-slurm-init-seconds-before-status-checks", "2", *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)


def test_request_no_node_can_meet_stops_before_any_submission(cluster: dict, tmp_path: Path) -> None:
    wd = make_workdir(tmp_path)
    bad = {**RESOURCES, "train_threads": 64, "predict_mem_mb": 10_000_000}
    (wd / "bad.yaml").write_text(yaml.safe_dump({**TINY, "resources": bad}))
    proc = smk_slurm(wd, cluster, config="bad.yaml")
    out = proc.stdout + proc.stderr
    assert proc.returncode not in (0, 124, 137), out[-3000:]
    cpus = len(os.sched_getaffinity(0))  # what cluster.sh gives the node (nproc)
    assert (f"rule train: resources.train_threads=64 exceeds the largest node of Slurm partition 'gpu' "
            f"({cpus} CPUs)") in out
    assert "rule predict: resources.predict_mem_mb=10000000 exceeds the largest node of Slurm partition 'gpu'" in out
    assert "has been submitted" not in out and not (wd / ".snakemake/slurm_logs").exists()


def test_tiny_workflow_and_report_run_as_slurm_jobs_sized_by_the_config(cluster: dict, tmp_path: Path) -> None:
    wd = make_workdir(tmp_path)
    (wd / "config.yaml").write_text(yaml.safe_dump(SLURM_CONFIG))
    started = time.monotonic()
    with JobRecorder(cluster) as recorder:
        for target in ([], ["report"]):
            proc = smk_slurm(wd, cluster, *target)
            assert proc.returncode == 0, f"{target}: rc {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    print(f"workflow and report on Slurm: {time.monotonic() - started:.0f} s")

    assert (wd / "results/model/model.pt").is_file() and (wd / "results/report.html").is_file()
    for name in ("synth_test_0000", "synth_test_0001"):
        assert (wd / f"results/denoised/{name}.h5").is_file()
    assert "model_mask" in (wd / "results/metrics/summary.csv").read_text()

    jobs = recorder.by_rule()
    assert {rule: len(records) for rule, records in jobs.items()} == {
        "split": 5, "voxelize": 5, "train": 1, "predict": 2, "decode": 2, "evaluate": 2, "summarize": 1,
        "sample_figures": 1, "training_curve": 1, "resources_table": 1, "report": 1,
        "predict_pretrained": 2, "decode_pretrained": 2}  # the report also scores the shipped model
    assert {r["JobState"] for records in jobs.values() for r in records} == {"COMPLETED"}

    def sizes(record: dict) -> tuple:
        return (record["Partition"], record["CPUs/Task"], record["MinMemoryNode"], record["TimeLimit"],
                record.get("TresPerJob"))

    # sbatch -p, --cpus-per-task, --mem, -t and --gpus, as Slurm recorded them.
    assert {sizes(r) for r in jobs["train"]} == {("gpu", "2", "1500M", "00:15:00", "gres:gpu:1")}
    for rule in ("predict", "predict_pretrained"):
        assert {sizes(r) for r in jobs[rule]} == {("gpu", "1", "1200M", "00:10:00", "gres:gpu:1")}, rule
    assert {sizes(r) for r in jobs["split"]} == {("cpu", "1", "2000M", "00:10:00", None)}
    assert {sizes(r) for r in jobs["evaluate"]} == {("cpu", "1", "4000M", "00:30:00", None)}
    for rule in jobs.keys() - {"train", "predict", "predict_pretrained"}:
        assert {(r["Partition"], r.get("TresPerJob")) for r in jobs[rule]} == {("cpu", None)}, rule


def test_job_that_slurm_ends_fails_the_run_instead_of_hanging(cluster: dict, tmp_path: Path) -> None:
    # The job is cancelled as soon as Slurm has it: the run must stop by itself with the job's Slurm state, not
    # be killed by the timeout that ends a hung executor (no retry, to keep the test short).
    wd = make_workdir(tmp_path)
    (wd / "config.yaml").write_text(yaml.safe_dump(SLURM_CONFIG))
    started = time.monotonic()
    stop = threading.Event()

    def cancel_everything() -> None:
        while not stop.wait(1):
            subprocess.run(["scancel", "--user", getpass.getuser()], env=cluster, capture_output=True)

    canceller = threading.Thread(target=cancel_everything, daemon=True)
    canceller.start()
    try:
        proc = smk_slurm(wd, cluster, "--retries", "0", "results/segments/synth_test_0000.h5")
    finally:
        stop.set()
        canceller.join()
    elapsed = time.monotonic() - started
    out = proc.stdout + proc.stderr
    assert proc.returncode not in (0, 124, 137), out[-3000:]
    assert "SLURM status is: 'CANCELLED'" in out
    print(f"cancelled job noticed, run ended: {elapsed:.0f} s")


@pytest.mark.parametrize("squeue", ["exit 0", "echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1"],
                         ids=["forgets_the_job", "fails"])
def test_job_squeue_never_lists_fails_the_run_after_the_lost_job_timeout(cluster: dict, tmp_path: Path,
                                                                         squeue: str) -> None:
    # An squeue that lists nothing (a job purged before any check saw it) or always fails: the plugin alone
    # would wait forever; the run must end by itself, with the error naming the lost job.
    wd = make_workdir(tmp_path)
    (wd / "config.yaml").write_text(yaml.safe_dump(SLURM_CONFIG))
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "squeue").write_text(f"#!/bin/sh\n{squeue}\n")
    (fake / "squeue").chmod(0o755)
    env = {**cluster, "PATH": f"{fake}:{cluster['PATH']}"}
    started = time.monotonic()
    proc = smk_slurm(wd, env, "--retries", "0", "--evdenoise-slurm-lost-job-timeout", "5",
                     "results/segments/synth_test_0000.h5")
    elapsed = time.monotonic() - started
    out = proc.stdout + proc.stderr
    assert proc.returncode not in (0, 124, 137), out[-3000:]
    assert re.search(r"SLURM-job '\d+' is lost: no status query has listed it for \d+ s", out), out[-3000:]
    print(f"lost job noticed, run ended: {elapsed:.0f} s")
