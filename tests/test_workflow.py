"""The Snakemake workflow end to end on a tiny configuration (a few small synthetic files).

One module-scoped run builds everything and the report; the other tests ask Snakemake what it
would do next (dry runs), or run single targets in copies of the working directory.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pandas as pd
import pytest
import yaml

from evdenoise.events import read_events, write_events
from evdenoise.resources import benchmark_rule
from evdenoise.synth import SynthConfig, synthesize

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.xdist_group("workflow")

TINY = {
    "data": {"source": "folders",
             "folders": {"noisy": "data/noisy", "clean": "data/clean", "split_by": "folders"}},
    "model": {"name": "unet3d", "f_maps": [4, 8]},
    "train": {"steps": 6, "batch_size": 2, "patch": [32, 32], "val_every": 3},
    "evaluate": {"figures": 1},
}


def smk(workdir: Path, *args: str, check: bool = True, env: dict | None = None,
        config: str = "config.yaml") -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / config), "--cores", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def planned_jobs(workdir: Path, *args: str, **changes: dict | str) -> dict[str, int]:
    """Rule -> job count of what Snakemake would run now (from a dry run's job stats).

    ``changes`` update sections of the tiny config for this dry run only.
    """
    config = "config.yaml"
    if changes:
        config = "changed.yaml"
        changed = {k: {**TINY.get(k, {}), **v} if isinstance(v, dict) else v for k, v in changes.items()}
        (workdir / config).write_text(yaml.safe_dump(changed | {k: v for k, v in TINY.items() if k not in changes}))
    return job_stats(smk(workdir, "-n", *args, config=config).stdout)


def job_stats(dry_run: str) -> dict[str, int]:
    """Rule -> job count from a dry run's output."""
    if "Nothing to be done" in dry_run:
        return {}
    stats = dry_run.split("Job stats:", 1)[1].split("Reasons:", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", stats, re.M) if m[1] != "total"}


def make_workdir(root: Path) -> Path:
    """Tiny paired data in data/{noisy,clean}/<split>/ plus config.yaml."""
    synth = root / "synth"
    synthesize(synth, counts={"train": 2, "val": 1, "test": 2},
               cfg=SynthConfig.from_dict({"width": 64, "height": 48, "duration_us": 40_000}), seed=3)
    for split in ("train", "val", "test"):
        for kind in ("noisy", "clean"):
            dst = root / "data" / kind / split
            dst.mkdir(parents=True)
            for f in (synth / split / kind).glob("*.h5"):
                shutil.copy(f, dst / f.name)
    shutil.rmtree(synth)
    (root / "config.yaml").write_text(yaml.safe_dump(TINY))
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wd = make_workdir(tmp_path_factory.mktemp("wf"))
    smk(wd)
    smk(wd, "report")
    return wd


def test_default_target_builds_model_denoised_files_and_metrics(built: Path) -> None:
    assert (built / "results/model/model.pt").is_file()
    history = pd.read_csv(built / "results/model/history.csv")
    assert history["step"].max() == TINY["train"]["steps"]
    for name in ("synth_test_0000", "synth_test_0001"):
        noisy = read_events(built / f"data/noisy/test/{name}_bg_flare.h5")
        den = read_events(built / f"results/denoised/{name}.h5")
        # The documented file is the configured decoder's, the one evaluate scores as model_mask.
        assert (built / f"results/denoised/{name}.h5").samefile(built / f"results/denoised/mask/{name}.h5")
        assert (den.width, den.height) == (noisy.width, noisy.height)
        assert len(den) <= len(noisy)  # mask decode keeps a subset of the input events
    summary = pd.read_csv(built / "results/metrics/summary.csv")
    methods = set(summary["method"])
    assert {"raw", "baf", "refractory", "stcf", "model_mask", "model_sample", "model_spread"} <= methods
    for rule in ("split", "voxelize", "train", "predict", "decode", "evaluate"):
        assert any((built / "results/logs").glob(f"**/{rule}*")), rule
        assert any((built / "results/benchmarks").glob(f"**/{rule}*")), rule
    # The resources table counts every job that wrote a benchmark, none missed, none twice.
    written = pd.Series([benchmark_rule(p) for p in (built / "results/benchmarks").glob("**/*.tsv")]).value_counts()
    table = pd.read_csv(built / "results/figures/resources.csv").set_index("rule")["jobs"]
    assert table.sort_index().to_dict() == written.sort_index().to_dict()
    assert {"summarize", "sample_figures", "training_curve"} <= set(table.index)


def test_logs_receive_the_jobs_output(built: Path) -> None:
    log = (built / "results/logs/split/synth_test_0000.log").read_text()
    assert "windows" in log and "synth_test_0000_bg_flare.h5" in log
    train_log = (built / "results/logs/train.log").read_text()
    assert f"step {TINY['train']['steps']}/{TINY['train']['steps']}" in train_log
    assert "best validation loss" in train_log


def test_cli_denoise_writes_the_workflows_very_file(built: Path) -> None:
    """`evdenoise denoise` with the workflow's model and the default settings: byte for byte the decode rule's file."""
    name = "synth_test_0000"
    out = built / "cli_denoised.h5"
    exe = Path(sys.executable).with_name("evdenoise")
    done = subprocess.run([str(exe), "denoise", "--model", "results/model/model.pt", "--device", "cpu",
                           f"data/noisy/test/{name}_bg_flare.h5", str(out)], cwd=built, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert out.read_bytes() == (built / f"results/denoised/{name}.h5").read_bytes()
    out.unlink()


def test_report_holds_metrics_training_samples_and_resources(built: Path) -> None:
    html = (built / "results/report.html").read_text()
    for item in ("summary.csv", "comparison.png", "training.png", "history.csv", "synth_test_0000_events.png",
                 "synth_test_0000_voxels.png", "resources.csv", "Metrics", "Training", "Samples", "Resources"):
        assert item in html, item
    # The landing page says what ran (from the config) and shows the headline table against the raw input.
    for item in ("This run read the", "folders", "20 ms windows", "trained", "unet3d", "for 6 steps", "mask",
                 "Headline", "Chamfer"):
        assert item in html, item
    headline = pd.read_csv(built / "results/metrics/headline.csv")
    first = headline.set_index("Method").iloc[:, 0]  # Chamfer: the raw input's value, the others' change to it
    assert "%" not in first["raw"] and first.drop("raw").str.endswith(" %)").all()


def test_second_run_does_nothing(built: Path) -> None:
    assert planned_jobs(built) == {}
    assert planned_jobs(built, "report") == {}


def test_changed_test_input_reruns_only_its_chain(built: Path, tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    shutil.copytree(built, wd, symlinks=True)
    path = wd / "data/noisy/test/synth_test_0001_bg_flare.h5"
    e = read_events(path)
    write_events(path, e.select(slice(0, len(e) // 2)), attrs={k: v for k, v in h5py.File(path, "r").attrs.items()})
    jobs = planned_jobs(wd)
    assert jobs.get("split") == 1 and jobs.get("voxelize") == 1 and jobs.get("predict") == 1
    assert jobs.get("decode") == 3 and jobs.get("denoised") == 1 and jobs.get("evaluate") == 1  # 3 decoders
    assert "train" not in jobs


def test_changed_training_setting_reruns_train_and_what_follows(built: Path) -> None:
    jobs = planned_jobs(built, train={"steps": 7})
    assert jobs.get("train") == 1 and jobs.get("predict") == 2 and jobs.get("decode") == 6
    assert "split" not in jobs and "voxelize" not in jobs
    # A decode setting reruns the decodes and the metrics of the files they write, never the network.
    jobs = planned_jobs(built, decode={"keep_threshold": 0.1})
    assert jobs.get("decode") == 6 and jobs.get("evaluate") == 2 and "predict" not in jobs and "train" not in jobs


def test_changed_voxel_setting_reruns_voxelize_not_split(built: Path) -> None:
    jobs = planned_jobs(built, voxel={"bins": 4})
    assert jobs.get("voxelize") == 5 and jobs.get("train") == 1
    assert "split" not in jobs


def test_single_denoised_target_builds_exactly_what_it_needs(tmp_path: Path) -> None:
    wd = make_workdir(tmp_path)
    jobs = planned_jobs(wd, "results/denoised/synth_test_0001.h5")
    assert jobs == {"split": 4, "voxelize": 4, "train": 1, "predict": 1, "decode": 1, "denoised": 1}
    # A recording without ground truth in the configured inference folder: denoised, never evaluated.
    (wd / "recordings").mkdir()
    shutil.copy(wd / "data/noisy/test/synth_test_0000_bg_flare.h5", wd / "recordings/street.h5")
    infer = {"data": {**TINY["data"], "inference": "recordings"}}
    assert planned_jobs(wd, "results/denoised/street.h5", **infer) == {
        "split": 4, "voxelize": 4, "train": 1, "predict": 1, "decode": 1, "denoised": 1}
    everything = planned_jobs(wd, **infer)
    # Two test files with each of 3 decoders, the recording with the configured one only.
    assert everything["decode"] == 7 and everything["denoised"] == 3 and everything["evaluate"] == 2
    # The sample wildcard admits any name (its regex does not grow with the data); an unknown one is named.
    typo = smk(wd, "-n", "results/denoised/synth_tset_0001.h5", check=False)
    assert typo.returncode != 0 and "no sample named 'synth_tset_0001'" in typo.stdout + typo.stderr


def test_corrupt_input_fails_its_job_cleanly(tmp_path: Path) -> None:
    wd = make_workdir(tmp_path)
    bad = wd / "data/noisy/test/synth_test_0000_bg_flare.h5"
    bad.write_bytes(b"not an hdf5 file at all")
    proc = smk(wd, "results/segments/synth_test_0000.h5", check=False)
    assert proc.returncode != 0
    log = (wd / "results/logs/split/synth_test_0000.log").read_text()
    assert "synth_test_0000_bg_flare.h5" in log and "not a readable HDF5 file" in log
    assert not list((wd / "results/segments").glob("*")) if (wd / "results/segments").exists() else True


def test_bad_config_stops_before_any_job_and_names_the_key(tmp_path: Path) -> None:
    wd = make_workdir(tmp_path)
    for section, key in (("voxel", "bins"), ("train", "stepz"), ("windows", "segment_us")):
        (wd / "bad.yaml").write_text(yaml.safe_dump({**TINY, section: {key: 0}}))
        proc = smk(wd, "-n", check=False, config="bad.yaml")
        assert proc.returncode != 0 and key in proc.stderr + proc.stdout, (section, proc.stderr[-2000:])
    assert not (wd / "results").exists()


def test_embedded_synthetic_default_plans_the_whole_chain(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"data": {"synthetic": {
        "counts": {"train": 2, "val": 1, "test": 1}}}}))
    jobs = planned_jobs(tmp_path)
    assert jobs["synthesize"] == 1 and jobs["split"] == 4 and jobs["train"] == 1 and jobs["evaluate"] == 1


def test_lint_is_clean(tmp_path: Path) -> None:
    wd = make_workdir(tmp_path)
    proc = smk(wd, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr


def test_slurm_profile_dry_run(tmp_path: Path) -> None:
    wd = make_workdir(tmp_path)
    proc = smk(wd, "--profile", str(REPO / "profiles/slurm"), "-n", "train")
    assert "train" in proc.stdout


def test_generic_cluster_executor_runs_jobs_as_separate_submissions(tmp_path: Path) -> None:
    wd = make_workdir(tmp_path)
    submit_log = tmp_path / "submissions.txt"
    smk(wd, "--executor", "cluster-generic", "--cluster-generic-submit-cmd",
        str(REPO / "tests/data/local_submit.sh"), "--jobs", "2", "--latency-wait", "30",
        "results/voxels/synth_test_0000.h5", "results/voxels/synth_test_0001.h5", env={"SUBMIT_LOG": str(submit_log)})
    submissions = submit_log.read_text().splitlines()
    assert len(submissions) == 4  # split and voxelize, for each of two files
    assert len({line.split()[0] for line in submissions}) == 4
    assert (wd / "results/voxels/synth_test_0001.h5").is_file()


def test_pretrained_rebuild_runs_each_round_the_finetune_from_base(built: Path) -> None:
    from evdenoise.pretrained import load_config, round_configs

    cfg = load_config(REPO / "config" / "pretrained.yaml")
    files = sum(cfg["data"]["counts"].values())
    one_round = built / "pretrained_one_round.yaml"
    one_round.write_text(yaml.safe_dump({k: v for k, v in cfg.items() if k != "finetune"}))
    two_rounds = built / "pretrained_two_rounds.yaml"  # a finetune of one data set adds a round
    two_rounds.write_text(yaml.safe_dump({**cfg, "finetune": {"data": {"seed": 5}, "train": {"steps": 3}}}))
    for config, rounds in ((str(one_round), 1), (str(two_rounds), 2)):
        assert len(round_configs(load_config(config))) == rounds
        jobs = planned_jobs(built, "pretrained", pretrained_config=config)
        assert jobs == {"pretrained_synthesize": rounds, "pretrained_split": files * rounds,
                        "pretrained_voxelize": files * rounds, "pretrained_train": rounds, "pretrained": 1}
    # The shipped config: a base round, then a finetune round on three new data sets (docs/ablations.md, Round 14).
    jobs = planned_jobs(built, "pretrained", pretrained_config=str(REPO / "config" / "pretrained.yaml"))
    assert jobs == {"pretrained_synthesize": 4, "pretrained_split": 4 * files, "pretrained_voxelize": 4 * files,
                    "pretrained_train": 2, "pretrained": 1}
    (built / "two.yaml").write_text(yaml.safe_dump({**TINY, "pretrained_config": str(two_rounds)}))
    plan = smk(built, "-n", "-p", "results/pretrained/finetune/model/model.pt", config="two.yaml").stdout
    assert "results/pretrained/base/model/model.pt" in plan  # the finetune round starts from base's model
    for mix in (False, True):  # a mixing round also trains (and validates) on base's files
        two_rounds.write_text(yaml.safe_dump({**cfg, "finetune": {"data": {"seed": 5}, "mix": mix}}))
        plan = smk(built, "-n", "results/pretrained/finetune/model/model.pt", config="two.yaml").stdout
        train = next(b for b in plan.split("rule ") if b.startswith("pretrained_train") and "round=finetune" in b)
        inputs = train.split("input:")[1].split("output:")[0]
        assert ("results/pretrained/base/voxels/train/synth_train_0000.h5" in inputs) == mix
        assert ("results/pretrained/base/voxels/val/" in inputs) == mix
        assert "results/pretrained/finetune/voxels/train/synth_train_0000.h5" in inputs
    # A round of two new data sets synthesizes each in its own folder and trains on all of them.
    two_rounds.write_text(yaml.safe_dump({**cfg, "finetune": {"data": [{"seed": 5}, {"seed": 6}], "mix": True}}))
    jobs = planned_jobs(built, "pretrained", pretrained_config=str(two_rounds))
    assert jobs["pretrained_synthesize"] == 3 and jobs["pretrained_voxelize"] == 3 * files
    plan = smk(built, "-n", "results/pretrained/finetune/model/model.pt", config="two.yaml").stdout
    train = next(b for b in plan.split("rule ") if b.startswith("pretrained_train") and "round=finetune" in b)
    inputs = train.split("input:")[1].split("output:")[0]
    for folder in ("base", "finetune-1", "finetune-2"):
        assert f"results/pretrained/{folder}/voxels/train/synth_train_0000.h5" in inputs
    # A data set with real backgrounds reads them as inputs: a changed recording reruns its synthesis.
    street = str(REPO.parent / "shared/data/formats/prophesee_evt3_1280x720_street.raw")
    sets = [{"seed": 5}, {"seed": 6, "backgrounds": [street], "params": {"real_crop": True}}]
    two_rounds.write_text(yaml.safe_dump({**cfg, "finetune": {"data": sets, "mix": True}}))
    plan = smk(built, "-n", "results/pretrained/finetune/model/model.pt", config="two.yaml").stdout
    synth = [b for b in plan.split("rule ") if b.startswith("pretrained_synthesize")]
    assert [street in b.split("output:")[0] for b in synth].count(True) == 1


def test_pretrained_model_denoises_without_training(built: Path) -> None:
    # The default voxels are the shipped model's: the built voxels serve it, only prediction and decoding rerun.
    jobs = planned_jobs(built, model={"pretrained": True})
    assert "train" not in jobs and "training_curve" not in jobs and "voxelize" not in jobs
    assert jobs.get("predict") == 2 and jobs.get("decode") == 6
    # Fine-tuning reads the shipped weights: training reruns, from them.
    assert planned_jobs(built, train={"init": "pretrained"}).get("train") == 1
    # The report also scored the shipped model on the same test files; with other voxels it cannot.
    assert {"pretrained_mask", "pretrained_sample"} <= set(pd.read_csv(built / "results/metrics/summary.csv")["method"])
    other = planned_jobs(built, voxel={"channels": 1, "assignment": "nearest"})
    assert other.get("voxelize") == 5 and "predict_pretrained" not in other


def test_quality_target_scores_each_set_through_the_workflows_own_rules(built: Path, tmp_path: Path,
                                                                        real_dir: Path) -> None:
    wd = tmp_path / "wd"
    shutil.copytree(built, wd, symlinks=True)
    recording = real_dir / "dvxplorer_320x240_person.h5"
    quality = {"sets": {"merged": {"about": "the test files merged", "role": "test", "split": "test", "count": 1,
                                   "params": {"merge_prob": 1.0}},
                        "held": {"about": "another size", "role": "heldout", "count": 1, "seed": 7,
                                 "width": 80, "height": 60}},
               "real": [str(recording)], "examples": ["test", "held"]}
    (wd / "quality.yaml").write_text(yaml.safe_dump(quality))
    tiny = {**TINY, "quality_config": str(wd / "quality.yaml"),
            "data": {**TINY["data"], "synthetic": {"width": 64, "height": 48, "duration_us": 40_000}}}
    (wd / "q.yaml").write_text(yaml.safe_dump(tiny))
    jobs = job_stats(smk(wd, "-n", "quality", config="q.yaml").stdout)
    # The built test split is reused; each set's pair and the recording run the same rules as a test file.
    assert jobs["quality_synthesize_merged"] == jobs["quality_synthesize_held"] == 1
    assert jobs["evaluate"] == 2 and jobs["split"] == 3 and jobs["quality_real"] == 1
    assert jobs["quality_bounds"] == 2 and jobs["quality"] == 1 and "train" not in jobs
    smk(wd, "quality", config="q.yaml")
    page = (wd / "benchmarks/quality.md").read_text()
    assert "$" not in page.replace("$\\", "")  # every placeholder filled
    for needle in ("## (b) Held-out sets", "`held`: 1 file(s), seed 7; another size", "Set `merged`",
                   "| dvxplorer_320x240_person.h5 | 111,954 |", "| model_mask |", "mask (bilinear) + cell adds"):
        assert needle in page, needle
    for png in ("example_test.png", "example_held.png", "real.dvxplorer_320x240_person.png"):
        assert (wd / "benchmarks/quality" / png).stat().st_size > 1000, png
    kept = pd.read_csv(wd / "results/quality/real/real.dvxplorer_320x240_person.csv").iloc[0]
    assert kept["model"] == len(read_events(wd / "results/denoised/real.dvxplorer_320x240_person.h5")) / 111_954
    # Snakemake tracks what is stale: nothing reruns, and a changed set reruns only its own pairs and the page.
    assert "Nothing to be done" in smk(wd, "-n", "quality", config="q.yaml").stdout
    quality["sets"]["held"]["seed"] = 8
    (wd / "quality.yaml").write_text(yaml.safe_dump(quality))
    jobs = job_stats(smk(wd, "-n", "quality", config="q.yaml").stdout)
    assert jobs["quality_synthesize_held"] == jobs["evaluate"] == jobs["quality"] == 1
    assert "quality_synthesize_merged" not in jobs and "quality_bounds" not in jobs
