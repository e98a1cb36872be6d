"""Snakemake's Slurm executor (snakemake-executor-plugin-slurm) with a bound on lost jobs.

The plugin keeps a job it cannot find in Slurm's answer as active forever, and drops jobs from its list
without a verdict when every status query fails; Snakemake then waits forever. Here a job that no status
query has listed for ``lost_job_timeout`` seconds fails the run with an error naming it (e.g. squeue forgot
it after MinJobAge on a site without accounting, or slurmctld lost it). Everything else is the plugin's own:
``profiles/slurm`` selects this executor as ``executor: evdenoise-slurm``.
"""

import time
from dataclasses import dataclass, field
from collections.abc import AsyncGenerator

from snakemake_executor_plugin_slurm import Executor as SlurmExecutor
from snakemake_executor_plugin_slurm import ExecutorSettings as SlurmSettings
from snakemake_executor_plugin_slurm import common_settings
from snakemake_executor_plugin_slurm.job_status_query import query_job_status, query_job_status_squeue
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo

__all__ = ["Executor", "ExecutorSettings", "common_settings"]


@dataclass
class ExecutorSettings(SlurmSettings):
    lost_job_timeout: int = field(
        default=600,
        metadata={
            "help": "Seconds a submitted job may go unlisted by squeue (and by the status command) before the "
                    "run fails with an error naming it, instead of waiting for it forever.",
            "env_var": False,
            "required": False,
        },
    )


class Executor(SlurmExecutor):
    def __post_init__(self, test_mode: bool = False) -> None:
        super().__post_init__(test_mode)
        self._unlisted_since: dict[str, float] = {}  # job id -> when a status query first missed it
        self._decided: set[str] = set()

    def report_job_success(self, job_info: SubmittedJobInfo) -> None:
        self._decided.add(job_info.external_jobid)
        super().report_job_success(job_info)

    def report_job_error(self, job_info: SubmittedJobInfo, msg=None, **kwargs) -> None:
        self._decided.add(job_info.external_jobid)
        super().report_job_error(job_info, msg=msg, **kwargs)

    async def check_active_jobs(self, active_jobs: list[SubmittedJobInfo]) -> AsyncGenerator[SubmittedJobInfo, None]:
        pending = [j async for j in super().check_active_jobs(active_jobs)]
        # Jobs the plugin neither decided nor kept (every status query failed) stay active here, so that
        # they end either with a state or with the lost-job error below.
        kept = {j.external_jobid for j in pending}
        pending += [j for j in active_jobs if j.external_jobid not in kept | self._decided]
        if not pending:
            return
        listed = await self._listed_job_ids()
        timeout = self.workflow.executor_settings.lost_job_timeout
        now = time.monotonic()
        for j in pending:
            jobid = j.external_jobid
            if listed is not None and (jobid in listed or jobid.split("_")[0] in listed):
                self._unlisted_since.pop(jobid, None)
                yield j
                continue
            since = self._unlisted_since.setdefault(jobid, now)
            if now - since < timeout:
                yield j
                continue
            self.report_job_error(j, msg=(
                f"SLURM-job '{jobid}' is lost: no status query has listed it for {now - since:.0f} s "
                f"(lost-job-timeout {timeout} s). Slurm forgets finished jobs after MinJobAge; on a site "
                "without accounting raise MinJobAge, or raise --evdenoise-slurm-lost-job-timeout."))

    async def _listed_job_ids(self) -> set[str] | None:
        """Ids squeue lists for this run (the plugin's own query), or None when squeue fails."""
        async with self.status_rate_limiter:
            status, _ = await query_job_status(query_job_status_squeue(self.run_uuid), self.logger)
        return None if status is None else set(status)
