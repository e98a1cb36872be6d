"""Snakemake glue for rule quality_real (see evdenoise.quality.real_sample)."""
from evdenoise.quality import real_sample
from evdenoise.runlog import logged

with logged(snakemake.log[0]):
    real_sample(snakemake.input.noisy, snakemake.input.denoised, snakemake.output.csv, snakemake.output.png,
                sample=snakemake.wildcards.sample)
