# The shipped pretrained model, rebuilt from nothing: `snakemake pretrained` runs each round of
# config/pretrained.yaml (base, then the optional finetune, which starts from base's model): synthesizes the
# round's data sets (one folder each), splits and voxelizes them per file, trains, and copies the last round's
# model and its card into src/evdenoise/pretrained/ (commit them). Independent of config/config.yaml's data
# and model.


rule pretrained_synthesize:
    input:
        backgrounds=lambda w: pre_backgrounds(w.dataset),
    output:
        noisy=[pre_pair("{dataset}", s, n, "noisy") for s in PRE_NAMES for n in PRE_NAMES[s]],
        clean=[pre_pair("{dataset}", s, n, "clean") for s in PRE_NAMES for n in PRE_NAMES[s]],
        manifest="results/pretrained/{dataset}/data/manifest.csv",
    log:
        "results/logs/pretrained/{dataset}/synthesize.log",
    conda:
        "../envs/evdenoise.yaml"
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=4000,
        runtime=120,
    params:
        synth=lambda w: as_json(
            {
                "root": f"{pre_dir(w.dataset)}/data",
                "counts": PRE_SETS[w.dataset]["counts"],
                "width": 640,
                "height": 480,
                "duration_us": PRE_SETS[w.dataset]["duration_us"],
                "seed": PRE_SETS[w.dataset]["seed"],
                "previews": False,
                "backgrounds": pre_backgrounds(w.dataset),
                "params": PRE_SETS[w.dataset]["params"],
            }
        ),
    script:
        "../workflow_scripts/synthesize.py"


rule pretrained_split:
    input:
        noisy=lambda w: pre_pair(w.dataset, w.split, w.name, "noisy"),
        clean=lambda w: [pre_pair(w.dataset, w.split, w.name, "clean")],
    output:
        "results/pretrained/{dataset}/segments/{split}/{name}.h5",
    log:
        "results/logs/pretrained/{dataset}/split/{split}/{name}.log",
    conda:
        "../envs/evdenoise.yaml"
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=2000,
        runtime=10,
    params:
        windows=as_json(PRE["windows"]),
        width=None,
        height=None,
    script:
        "../workflow_scripts/split.py"


rule pretrained_voxelize:
    input:
        "results/pretrained/{dataset}/segments/{split}/{name}.h5",
    output:
        "results/pretrained/{dataset}/voxels/{split}/{name}.h5",
    log:
        "results/logs/pretrained/{dataset}/voxelize/{split}/{name}.log",
    conda:
        "../envs/evdenoise.yaml"
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=2000,
        runtime=10,
    params:
        voxel=as_json(PRE["voxel"]),
    script:
        "../workflow_scripts/voxelize.py"


rule pretrained_train:
    input:
        train=lambda w: pre_voxels(w.round, "train"),
        val=lambda w: pre_voxels(w.round, "val"),
        init=lambda w: pre_init(w.round),
    output:
        model="results/pretrained/{round}/model/model.pt",
        history="results/pretrained/{round}/model/history.csv",
    log:
        "results/logs/pretrained/{round}/train.log",
    conda:
        "../envs/evdenoise.yaml"
    threads: PRE["threads"]
    resources:
        **GPU_JOB,
        mem_mb=8000,
        runtime=600,
    params:
        model=as_json(PRE["model"]),
        train=lambda w, input: as_json({**PRE_ROUNDS[w.round]["train"], "init": input.init[0] if input.init else None}),
        out_dir=lambda wildcards, output: os.path.dirname(output.model),
    script:
        "../workflow_scripts/train.py"


rule pretrained:
    input:
        models=[f"{pre_dir(rnd)}/model/model.pt" for rnd in PRE_ROUNDS],
        history=f"{pre_dir(PRE_LAST)}/model/history.csv",
    output:
        "results/pretrained/shipped.json",
    log:
        "results/logs/pretrained/ship.log",
    conda:
        "../envs/evdenoise.yaml"
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=1000,
        runtime=5,
    params:
        config=as_json(PRE),
        dest=str(PRETRAINED_DIR),
        repo=workflow.basedir,
    script:
        "../workflow_scripts/ship_pretrained.py"
