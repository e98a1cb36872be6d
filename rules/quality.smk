# snakemake quality: the configured model on the test split and on the sets of config/quality.yaml, each pair run
# through the same split, voxelize, predict, decode and evaluate rules as the test split; decoder bounds on the
# test split; the share of events kept on flare-free real recordings. Writes benchmarks/quality.md (its prose is
# report/quality.md) and its pictures.

for _qset, _synth in QUALITY_SYNTH.items():

    rule:
        name:
            f"quality_synthesize_{_qset}"
        output:
            noisy=[str(SAMPLES[n].noisy) for n in QUALITY_SETS[_qset]],
            clean=[str(SAMPLES[n].clean) for n in QUALITY_SETS[_qset]],
            manifest=f"{_synth['root']}/manifest.csv",
        log:
            f"results/logs/quality/synthesize_{_qset}.log",
        benchmark:
            f"results/benchmarks/quality/synthesize_{_qset}.tsv"
        conda:
            "../envs/evdenoise.yaml"
        threads: 1
        resources:
            **CPU_JOB,
            mem_mb=4000,
            runtime=60,
        params:
            synth=as_json(_synth),
        script:
            "../workflow_scripts/synthesize.py"


rule quality_bounds:
    input:
        "results/segments/{sample}.h5",
    output:
        "results/quality/bounds/{sample}.csv",
    log:
        "results/logs/quality/bounds/{sample}.log",
    benchmark:
        "results/benchmarks/quality/bounds/{sample}.tsv"
    conda:
        "../envs/evdenoise.yaml"
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=4000,
        runtime=30,
    params:
        voxel=as_json(config["voxel"]),
        seed=config["decode"]["seed"],
        keep_threshold=config["decode"]["keep_threshold"],
    script:
        "../workflow_scripts/quality_bounds.py"


rule quality_real:
    input:
        noisy=noisy_of,
        denoised="results/denoised/{sample}.h5",
    output:
        csv="results/quality/real/{sample}.csv",
        png="benchmarks/quality/{sample}.png",
    log:
        "results/logs/quality/real/{sample}.log",
    benchmark:
        "results/benchmarks/quality/real/{sample}.tsv"
    conda:
        "../envs/evdenoise.yaml"
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=4000,
        runtime=30,
    script:
        "../workflow_scripts/quality_real.py"


rule quality:
    input:
        unpack(quality_inputs),
    output:
        page="benchmarks/quality.md",
        examples=[f"benchmarks/quality/example_{e}.png" for e in QUALITY["examples"]],
    log:
        "results/logs/quality/page.log",
    conda:
        "../envs/evdenoise.yaml"
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=4000,
        runtime=30,
    params:
        sets=as_json({n: {**QUALITY["sets"][n], "samples": QUALITY_SETS[n]} for n in QUALITY["sets"]}),
        test=TEST,
        examples=QUALITY["examples"],
        model=f"model_{config['decode']['strategy']}",
        pictured=quality_pictured(),
        predict_mode=config["predict"]["mode"],
        keep_threshold=config["decode"]["keep_threshold"],
        segment_us=config["windows"]["segment_us"],
        template=os.path.join(workflow.basedir, "report", "quality.md"),
    script:
        "../workflow_scripts/quality.py"
