#!/usr/bin/env python
"""Submit ``tools/train_net.py`` to Slurm with submitit; requeued with --resume on preemption.

    tools/submit.py --nodes 8 --gpus-per-node 8 --partition learnfair --timeout 4320 \\
        --job-dir /checkpoint/$USER/vitdet_b -- \\
        --config-file configs/ViTDet/COCO/mask_rcnn_vitdet_b_100ep.py \\
        train.output_dir=/checkpoint/$USER/vitdet_b/output

Everything after ``--`` goes to train_net (config file, overrides, --dataset ...);
``--num-gpus``, ``--num-machines``, ``--machine-rank`` and ``--dist-url`` are set per
node from the job. ``train.output_dir`` must be on storage every node sees.
``--cluster local`` runs the job on this machine (submitit's local executor).
"""
import argparse
import sys

import submitit

from d2backbones.engine.slurm import TrainingJob

DISTRIBUTED_FLAGS = ("--num-gpus", "--num-machines", "--machine-rank", "--dist-url")


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1, help="number of nodes")
    parser.add_argument("--gpus-per-node", type=int, default=8, help="GPUs (= training processes) per node")
    parser.add_argument("--partition", default=None, help="Slurm partition")
    parser.add_argument("--timeout", type=int, default=4320, help="time limit per allocation, minutes")
    parser.add_argument("--job-dir", required=True, help="where submitit writes the job's logs and pickles")
    parser.add_argument("--name", default="d2backbones", help="job name")
    parser.add_argument("--cpus-per-node", type=int, default=None, help="CPUs per node (default: 10 per GPU)")
    parser.add_argument("--mem-gb", type=int, default=None, help="memory per node, GB")
    parser.add_argument("--account", default=None, help="Slurm account")
    parser.add_argument("--qos", default=None, help="Slurm QOS")
    parser.add_argument("--constraint", default=None, help="Slurm constraint, e.g. volta32gb")
    parser.add_argument("--max-requeues", type=int, default=10, help="requeues after preemption / time-out")
    parser.add_argument("--cluster", default=None, choices=("slurm", "local"), help="default: slurm if available")
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then tools/train_net.py arguments")
    return parser


def build_executor(options):
    # Each preemption or time-out uses up one requeue.
    requeues = {f"{cluster}_max_num_timeout": options.max_requeues for cluster in ("slurm", "local")}
    executor = submitit.AutoExecutor(folder=options.job_dir, cluster=options.cluster, **requeues)
    slurm = {
        key: value
        for key, value in dict(
            slurm_partition=options.partition, slurm_account=options.account,
            slurm_qos=options.qos, slurm_constraint=options.constraint,
        ).items()
        if value is not None
    }
    executor.update_parameters(
        name=options.name,
        nodes=options.nodes,
        tasks_per_node=1,  # one task per node; it launches one process per GPU
        gpus_per_node=options.gpus_per_node,
        cpus_per_task=options.cpus_per_node or 10 * max(options.gpus_per_node, 1),
        timeout_min=options.timeout,
        **({"mem_gb": options.mem_gb} if options.mem_gb else {}),
        slurm_signal_delay_s=120,  # time between the preemption signal and the kill
        **slurm,
    )
    return executor


def submit(argv=None):
    """Submit the job; returns the submitit job."""
    options = build_parser().parse_args(argv)
    train_args = options.train_args[1:] if options.train_args[:1] == ["--"] else options.train_args
    clashes = [flag for flag in DISTRIBUTED_FLAGS if flag in train_args]
    if clashes:
        sys.exit(f"error: {', '.join(clashes)} are set per node by submit.py; use --nodes / --gpus-per-node")
    if "--config-file" not in train_args:
        sys.exit("error: no train_net arguments: add -- --config-file CONFIG [key=value ...]")
    job = build_executor(options).submit(TrainingJob(train_args, options.gpus_per_node))
    print(f"submitted job {job.job_id}: logs in {options.job_dir}")
    return job


if __name__ == "__main__":
    submit()
