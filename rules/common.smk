# Sample table, config checks and helpers shared by the rules.
import json
import os
import subprocess

from snakemake.exceptions import WorkflowError

from evdenoise.decode import STRATEGIES as DECODERS
from evdenoise.cluster import SINFO_ARGS, Request, parse_sinfo, request_problems
from evdenoise.pretrained import HERE as PRETRAINED_DIR
from evdenoise.pretrained import MODEL_PATH as PRETRAINED_MODEL
from evdenoise.pretrained import load_config as load_pretrained_config
from evdenoise.pretrained import data_sets as pretrained_data_sets
from evdenoise.pretrained import round_configs as pretrained_rounds
from evdenoise.pretrained import read_card_facts
from evdenoise.quality_sets import load_quality_config, real_samples, set_samples, set_synth_settings
from evdenoise.samples import WILDCARD_PATTERN, SampleError, build_samples, check_names, repo_path
from evdenoise.train_config import TrainConfig

try:
    SAMPLES = {s.name: s for s in build_samples(config["data"])}
    TrainConfig.from_dict(config["train"])
except (SampleError, ValueError) as err:
    raise WorkflowError(f"bad configuration: {err}")

TRAIN = [n for n, s in SAMPLES.items() if s.split == "train"]
VAL = [n for n, s in SAMPLES.items() if s.split == "val"]
TEST = [n for n, s in SAMPLES.items() if s.split == "test"]
INFER = [n for n, s in SAMPLES.items() if s.split == "infer"]
FIGURE_SAMPLES = TEST[: config["evaluate"]["figures"]]

# snakemake quality (rules/quality.smk): more pairs and flare-free recordings, run through the same rules.
try:
    QUALITY = load_quality_config(os.path.join(workflow.basedir, config["quality_config"]))
except (OSError, ValueError) as err:
    raise WorkflowError(f"bad quality configuration: {err}")
QUALITY_SYNTH = set_synth_settings(QUALITY, config["data"]["synthetic"], "results/quality", workflow.basedir)
_QUALITY_PAIRS = set_samples(QUALITY_SYNTH)
_QUALITY_REAL = real_samples(QUALITY, workflow.basedir)
QUALITY_SETS = {name: [s.name for s in samples] for name, samples in _QUALITY_PAIRS.items()}
QUALITY_REAL = [s.name for s in _QUALITY_REAL]
# The pairs the quality page may picture: the test split and each example set's first.
QUALITY_PICTURED = TEST + [QUALITY_SETS[e][0] for e in QUALITY["examples"] if e != "test"]
_extra = [*(s for samples in _QUALITY_PAIRS.values() for s in samples), *_QUALITY_REAL]
try:
    check_names([*SAMPLES.values(), *_extra])
except SampleError as err:
    raise WorkflowError(f"bad quality configuration: {err}")
SAMPLES.update({s.name: s for s in _extra})
# model.pretrained: the shipped model denoises and nothing is trained.
PRETRAINED = config["model"].get("pretrained", False)
MODEL = str(PRETRAINED_MODEL) if PRETRAINED else "results/model/model.pt"
# The report also scores the shipped model on the same test files (when it is there and not the model itself).
COMPARE_PRETRAINED = (
    config["evaluate"]["pretrained"]
    and not PRETRAINED
    and PRETRAINED_MODEL.is_file()
    and read_card_facts()["voxel"] == config["voxel"]
)
RES = config["resources"]
GPU = RES["gpu"]
# Slurm placement (local runs ignore these resources): train and predict move to the GPU partition when
# they ask for GPUs. GPUs are requested one way only, as `gpu` (sbatch --gpus), never also as gres.
CPU_JOB = {"slurm_partition": RES["cpu_partition"], "slurm_account": RES["account"]}
GPU_JOB = {
    "slurm_partition": (RES["gpu_partition"] or RES["cpu_partition"]) if GPU else RES["cpu_partition"],
    "slurm_account": RES["account"],
    "gpu": GPU,
}


wildcard_constraints:
    sample=WILDCARD_PATTERN,
    decoder="|".join(DECODERS),


def sample_of(wildcards):
    """The configured sample a target names (the wildcard admits any valid name)."""
    try:
        return SAMPLES[wildcards.sample]
    except KeyError:
        raise WorkflowError(
            f"no sample named {wildcards.sample!r} in the configured data ({len(SAMPLES)} samples; "
            "`evdenoise check` or `snakemake -n` lists them)"
        ) from None


