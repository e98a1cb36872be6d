# The shipped pretrained model, rebuilt from nothing: `snakemake pretrained` synthesizes the broad training
# set of config/pretrained.yaml, splits and voxelizes it per file, trains, and copies the model and its card
# into src/evdenoise/pretrained/ (commit them). Independent of config/config.yaml's data and model.


rule pretrained_synthesize:
    output:
        noisy=[pre_pair(s, n, "noisy") for s in PRE_NAMES for n in PRE_NAMES[s]],
        clean=[pre_pair(s, n, "clean") for s in PRE_NAMES for n in PRE_NAMES[s]],
        manifest=f"{PRE_ROOT}/manifest.csv",
    params:
        synth=as_json(
            {
                "root": PRE_ROOT,
                "counts": PRE["data"]["counts"],
                "width": 640,
                "height": 480,
                "duration_us": PRE["data"]["duration_us"],
                "seed": PRE["data"]["seed"],
                "previews": False,
                "backgrounds": [],
                "params": PRE["data"]["params"],
            }
        ),
    log:
        "results/logs/pretrained/synthesize.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        **CPU_JOB,
    conda:
        "../envs/evdenoise.yaml"
    script:
        "../workflow_scripts/synthesize.py"


rule pretrained_split:
    input:
        noisy=lambda w: pre_pair(w.split, w.name, "noisy"),
        clean=lambda w: [pre_pair(w.split, w.name, "clean")],
    output:
        "results/pretrained/segments/{split}/{name}.h5",
    params:
        windows=as_json(PRE["windows"]),
        width=None,
        height=None,
    log:
        "results/logs/pretrained/split/{split}/{name}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
        **CPU_JOB,
    conda:
        "../envs/evdenoise.yaml"
    script:
        "../workflow_scripts/split.py"


rule pretrained_voxelize:
    input:
        "results/pretrained/segments/{split}/{name}.h5",
    output:
        "results/pretrained/voxels/{split}/{name}.h5",
    params:
        voxel=as_json(PRE["voxel"]),
    log:
        "results/logs/pretrained/voxelize/{split}/{name}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
        **CPU_JOB,
    conda:
        "../envs/evdenoise.yaml"
    script:
        "../workflow_scripts/voxelize.py"


rule pretrained_train:
    input:
        train=expand("results/pretrained/voxels/train/{name}.h5", name=PRE_NAMES["train"]),
        val=expand("results/pretrained/voxels/val/{name}.h5", name=PRE_NAMES["val"]),
    output:
        model="results/pretrained/model/model.pt",
        history="results/pretrained/model/history.csv",
    params:
        model=as_json(PRE["model"]),
        train=as_json(PRE["train"]),
        out_dir=lambda wildcards, output: os.path.dirname(output.model),
    log:
        "results/logs/pretrained/train.log",
    threads: PRE["threads"]
    resources:
        mem_mb=8000,
        runtime=600,
        **GPU_JOB,
    conda:
        "../envs/evdenoise.yaml"
    script:
        "../workflow_scripts/train.py"


rule pretrained:
    input:
        model="results/pretrained/model/model.pt",
        history="results/pretrained/model/history.csv",
    output:
        "results/pretrained/shipped.json",
    params:
        config=as_json(PRE),
        dest=str(PRETRAINED_DIR),
        repo=workflow.basedir,
    log:
        "results/logs/pretrained/ship.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
        **CPU_JOB,
    conda:
        "../envs/evdenoise.yaml"
    script:
        "../workflow_scripts/ship_pretrained.py"
