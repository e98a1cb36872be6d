"""Snakemake glue for rule report: render Snakemake's HTML report with the run's own config."""
import subprocess
import sys
from pathlib import Path

import yaml

from evdenoise.events import atomic_path
from evdenoise.runlog import logged

with logged(snakemake.log[0]):
    out = Path(snakemake.output[0])
    config_file = out.parent / "report_config.yaml"
    with atomic_path(config_file) as tmp:
        tmp.write_text(yaml.safe_dump(dict(snakemake.params.config)))
    # Snakemake renders a report only from its command line or API (--report: the DAG plus the metadata of
    # finished jobs), never from inside a running workflow, so this job starts a second Snakemake over the
    # same workflow, read-only; --nolock because this job's own Snakemake holds the directory lock.
    # (`snakemake --report results/report.html` by hand gives the same file.)
    with atomic_path(out) as tmp:
        tmp_html = tmp.with_suffix(".html")
        subprocess.run([sys.executable, "-m", "snakemake", "--nolock", "--snakefile", snakemake.params.snakefile,
                        "--configfile", str(config_file), "--report", str(tmp_html)],
                       check=True, stdout=sys.stdout, stderr=sys.stderr)
        tmp_html.replace(tmp)