def denoised_by_method(wildcards):
    """The denoised files evaluate scores, keyed by method (model_<decoder>, pretrained_<decoder>)."""
    out = {f"model_{d}": f"results/denoised/{d}/{wildcards.sample}.h5" for d in config["evaluate"]["decodes"]}
    if COMPARE_PRETRAINED:
        for d in config["evaluate"]["decodes"]:
            out[f"pretrained_{d}"] = f"results/denoised_pretrained/{d}/{wildcards.sample}.h5"
    return out


def noisy_of(wildcards):
    return str(sample_of(wildcards).noisy)


def clean_of(wildcards):
    clean = sample_of(wildcards).clean
    return [str(clean)] if clean is not None else []


def summary_outputs():
    """Tables and figures of the default target (and so of the report)."""
    figures = ["results/figures/resources.csv"] + ([] if PRETRAINED else ["results/figures/training.png"])
    if not TEST:
        return figures
    return figures + [
        "results/metrics/summary.csv",
        "results/metrics/summary.md",
        "results/figures/comparison.png",
        *expand("results/figures/samples/{sample}_{kind}.png", sample=FIGURE_SAMPLES, kind=["events", "voxels"]),
    ]


def quality_inputs(wildcards):
    """What the quality page reads: every set's metrics, the bounds, the recordings' shares, the model."""
    return {
        "test": [f"results/metrics/{s}.csv" for s in TEST],
        "sets": [f"results/metrics/{s}.csv" for names in QUALITY_SETS.values() for s in names],
        "bounds": [f"results/quality/bounds/{s}.csv" for s in TEST],
        "real": [f"results/quality/real/{s}.csv" for s in QUALITY_REAL],
        "denoised": [f"results/denoised/{s}.h5" for s in QUALITY_PICTURED],
        "model": MODEL,
        "train": [] if PRETRAINED else ["results/benchmarks/train.tsv"],
    }


def quality_pictured():
    """Noisy and clean file of each pair the quality page may picture (the test split, each example set's first)."""
    return as_json({s: [str(SAMPLES[s].noisy), str(SAMPLES[s].clean)] for s in QUALITY_PICTURED})


def init_weights_file():
    init = config["train"].get("init")
    return [] if not init else [str(PRETRAINED_MODEL) if init == "pretrained" else init]


def as_json(obj):
    # Params as a canonical string: a changed setting changes the param and reruns the rule.
    return json.dumps(obj, sort_keys=True)


def benchmark_files(wildcards):
    """Every benchmarked job of the default target: each rule's own `benchmark:` pattern (rules.<name>.benchmark,
    so no path is spelled twice) filled with its jobs' wildcards. An input function sees no DAG, so the jobs come
    from the same sample lists as the targets; tests/test_workflow.py checks that every job with a benchmark is
    counted (the table's jobs per rule against the benchmark files a run wrote)."""
    strategy = config["decode"]["strategy"]
    test_decoders = sorted(set(config["evaluate"]["decodes"]) | {strategy})
    once = [{}]
    every = [{"sample": s} for s in TRAIN + VAL + TEST + INFER]
    jobs = {
        "synthesize": once if config["data"]["source"] == "synthetic" else [],
        "train": [] if PRETRAINED else once,
        "training_curve": [] if PRETRAINED else once,
        "split": every,
        "voxelize": every,
        "predict": [{"sample": s} for s in TEST + INFER],
        "decode": [{"decoder": d, "sample": s} for s in TEST for d in test_decoders]
        + [{"decoder": strategy, "sample": s} for s in INFER],
        "evaluate": [{"sample": s} for s in TEST],
        "summarize": once if TEST else [],
        "sample_figures": [{"sample": s} for s in FIGURE_SAMPLES] if TEST else [],
    }
    if COMPARE_PRETRAINED:
        jobs["predict_pretrained"] = [{"sample": s} for s in TEST]
        jobs["decode_pretrained"] = [{"decoder": d, "sample": s} for s in TEST for d in config["evaluate"]["decodes"]]
    return [str(getattr(rules, rule).benchmark).format(**w) for rule, ws in jobs.items() for w in ws]


