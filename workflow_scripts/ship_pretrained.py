"""Snakemake glue for rule pretrained (see evdenoise.pretrained.ship)."""
import json
from pathlib import Path

from evdenoise.pretrained import git_commit, round_configs, ship
from evdenoise.runlog import logged

with logged(snakemake.log[0]):
    cfg = json.loads(snakemake.params.config)
    facts = ship(dict(zip(round_configs(cfg), snakemake.input.models)), snakemake.input.history, cfg,
                 snakemake.params.dest, git_commit(snakemake.params.repo))
    Path(snakemake.output[0]).write_text(json.dumps(facts, indent=1, sort_keys=True))
