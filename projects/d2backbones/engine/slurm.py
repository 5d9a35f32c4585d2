"""Running ``tools/train_net.py`` as a submitit job: one task per node, each node
launching one process per GPU with detectron2's ``launch``.

On preemption or time-out, submitit calls :meth:`TrainingJob.checkpoint`, which
requeues the same command with ``--resume``: the job continues from its last
complete checkpoint (see :mod:`d2backbones.engine.checkpoint`).
"""
import zlib

import submitit

from . import cli

__all__ = ["TrainingJob", "rendezvous_port"]

# Ports above the usual ephemeral range of Linux (32768-60999) are not handed out to clients.
_PORT_BASE, _PORT_RANGE = 20000, 12000


def rendezvous_port(job_id):
    """The TCP port of a job's rendezvous: the same on every node, different across jobs."""
    return _PORT_BASE + zlib.crc32(str(job_id).encode()) % _PORT_RANGE


class TrainingJob:
    """A picklable callable running ``tools/train_net.py TRAIN_ARGS`` on the node it lands on.

    Args:
        train_args (list[str]): train_net arguments (config, overrides, ...), without
            the ``--num-gpus / --num-machines / --machine-rank / --dist-url`` flags,
            which come from the job's environment.
        gpus_per_node (int): processes per node (0: one CPU process).
    """

    def __init__(self, train_args, gpus_per_node):
        self.train_args = list(train_args)
        self.gpus_per_node = gpus_per_node

    def distributed_args(self, environment):
        """The launch flags for this node of the job."""
        num_nodes = environment.num_nodes
        dist_url = "auto"
        if num_nodes > 1:
            dist_url = f"tcp://{environment.hostnames[0]}:{rendezvous_port(environment.job_id)}"
        return [
            "--num-gpus", str(max(self.gpus_per_node, 1)),
            "--num-machines", str(num_nodes),
            "--machine-rank", str(environment.node),
            "--dist-url", dist_url,
        ]

    def __call__(self):
        environment = submitit.JobEnvironment()
        # Flags first: train_net takes everything after the first override as overrides.
        cli.run([*self.distributed_args(environment), *self.train_args])
        return self.train_args

    def checkpoint(self, *args, **kwargs):
        """Requeue with ``--resume`` (submitit calls this on preemption or time-out)."""
        resumed = self.train_args if "--resume" in self.train_args else ["--resume", *self.train_args]
        return submitit.helpers.DelayedSubmission(TrainingJob(resumed, self.gpus_per_node))
