"""Snakemake glue for rule evaluate (see evdenoise.stages.evaluate_sample)."""
import json

from evdenoise.runlog import logged
from evdenoise.stages import evaluate_sample
from evdenoise.voxel import VoxelSpec

with logged(snakemake.log[0]):
    ev, d = json.loads(snakemake.params.evaluate), json.loads(snakemake.params.decode)
    predicted = {"model": snakemake.input.predicted,
                 **({"pretrained": snakemake.input.pretrained[0]} if snakemake.input.pretrained else {})}
    evaluate_sample(snakemake.input.segments, predicted, snakemake.output[0],
                    sample=snakemake.wildcards.sample, baselines=ev["baselines"], decodes=ev["decodes"],
                    spec=VoxelSpec(**json.loads(snakemake.params.voxel)),
                    seed=d["seed"], keep_threshold=d["keep_threshold"])
