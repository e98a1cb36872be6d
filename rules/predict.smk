# Run the trained model over every window of a file: predicted voxels, same shape as the input's.


rule predict:
    input:
        model=MODEL,
        voxels="results/voxels/{sample}.h5",
    output:
        "results/predicted/{sample}.h5",
    log:
        "results/logs/predict/{sample}.log",
    benchmark:
        "results/benchmarks/predict/{sample}.tsv"
    conda:
        "../envs/evdenoise.yaml"
    threads: RES["predict_threads"]
    resources:
        **GPU_JOB,
        mem_mb=RES["predict_mem_mb"],
        runtime=RES["predict_runtime"],
    params:
        predict=as_json(config["predict"]),
    script:
        "../workflow_scripts/predict.py"


use rule predict as predict_pretrained with:
    input:
        model=str(PRETRAINED_MODEL),
        voxels="results/voxels/{sample}.h5",
    output:
        "results/predicted_pretrained/{sample}.h5",
    log:
        "results/logs/predict_pretrained/{sample}.log",
    benchmark:
        "results/benchmarks/predict_pretrained/{sample}.tsv"
