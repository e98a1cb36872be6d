"""Snakemake glue for rule decode (see evdenoise.stages.decode_file)."""
import json

from evdenoise.runlog import logged
from evdenoise.stages import decode_file

with logged(snakemake.log[0]):
    d = json.loads(snakemake.params.decode)
    decode_file(snakemake.input.predicted, snakemake.input.segments, snakemake.input.noisy, snakemake.output[0],
                strategy=d["strategy"], seed=d["seed"], keep_threshold=d["keep_threshold"])
