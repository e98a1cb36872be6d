"""Snakemake glue for rule synthesize (see evdenoise.synth.synthesize)."""
import json
from pathlib import Path

from evdenoise.runlog import logged
from evdenoise.synth import SynthConfig, synthesize

with logged(snakemake.log[0]):
    syn = json.loads(snakemake.params.synth)
    cfg = SynthConfig.from_dict({"width": syn["width"], "height": syn["height"],
                                 "duration_us": syn["duration_us"], **syn["params"]})
    synthesize(Path(syn["root"]), counts=syn["counts"], cfg=cfg, seed=syn["seed"],
               previews=syn["previews"], backgrounds=[Path(b) for b in syn["backgrounds"]])
