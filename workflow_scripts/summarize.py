"""Snakemake glue for rule summarize: per-file metrics -> summary CSV, markdown table, figure."""
from evdenoise.evaluate import write_csv, write_summary
from evdenoise.runlog import logged
from evdenoise.stages import concat_csvs

with logged(snakemake.log[0]):
    per_window = concat_csvs(snakemake.input)
    write_csv(per_window, snakemake.output.per_file)
    write_summary(per_window, snakemake.output.summary, snakemake.output.markdown, snakemake.output.figure,
                  snakemake.output.headline)
