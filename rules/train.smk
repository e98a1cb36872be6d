# Train the configured model on the train split's voxels, validating on the val split.
# Checkpoints under results/model/checkpoints/ let a killed run resume.


rule train:
    input:
        train=expand("results/voxels/{sample}.h5", sample=TRAIN),
        val=expand("results/voxels/{sample}.h5", sample=VAL),
        # train.init: a change of the weights fine-tuning starts from reruns training
        init=init_weights_file(),
    output:
        model="results/model/model.pt",
        history=report(
            "results/model/history.csv",
            caption="../report/history.rst",
            category="Training",
        ),
    log:
        "results/logs/train.log",
    benchmark:
        "results/benchmarks/train.tsv"
    conda:
        "../envs/evdenoise.yaml"
    threads: RES["train_threads"]
    resources:
        **GPU_JOB,
        mem_mb=RES["train_mem_mb"],
        runtime=RES["train_runtime"],
    params:
        model=as_json({k: v for k, v in config["model"].items() if k != "pretrained"}),
        train=as_json(config["train"]),
        out_dir=lambda wildcards, output: os.path.dirname(output.model),
    script:
        "../workflow_scripts/train.py"
