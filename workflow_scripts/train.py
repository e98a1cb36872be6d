"""Snakemake glue for rule train (see evdenoise.train.train)."""
import json

from evdenoise.runlog import logged
from evdenoise.train import TrainConfig, train

with logged(snakemake.log[0]):
    cfg = TrainConfig.from_dict({"threads": snakemake.threads, **json.loads(snakemake.params.train)})
    train(cfg, json.loads(snakemake.params.model), snakemake.input.train, snakemake.input.val,
          snakemake.params.out_dir, progress=False)
