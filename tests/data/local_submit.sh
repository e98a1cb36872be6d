#!/usr/bin/env bash
# A stand-in cluster scheduler for snakemake-executor-plugin-cluster-generic: each job script is
# "submitted" by running it in the background as its own process; the submission is logged.
set -euo pipefail
jobscript="${!#}"
id="local-$$-$RANDOM"
echo "$id $jobscript" >> "${SUBMIT_LOG:?SUBMIT_LOG must be set}"
nohup bash "$jobscript" > "${SUBMIT_LOG}.$id.out" 2>&1 &
echo "$id"
