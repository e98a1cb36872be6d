"""Cluster requests against Slurm's nodes (evdenoise.cluster): parsing sinfo and naming what cannot be met."""
from __future__ import annotations

import math

from evdenoise.cluster import Request, parse_sinfo, request_problems

SINFO = """cpu*|16|64000|(null)|1-00:00:00
cpu*|32|128000|(null)|1-00:00:00
gpu|8|96000|gpu:a100:2(S:0-1)|2:00:00
gpu|8|32000|gpu:4|2:00:00
debug|2|4000|(null)|30:00
long|4|8000|(null)|infinite
"""
TRAIN_KEYS = {"threads": "resources.train_threads", "mem_mb": "resources.train_mem_mb",
              "runtime": "resources.train_runtime", "gpus": "resources.gpu", "partition": "resources.gpu_partition"}


def train(**changes) -> Request:
    fields = {"rule": "train", "partition": "gpu", "threads": 8, "mem_mb": 32000, "runtime": 120, "gpus": 2,
              "keys": TRAIN_KEYS} | changes
    return Request(**fields)


def test_parse_sinfo_reads_default_partition_gpus_and_time_limits() -> None:
    nodes = parse_sinfo(SINFO)
    assert [(n.partition, n.default, n.cpus, n.mem_mb, n.gpus) for n in nodes[:4]] == [
        ("cpu", True, 16, 64000, 0), ("cpu", True, 32, 128000, 0), ("gpu", False, 8, 96000, 2),
        ("gpu", False, 8, 32000, 4)]
    assert [n.time_limit_min for n in nodes] == [1440, 1440, 120, 120, 30, math.inf]


def test_a_request_some_node_meets_has_no_problem() -> None:
    nodes = parse_sinfo(SINFO)
    assert request_problems([train(), train(partition="", gpus=0, threads=32, mem_mb=100000)], nodes) == []


def test_each_unmet_amount_names_its_config_key_and_the_limit() -> None:
    problems = request_problems([train(threads=9, mem_mb=100000, gpus=5, runtime=121)], parse_sinfo(SINFO))
    assert problems == [
        "rule train: resources.train_threads=9 exceeds the largest node of Slurm partition 'gpu' (8 CPUs)",
        "rule train: resources.train_mem_mb=100000 exceeds the largest node of Slurm partition 'gpu' "
        "(96000 MB of memory)",
        "rule train: resources.gpu=5 exceeds the largest node of Slurm partition 'gpu' (4 GPUs)",
        "rule train: resources.train_runtime=121 exceeds the time limit of Slurm partition 'gpu' (120 minutes)",
    ]


def test_amounts_that_no_single_node_has_together_are_a_problem() -> None:
    # 96000 MB is on the 2-GPU node, 4 GPUs on the 32000 MB node.
    (problem,) = request_problems([train(mem_mb=96000, gpus=4)], parse_sinfo(SINFO))
    assert "no node of Slurm partition 'gpu'" in problem and "resources.gpu=4" in problem


def test_an_unknown_partition_names_the_key_and_the_partitions() -> None:
    (problem,) = request_problems([train(partition="a100")], parse_sinfo(SINFO))
    assert problem == ("rule train: resources.gpu_partition='a100': no such Slurm partition "
                       "(there are: cpu, debug, gpu, long)")
