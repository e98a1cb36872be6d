# Sample table, config checks and helpers shared by the rules.
import json
import os

from snakemake.exceptions import WorkflowError

from evdenoise.pretrained import HERE as PRETRAINED_DIR
from evdenoise.pretrained import MODEL_PATH as PRETRAINED_MODEL
from evdenoise.pretrained import load_config as load_pretrained_config
from evdenoise.pretrained import read_card_facts
from evdenoise.samples import SampleError, build_samples
from evdenoise.train import TrainConfig

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
GPU = config["resources"]["gpu"]
# model.pretrained: the shipped model denoises and nothing is trained.
PRETRAINED = config["model"].get("pretrained", False)
MODEL = str(PRETRAINED_MODEL) if PRETRAINED else "results/model/model.pt"
# The report also scores the shipped model on the same test files (when it is there and not the model itself).
COMPARE_PRETRAINED = (config["evaluate"]["pretrained"] and not PRETRAINED and PRETRAINED_MODEL.is_file()
                      and read_card_facts()["voxel"] == config["voxel"])


wildcard_constraints:
    sample="|".join(SAMPLES) or "NONE",


def noisy_of(wildcards):
    return str(SAMPLES[wildcards.sample].noisy)


def clean_of(wildcards):
    clean = SAMPLES[wildcards.sample].clean
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


def init_weights_file():
    init = config["train"].get("init")
    return [] if not init else [str(PRETRAINED_MODEL) if init == "pretrained" else init]


def as_json(obj):
    # Params as a canonical string: a changed setting changes the param and reruns the rule.
    return json.dumps(obj, sort_keys=True)


def benchmark_files(wildcards):
    files = [] if PRETRAINED else ["results/benchmarks/train.tsv"]
    if config["data"]["source"] == "synthetic":
        files.append("results/benchmarks/synthesize.tsv")
    for sample in TRAIN + VAL + TEST + INFER:
        files += [f"results/benchmarks/split/{sample}.tsv", f"results/benchmarks/voxelize/{sample}.tsv"]
    for sample in TEST + INFER:
        files += [f"results/benchmarks/predict/{sample}.tsv", f"results/benchmarks/decode/{sample}.tsv"]
    files += [f"results/benchmarks/evaluate/{sample}.tsv" for sample in TEST]
    if COMPARE_PRETRAINED:
        files += [f"results/benchmarks/predict_pretrained/{sample}.tsv" for sample in TEST]
    return files


# The shipped model's rebuild (rules/pretrained.smk): its own config, independent of this one's data and model.
PRE = load_pretrained_config(os.path.join(workflow.basedir, "config", "pretrained.yaml"))
PRE_ROOT = PRE["data"]["root"]
PRE_NAMES = {
    split: [f"synth_{split}_{i:04d}" for i in range(PRE["data"]["counts"][split])] for split in ("train", "val")
}


wildcard_constraints:
    split="train|val",


def pre_pair(split, name, role):
    suffix = "noisy/{}_bg_flare.h5" if role == "noisy" else "clean/{}_bg_light.h5"
    return f"{PRE_ROOT}/{split}/{suffix.format(name)}"
