"""Cluster job requests from the config's ``resources`` section, checked against Slurm's nodes.

A request no node of its partition can meet would otherwise fail at ``sbatch`` time, after the
jobs before it ran, or pend forever. :func:`request_problems` finds such requests before the
workflow submits anything; the caller reads the nodes with :data:`SINFO_ARGS`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from collections.abc import Mapping

# One line per node and partition: partition (default marked "*"), CPUs, memory (MB), GRES, time limit.
SINFO_ARGS = ("sinfo", "--noheader", "--Node", "--format=%P|%c|%m|%G|%l")
_GPU_RE = re.compile(r"gpu(?::[^:,(]+)?:(\d+)")


@dataclass(frozen=True)
class Node:
    partition: str
    default: bool
    cpus: int
    mem_mb: int
    gpus: int
    time_limit_min: float  # inf when the partition has none


@dataclass(frozen=True)
class Request:
    """What one rule asks for; ``keys`` names the config key behind each amount."""
    rule: str
    partition: str  # "" = the cluster's default partition
    threads: int
    mem_mb: int
    runtime: int  # minutes
    gpus: int
    keys: Mapping[str, str]


def _minutes(limit: str) -> float:
    """Slurm time limits: infinite/UNLIMITED, MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS."""
    if limit.lower() in ("infinite", "unlimited"):
        return float("inf")
    days, _, clock = limit.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    if days:
        h, m, s = parts + [0] * (3 - len(parts))
    elif len(parts) == 3:
        h, m, s = parts
    else:
        h, m, s = 0, parts[0], (parts[1:] or [0])[0]
    return (int(days or 0) * 24 + h) * 60 + m + s / 60


def parse_sinfo(text: str) -> list[Node]:
    """Nodes from the output of :data:`SINFO_ARGS`."""
    nodes = []
    for line in text.splitlines():
        if not line.strip():
            continue
        partition, cpus, mem, gres, limit = (f.strip() for f in line.split("|"))
        gpus = sum(int(n) for n in _GPU_RE.findall(gres))
        nodes.append(Node(partition.rstrip("*"), partition.endswith("*"), int(cpus), int(mem.rstrip("+")), gpus,
                          _minutes(limit)))
    return nodes


def request_problems(requests: list[Request], nodes: list[Node]) -> list[str]:
    """One message per request no node can meet, naming the config key to change."""
    default = next((n.partition for n in nodes if n.default), "")
    problems = []
    for req in requests:
        partition = req.partition or default
        members = [n for n in nodes if n.partition == partition]
        if not members:
            known = ", ".join(sorted({n.partition for n in nodes}))
            problems.append(f"rule {req.rule}: {req.keys['partition']}={req.partition!r}: "
                            f"no such Slurm partition (there are: {known})")
            continue
        own = []
        for attr, node_attr, what in (("threads", "cpus", "CPUs"), ("mem_mb", "mem_mb", "MB of memory"),
                                      ("gpus", "gpus", "GPUs"), ("runtime", "time_limit_min", "minutes")):
            wanted, most = getattr(req, attr), max(getattr(n, node_attr) for n in members)
            if wanted > most:
                limit = "time limit" if attr == "runtime" else "largest node"
                own.append(f"rule {req.rule}: {req.keys[attr]}={wanted} exceeds the {limit} of Slurm "
                           f"partition '{partition}' ({most:g} {what})")
        if not own and not any(n.cpus >= req.threads and n.mem_mb >= req.mem_mb and n.gpus >= req.gpus
                               for n in members):
            own.append(f"rule {req.rule}: no node of Slurm partition '{partition}' has {req.keys['threads']}="
                       f"{req.threads} CPUs, {req.keys['mem_mb']}={req.mem_mb} MB and {req.keys['gpus']}="
                       f"{req.gpus} GPUs at once")
        problems += own
    return problems
