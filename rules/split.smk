# Cut each file (and its clean partner, on the noisy file's boundaries) into fixed windows.


rule split:
    input:
        noisy=noisy_of,
        clean=clean_of,
    output:
        "results/segments/{sample}.h5",
    log:
        "results/logs/split/{sample}.log",
    benchmark:
        "results/benchmarks/split/{sample}.tsv"
    conda:
        "../envs/evdenoise.yaml"
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=2000,
        runtime=10,
    params:
        windows=as_json(config["windows"]),
        width=config["data"]["width"],
        height=config["data"]["height"],
    script:
        "../workflow_scripts/split.py"
