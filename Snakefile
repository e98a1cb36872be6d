# evdenoise: split -> voxelize -> train -> predict -> decode -> evaluate -> report.
# Per-file artifacts under results/; see docs/architecture.md for the data flow and shapes.
import os

from snakemake.utils import min_version, validate

min_version("9.0")


# The repository's config is always loaded: its values are the defaults, and a --configfile or --config
# merges over it (a key left out keeps the tuned value, whatever the working directory).
configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# A model section that names a model replaces the repository's whole: its keys belong to that model's builder,
# whose defaults are config.yaml's values (tests/test_defaults.py).
_model = workflow.config_settings.overwrite_config.get("model") or {}
if "name" in _model:
    config["model"] = {"pretrained": config["model"]["pretrained"], **_model}

validate(config, "config/schema.yaml")


report: "report/workflow.rst"


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
include: "rules/quality.smk"
