"""Snakemake glue for rule resources_table: time and memory per rule from the benchmark files."""
from evdenoise.plot import plot_resources
from evdenoise.resources import benchmark_table
from evdenoise.events import atomic_path
from evdenoise.runlog import logged

with logged(snakemake.log[0]):
    table = benchmark_table(snakemake.input)
    with atomic_path(snakemake.output.table) as tmp:
        table.to_csv(tmp, index=False)
    plot_resources(table, snakemake.output.figure)
