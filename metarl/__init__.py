"""metarl: meta-reinforcement learning on task distributions."""

from metarl.env import BatchedEnv, TaskEnv, TorchTaskEnv
from metarl.registry import (
    check_task_env,
    list_task_envs,
    make_batched_env,
    make_distribution,
    make_env,
    register_task_env,
)
from metarl.tasks import TaskBatch, TaskDistribution

__version__ = "0.1.0"

__all__ = [
    "BatchedEnv",
    "TaskBatch",
    "TaskDistribution",
    "TaskEnv",
    "TorchTaskEnv",
    "check_task_env",
    "list_task_envs",
    "make_batched_env",
    "make_distribution",
    "make_env",
    "register_task_env",
]
