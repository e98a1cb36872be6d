#!/usr/bin/env bash
# A throwaway one-node Slurm (no accounting, one fake GPU) for tests/test_slurm.py and for trying
# profiles/slurm by hand:
#   tests/slurm/cluster.sh start DIR   # installs slurm-wlm + munge when missing (root), starts munged,
#                                      # slurmctld and slurmd with all state under DIR, waits for an idle node
#   export PATH=DIR/bin:$PATH          # sbatch, srun, squeue, ... talk to this cluster
#   tests/slurm/cluster.sh stop DIR    # ends exactly the daemons started above (their PID files)
# Own ports and its own munge socket/key: it does not touch a Slurm or munge already on the machine.
set -euo pipefail

cmd="${1:?usage: cluster.sh start|stop DIR}"
dir="$(realpath -m "${2:?usage: cluster.sh start|stop DIR}")"

stop() {
    local pidfile pid
    for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munged.pid"; do
        [[ -s "$pidfile" ]] || continue
        pid="$(cat "$pidfile")"
        kill "$pid" 2>/dev/null || continue
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
}

install_packages() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        && command -v munged >/dev/null && return
    if [[ "$(id -u)" != 0 ]]; then
        echo "slurm-wlm/munge are not installed and installing them needs root" >&2
        exit 3
    fi
    # Debian's postinst scripts would start system daemons; this cluster runs its own.
    export DEBIAN_FRONTEND=noninteractive RUNLEVEL=1
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    install_packages
    trap 'stop' ERR
    mkdir -p "$dir"/{state,spool,munge}
    chmod 700 "$dir/munge"
    # munged refuses keys readable by others.
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge/munge.key"
    munged --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/seed" --force

    local cpus mem_mb
    cpus="$(nproc)"
    # Memory slurmd can always find: MemTotal minus a 1 GiB margin (else the node is drained).
    mem_mb="$(awk '/^MemTotal/ {print int($2 / 1024) - 1024}' /proc/meminfo)"
    cat > "$dir/slurm.conf" <<EOF
ClusterName=evdenoise-test
SlurmctldHost=localhost
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
GresTypes=gpu
MpiDefault=none
ReturnToService=2
# A busy test machine can starve the daemons for more than the default 10 s.
MessageTimeout=60
# squeue keeps finished jobs this long: the status command of profiles/slurm needs them
MinJobAge=300
SchedulerParameters=sched_interval=2
NodeName=localhost CPUs=$cpus RealMemory=$mem_mb Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
EOF
    # A device file makes the GPU real to slurmd; a count-only line leaves the node INVAL.
    echo "Name=gpu File=/dev/null" > "$dir/gres.conf"
    export SLURM_CONF="$dir/slurm.conf"
    # Client commands that find this cluster: SLURM_CONF alone is lost inside jobs, whose srun the
    # executor plugin's job step starts without any SLURM_* variable.
    mkdir -p "$dir/bin"
    local tool
    for tool in sbatch srun squeue sinfo scontrol scancel sacct; do
        printf '#!/bin/sh\nSLURM_CONF=%q exec %q "$@"\n' "$SLURM_CONF" "$(command -v "$tool")" > "$dir/bin/$tool"
        chmod +x "$dir/bin/$tool"
    done
    slurmctld -f "$SLURM_CONF"
    slurmd -f "$SLURM_CONF" -N localhost

    for _ in $(seq 60); do
        if [[ "$(sinfo --noheader --node=localhost --format=%t 2>/dev/null | head -1)" == idle ]]; then
            return
        fi
        sleep 1
    done
    echo "the Slurm node did not become idle within 60 s:" >&2
    sinfo --long --Node >&2 || true
    tail -n 20 "$dir"/slurmctld.log "$dir"/slurmd.log >&2 || true
    exit 1
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: cluster.sh start|stop DIR" >&2; exit 2 ;;
esac
