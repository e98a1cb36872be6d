"""Snakemake glue for rule predict (see evdenoise.stages.predict_file)."""
import json

import torch

from evdenoise.runlog import logged
from evdenoise.stages import predict_file

with logged(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    p = json.loads(snakemake.params.predict)
    predict_file(snakemake.input.model, snakemake.input.voxels, snakemake.output[0], mode=p["mode"],
                 batch_size=p["batch_size"], device=p["device"])
