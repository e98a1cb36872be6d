"""Snakemake glue for rule sample_figures: event images and voxel bins of one test file."""
from evdenoise.artifacts import read_voxels
from evdenoise.events import read_events
from evdenoise.plot import plot_events, plot_voxels
from evdenoise.runlog import logged

with logged(snakemake.log[0]):
    streams = [read_events(snakemake.input.noisy), read_events(snakemake.input.denoised)]
    labels = ["noisy", "denoised"]
    if snakemake.input.clean:
        streams.append(read_events(snakemake.input.clean[0]))
        labels.append("clean")
    plot_events(streams, labels, snakemake.output.events, windows=True)
    panels = {"noisy": read_voxels(snakemake.input.voxels, "raw")[0],
              "predicted": read_voxels(snakemake.input.predicted, "pred")[0]}
    if snakemake.input.clean:
        panels["clean"] = read_voxels(snakemake.input.voxels, "label")[0]
    plot_voxels(panels, snakemake.output.voxels)
