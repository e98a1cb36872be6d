# The embedded synthetic paired flare data set (only when data.source is "synthetic").
SYN = config["data"]["synthetic"]

if config["data"]["source"] == "synthetic":

    rule synthesize:
        output:
            noisy=[str(SAMPLES[n].noisy) for n in TRAIN + VAL + TEST],
            clean=[str(SAMPLES[n].clean) for n in TRAIN + VAL + TEST],
            manifest=f"{SYN['root']}/manifest.csv",
        log:
            "results/logs/synthesize.log",
        benchmark:
            "results/benchmarks/synthesize.tsv"
        conda:
            "../envs/evdenoise.yaml"
        threads: 1
        resources:
            **CPU_JOB,
            mem_mb=4000,
            runtime=60,
        params:
            synth=as_json(SYN),
        script:
            "../workflow_scripts/synthesize.py"
