"""Snakemake glue for rule evaluate (see evdenoise.stages.evaluate_sample)."""
import json

from evdenoise.runlog import logged
from evdenoise.stages import evaluate_sample
from evdenoise.voxel import VoxelSpec

with logged(snakemake.log[0]):
    p = snakemake.params
    evaluate_sample(snakemake.input.segments, {m: snakemake.input[m] for m in p.methods}, snakemake.output[0],
                    sample=snakemake.wildcards.sample, baselines=p.baselines, decodes=p.roundtrip_decodes,
                    spec=VoxelSpec(**json.loads(p.voxel)), seed=p.seed)
