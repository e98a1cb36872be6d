# Score the denoised files (each decoder's, the model's and the shipped model's) and the baselines against the
# clean files, per window, then summarise.


rule evaluate:
    input:
        unpack(lambda w: {"segments": f"results/segments/{w.sample}.h5", **denoised_by_method(w)}),
    output:
        "results/metrics/{sample}.csv",
    log:
        "results/logs/evaluate/{sample}.log",
    benchmark:
        "results/benchmarks/evaluate/{sample}.tsv"
    conda:
        "../envs/evdenoise.yaml"
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=4000,
        runtime=30,
    params:
        baselines=config["evaluate"]["baselines"],
        roundtrip_decodes=config["evaluate"]["decodes"],
        seed=config["decode"]["seed"],
        voxel=as_json(config["voxel"]),
    script:
        "../workflow_scripts/evaluate.py"


rule summarize:
    input:
        expand("results/metrics/{sample}.csv", sample=TEST),
    output:
        per_file="results/metrics/per_file.csv",
        summary=report(
            "results/metrics/summary.csv",
            caption="../report/summary.rst",
            category="Metrics",
        ),
        markdown="results/metrics/summary.md",
        headline="results/metrics/headline.csv",
        figure=report(
            "results/figures/comparison.png",
            caption="../report/comparison.rst",
            category="Metrics",
        ),
    log:
        "results/logs/summarize.log",
    benchmark:
        "results/benchmarks/summarize.tsv"
    conda:
        "../envs/evdenoise.yaml"
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=2000,
        runtime=10,
    script:
        "../workflow_scripts/summarize.py"


rule sample_figures:
    input:
        noisy=noisy_of,
        clean=clean_of,
        denoised="results/denoised/{sample}.h5",
        voxels="results/voxels/{sample}.h5",
        predicted="results/predicted/{sample}.h5",
    output:
        events=report(
            "results/figures/samples/{sample}_events.png",
            caption="../report/sample_events.rst",
            category="Samples",
            subcategory="{sample}",
        ),
        voxels=report(
            "results/figures/samples/{sample}_voxels.png",
            caption="../report/sample_voxels.rst",
            category="Samples",
            subcategory="{sample}",
        ),
    log:
        "results/logs/sample_figures/{sample}.log",
    benchmark:
        "results/benchmarks/sample_figures/{sample}.tsv"
    conda:
        "../envs/evdenoise.yaml"
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=2000,
        runtime=10,
    script:
        "../workflow_scripts/sample_figures.py"
