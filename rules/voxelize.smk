# Encode each window as a (C, B, H, W) voxel grid: "raw" from the noisy events, "label" from the clean.


rule voxelize:
    input:
        "results/segments/{sample}.h5",
    output:
        "results/voxels/{sample}.h5",
    params:
        voxel=as_json(config["voxel"]),
    log:
        "results/logs/voxelize/{sample}.log",
    benchmark:
        "results/benchmarks/voxelize/{sample}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
        **CPU_JOB,
    conda:
        "../envs/evdenoise.yaml"
    script:
        "../workflow_scripts/voxelize.py"
