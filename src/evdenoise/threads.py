"""How many CPU threads this process's own kernels (numba, GIL released) split their work into."""
from __future__ import annotations

import os


def cpu_threads() -> int:
    """Threads this process should use: its CPUs, capped by ``OMP_NUM_THREADS`` where set (the usual knob,
    which torch reads too and Snakemake sets to a job's ``threads``), so parallel jobs do not oversubscribe."""
    cpus, omp = len(os.sched_getaffinity(0)), os.environ.get("OMP_NUM_THREADS", "")
    return min(cpus, int(omp)) if omp.isdigit() and int(omp) > 0 else cpus
