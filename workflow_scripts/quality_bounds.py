"""Snakemake glue for rule quality_bounds (see evdenoise.quality.bounds_sample)."""
import json

from evdenoise.quality import bounds_sample
from evdenoise.runlog import logged
from evdenoise.voxel import VoxelSpec

with logged(snakemake.log[0]):
    p = snakemake.params
    bounds_sample(snakemake.input[0], snakemake.output[0], sample=snakemake.wildcards.sample,
                  spec=VoxelSpec(**json.loads(p.voxel)), seed=p.seed, keep_threshold=p.keep_threshold)
