"""Snakemake glue for rule summarize: per-file metrics -> summary CSV, markdown table, figure."""
from evdenoise.evaluate import comparison_figure, markdown_table, summarize
from evdenoise.events import atomic_path
from evdenoise.runlog import logged
from evdenoise.stages import concat_csvs

with logged(snakemake.log[0]):
    per_file = concat_csvs(snakemake.input)
    summary = summarize(per_file)
    with atomic_path(snakemake.output.per_file) as tmp:
        per_file.to_csv(tmp, index=False)
    with atomic_path(snakemake.output.summary) as tmp:
        summary.to_csv(tmp, index=False)
    with atomic_path(snakemake.output.markdown) as tmp:
        tmp.write_text(markdown_table(summary))
    comparison_figure(summary, snakemake.output.figure)
