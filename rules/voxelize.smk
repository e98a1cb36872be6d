# Encode each window as a (C, B, H, W) voxel grid: "raw" from the noisy events, "label" from the clean.


rule voxelize:
    input:
        "results/segments/{sample}.h5",
    output:
        "results/voxels/{sample}.h5",
    log:
        "results/logs/voxelize/{sample}.log",
    benchmark:
        "results/benchmarks/voxelize/{sample}.tsv"
    conda:
        "../envs/evdenoise.yaml"
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=2000,
        runtime=10,
    params:
        voxel=as_json(config["voxel"]),
    script:
        "../workflow_scripts/voxelize.py"
