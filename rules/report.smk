# Figures for the report and the report itself (Snakemake's self-contained HTML report).


rule training_curve:
    input:
        "results/model/history.csv",
    output:
        report(
            "results/figures/training.png",
            caption="../report/training.rst",
            category="Training",
        ),
    log:
        "results/logs/training_curve.log",
    benchmark:
        "results/benchmarks/training_curve.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
        **CPU_JOB,
    conda:
        "../envs/evdenoise.yaml"
    script:
        "../workflow_scripts/training_curve.py"


rule resources_table:
    input:
        benchmark_files,
    output:
        table=report(
            "results/figures/resources.csv",
            caption="../report/resources.rst",
            category="Resources",
        ),
        figure=report(
            "results/figures/resources.png",
            caption="../report/resources.rst",
            category="Resources",
        ),
    log:
        "results/logs/resources_table.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
        **CPU_JOB,
    conda:
        "../envs/evdenoise.yaml"
    script:
        "../workflow_scripts/resources_table.py"


rule report:
    input:
        rules.all.input,
    output:
        "results/report.html",
    params:
        config=config,
        snakefile=workflow.main_snakefile,
    log:
        "results/logs/report.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
        **CPU_JOB,
    conda:
        "../envs/evdenoise.yaml"
    script:
        "../workflow_scripts/report.py"
