# Cut each file (and its clean partner, on the noisy file's boundaries) into fixed windows.


rule split:
    input:
        noisy=noisy_of,
        clean=clean_of,
    output:
        "results/segments/{sample}.h5",
    params:
        windows=as_json(config["windows"]),
        width=config["data"]["width"],
        height=config["data"]["height"],
    log:
        "results/logs/split/{sample}.log",
    benchmark:
        "results/benchmarks/split/{sample}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
        **CPU_JOB,
    conda:
        "../envs/evdenoise.yaml"
    script:
        "../workflow_scripts/split.py"
