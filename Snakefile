# evdenoise: split -> voxelize -> train -> predict -> decode -> evaluate -> report.
# Per-file artifacts under results/; see docs/architecture.md for the data flow and shapes.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "config/schema.yaml")


include: "rules/common.smk"


onstart:
    if workflow.executor_plugin.name in ("slurm", "evdenoise-slurm"):
        check_slurm_requests()


rule all:
    default_target: True
    input:
        MODEL,
        expand("results/denoised/{sample}.h5", sample=INFER + TEST),
        summary_outputs(),


include: "rules/synthesize.smk"
include: "rules/split.smk"
include: "rules/voxelize.smk"
include: "rules/train.smk"
include: "rules/predict.smk"
include: "rules/decode.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"
include: "rules/pretrained.smk"
