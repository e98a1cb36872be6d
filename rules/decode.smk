# Turn predicted voxels back into events, in the input file's format and attributes.


rule decode:
    input:
        predicted="results/predicted/{sample}.h5",
        segments="results/segments/{sample}.h5",
        noisy=noisy_of,
    output:
        "results/denoised/{sample}.h5",
    log:
        "results/logs/decode/{sample}.log",
    benchmark:
        "results/benchmarks/decode/{sample}.tsv"
    conda:
        "../envs/evdenoise.yaml"
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=2000,
        runtime=10,
    params:
        decode=as_json(config["decode"]),
    script:
        "../workflow_scripts/decode.py"
