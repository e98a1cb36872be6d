"""Snakemake glue for rule voxelize (see evdenoise.stages.voxelize_file)."""
import json

from evdenoise.runlog import logged
from evdenoise.stages import voxelize_file
from evdenoise.voxel import VoxelSpec

with logged(snakemake.log[0]):
    voxelize_file(snakemake.input[0], snakemake.output[0], VoxelSpec(**json.loads(snakemake.params.voxel)))