def sized_request(smk_rule):
    """What a job of `smk_rule` asks of Slurm, with the config keys behind train's and predict's sizes."""

    def value(key):
        return smk_rule.resources.get(key).value

    if smk_rule.name in ("train", "predict"):
        keys = {k: f"resources.{smk_rule.name}_{k}" for k in ("threads", "mem_mb", "runtime")}
        keys |= {"gpus": "resources.gpu", "partition": "resources.gpu_partition" if GPU else "resources.cpu_partition"}
    else:
        keys = {
            "threads": "threads",
            "mem_mb": "mem_mb",
            "runtime": "runtime",
            "gpus": "gpu",
            "partition": "resources.cpu_partition",
        }
    return Request(
        smk_rule.name,
        value("slurm_partition"),
        value("_cores"),
        value("mem_mb"),
        value("runtime"),
        value("gpu") or 0,
        keys,
    )


def check_slurm_requests():
    """Stop before the first submission when a job's request fits no node of its partition.

    Also when --cores is set (e.g. by profiles/default's `cores: all`): it would silently cap the
    threads every cluster job asks for.
    """
    rules = [r for r in workflow.rules if "slurm_partition" in r.resources]
    cores = workflow.resource_settings.cores
    requests = [sized_request(r) for r in rules]
    problems = [
        f"{q.keys['threads']}={q.threads} of {q.rule} is capped by --cores {cores} "
        "(run the Slurm profile with --workflow-profile none)"
        for q in requests
        if cores is not None and q.threads > cores
    ]
    try:
        sinfo = subprocess.run(SINFO_ARGS, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as err:
        raise WorkflowError(f"cannot read the Slurm nodes with {' '.join(SINFO_ARGS)}: {err}")
    if sinfo.returncode != 0:
        raise WorkflowError(f"cannot read the Slurm nodes with {' '.join(SINFO_ARGS)}: {sinfo.stderr.strip()}")
    problems += request_problems(requests, parse_sinfo(sinfo.stdout))
    if problems:
        raise WorkflowError(
            "cluster request that cannot be met (config/config.yaml, resources):\n  " + "\n  ".join(problems)
        )


# The shipped model's rebuild (rules/pretrained.smk): its own config, independent of this one's data and model.
PRE = load_pretrained_config(os.path.join(workflow.basedir, config["pretrained_config"]))
PRE_ROUNDS = pretrained_rounds(PRE)
PRE_LAST = list(PRE_ROUNDS)[-1]  # the round whose model is shipped
PRE_SETS = pretrained_data_sets(PRE_ROUNDS)  # each round's synthesized files, by data set name
PRE_NAMES = {  # the same in every round (round_configs refuses other counts)
    split: [f"synth_{split}_{i:04d}" for i in range(PRE["data"]["counts"][split])] for split in ("train", "val")
}


wildcard_constraints:
    split="train|val",
    round="|".join(PRE_ROUNDS),
    dataset="|".join(PRE_SETS),


def pre_dir(rnd):
    return f"{PRE['data']['root']}/{rnd}"


def pre_pair(rnd, split, name, role):
    suffix = "noisy/{}_bg_flare.h5" if role == "noisy" else "clean/{}_bg_light.h5"
    return f"{pre_dir(rnd)}/data/{split}/{suffix.format(name)}"


def pre_voxels(rnd, split):
    """A round's voxel files; a mixing round's list starts with the earlier rounds' data sets."""
    order = list(PRE_ROUNDS)
    rounds = order[: order.index(rnd) + 1] if PRE_ROUNDS[rnd]["mix"] else [rnd]
    sets = [s for r in rounds for s in PRE_ROUNDS[r]["sets"]]
    return [f"{pre_dir(s)}/voxels/{split}/{name}.h5" for s in sets for name in PRE_NAMES[split]]


def pre_backgrounds(dataset):
    """A data set's background recordings; relative paths are relative to the repository (as in quality.yaml)."""
    return [repo_path(workflow.basedir, b) for b in PRE_SETS[dataset].get("backgrounds", [])]


def pre_init(rnd):
    """The model a round starts from: the previous round's (none for the first)."""
    order = list(PRE_ROUNDS)
    return [] if order.index(rnd) == 0 else [f"{pre_dir(order[order.index(rnd) - 1])}/model/model.pt"]
