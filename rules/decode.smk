# Turn predicted voxels back into events, in the input file's format and attributes.


rule decode:
    input:
        predicted="results/predicted/{sample}.h5",
        segments="results/segments/{sample}.h5",
        noisy=noisy_of,
    output:
        "results/denoised/{sample}.h5",
    params:
        decode=as_json(config["decode"]),
    log:
        "results/logs/decode/{sample}.log",
    benchmark:
        "results/benchmarks/decode/{sample}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
        **CPU_JOB,
    conda:
        "../envs/evdenoise.yaml"
    script:
        "../workflow_scripts/decode.py"
