# Turn predicted voxels back into events, in the input file's format and attributes: once per decoder that
# evaluate compares (results/denoised/<decoder>/<sample>.h5), and the configured decoder's file at the
# documented path results/denoised/<sample>.h5 (a hard link: the same file, no second decode).


rule decode:
    input:
        predicted="results/predicted/{sample}.h5",
        segments="results/segments/{sample}.h5",
        noisy=noisy_of,
    output:
        "results/denoised/{decoder}/{sample}.h5",
    log:
        "results/logs/decode/{decoder}/{sample}.log",
    benchmark:
        "results/benchmarks/decode/{decoder}/{sample}.tsv"
    conda:
        "../envs/evdenoise.yaml"
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=2000,
        runtime=10,
    params:
        decode=lambda w: as_json({**config["decode"], "strategy": w.decoder}),
    script:
        "../workflow_scripts/decode.py"


use rule decode as decode_pretrained with:
    input:
        predicted="results/predicted_pretrained/{sample}.h5",
        segments="results/segments/{sample}.h5",
        noisy=noisy_of,
    output:
        "results/denoised_pretrained/{decoder}/{sample}.h5",
    log:
        "results/logs/decode_pretrained/{decoder}/{sample}.log",
    benchmark:
        "results/benchmarks/decode_pretrained/{decoder}/{sample}.tsv"


rule denoised:
    input:
        f"results/denoised/{config['decode']['strategy']}/{{sample}}.h5",
    output:
        "results/denoised/{sample}.h5",
    log:
        "results/logs/denoised/{sample}.log",
    localrule: True
    conda:
        "../envs/evdenoise.yaml"
    resources:
        **CPU_JOB,
        mem_mb=100,
        runtime=1,
    shell:
        "(ln -f {input} {output} || cp {input} {output}) > {log} 2>&1"
