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
    conda:
        "../envs/evdenoise.yaml"
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=1000,
        runtime=5,
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
    conda:
        "../envs/evdenoise.yaml"
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=1000,
        runtime=5,
    script:
        "../workflow_scripts/resources_table.py"


rule report:
    input:
        rules.all.input,
    output:
        "results/report.html",
    log:
        "results/logs/report.log",
    conda:
        "../envs/evdenoise.yaml"
    threads: 1
    resources:
        **CPU_JOB,
        mem_mb=2000,
        runtime=10,
    params:
        config=config,
        snakefile=workflow.main_snakefile,
    script:
        "../workflow_scripts/report.py"
