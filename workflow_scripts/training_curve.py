"""Snakemake glue for rule training_curve (see evdenoise.plot.plot_history)."""
from evdenoise.plot import plot_history
from evdenoise.runlog import logged

with logged(snakemake.log[0]):
    plot_history(snakemake.input[0], snakemake.output[0])
