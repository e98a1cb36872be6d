"""Snakemake glue for rule quality: the scored sets -> benchmarks/quality.md (see evdenoise.quality)."""
import json
import os

from evdenoise.quality import example_picture, flare_heaviest, quality_fields, setup_lines, write_page
from evdenoise.runlog import logged
from evdenoise.stages import concat_csvs

with logged(snakemake.log[0]):
    p, inp, out = snakemake.params, snakemake.input, snakemake.output
    sets, pictured = json.loads(p.sets), json.loads(p.pictured)
    metrics = concat_csvs([*inp.test, *inp.sets])
    scores = {"test": metrics[metrics["file"].isin(p.test)],
              **{n: metrics[metrics["file"].isin(s["samples"])] for n, s in sets.items()}}
    page_dir = os.path.dirname(out.page)
    denoised = {os.path.basename(f).removesuffix(".h5"): f for f in inp.denoised}  # sample -> its denoised file
    examples = []
    for name, png in zip(p.examples, out.examples):
        sample = flare_heaviest({s: pictured[s] for s in p.test}) if name == "test" else sets[name]["samples"][0]
        example_picture(pictured[sample][0], denoised[sample], pictured[sample][1], png)
        examples.append(os.path.relpath(png, page_dir))
    real = concat_csvs(inp.real)
    real["picture"] = [os.path.relpath(png, page_dir) for png in real["png"]]
    setup = setup_lines(inp.model, inp.train[0] if inp.train else None, predict_mode=p.predict_mode,
                        keep_threshold=p.keep_threshold)
    fields = quality_fields(scores, {n: {k: v for k, v in s.items() if k != "samples"} for n, s in sets.items()},
                            bounds=concat_csvs(inp.bounds), real=real, model=p.model, setup=setup,
                            examples=examples, segment_us=p.segment_us)
    write_page(p.template, out.page, fields)
