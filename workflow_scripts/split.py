"""Snakemake glue for rule split (see evdenoise.stages.split_file)."""
import json

from evdenoise.runlog import logged
from evdenoise.stages import split_file

with logged(snakemake.log[0]):
    windows = json.loads(snakemake.params.windows)
    split_file(snakemake.input.noisy, snakemake.input.clean[0] if snakemake.input.clean else None,
               snakemake.output[0], segment_us=windows["segment_us"], grid=windows["grid"],
               width=snakemake.params.width, height=snakemake.params.height)
