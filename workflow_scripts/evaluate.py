"""Snakemake glue for rule evaluate (see evdenoise.stages.evaluate_sample)."""
import json

from evdenoise.runlog import logged
from evdenoise.stages import evaluate_sample
from evdenoise.voxel import VoxelSpec

with logged(snakemake.log[0]):
    p = snakemake.params
    denoised = {method: path for method, path in snakemake.input.items() if method != "segments"}
    evaluate_sample(snakemake.input.segments, denoised, snakemake.output[0],
                    sample=snakemake.wildcards.sample, baselines=p.baselines, decodes=p.roundtrip_decodes,
                    spec=VoxelSpec(**json.loads(p.voxel)), seed=p.seed)
