"""The rollout engine: run an actor for a number of episodes in every environment of a batch.

A rollout of ``num_episodes`` episodes lasts exactly ``num_episodes * max_episode_steps`` steps,
which bounds any such trial. Steps of an environment that has already finished its episodes
(early termination) are kept but masked out (``Trajectory.mask``), so the loop never asks the
host whether everyone is done: on a GPU backend it runs without a single host sync per step.

A rollout of ``min_steps`` instead runs whole episodes back to back in every environment until it
has taken at least that many steps (rllab's parallel batch sampler, which counts a batch in
environment steps and finishes the episodes it has begun), masking the steps after that episode.
:func:`keep_completed` turns such a rollout into the batch of a lockstep sampler with a step
budget per task, which drops the episodes still running when the budget is met.

The actor is a plain function, so the same engine serves every learner:

    act(obs, prev_action, prev_reward, prev_done, state) -> (action, log_prob, value, state)

Feed-forward actors ignore the ``prev_*`` arguments and the state; the RL² actor builds its GRU
input from them and carries its hidden state in ``state``. A trial starts with the rollout, so
the recurrent state is fresh at the first step and is never reset inside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import torch

from metarl.env import BatchedEnv

__all__ = ["Trajectory", "Actor", "rollout", "keep_completed", "to_task_major"]

Actor = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, Any],
    tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, Any],
]


def to_task_major(x: torch.Tensor, num_tasks: int) -> torch.Tensor:
    """``[time, num_envs, ...]`` -> ``[task, env, time, ...]`` (row i = task * envs_per_task + j)."""
    t, n = x.shape[:2]
    return x.reshape(t, num_tasks, n // num_tasks, *x.shape[2:]).movedim(0, 2)


@dataclass
class Trajectory:
    """A batch of trials (or single episodes), laid out ``[task, env, time, ...]``.

    ``episode[..., t]`` is the index of the episode step ``t`` belongs to within the trial and
    ``step[..., t]`` the step's index within that episode. ``mask`` is false on the steps run after
    an environment completed its ``num_episodes`` episodes.
    """

    obs: torch.Tensor  # [task, env, time, *obs_shape]
    actions: torch.Tensor  # [task, env, time] (discrete) or [task, env, time, act_dim]
    rewards: torch.Tensor  # [task, env, time]
    terminated: torch.Tensor  # [task, env, time] bool
    truncated: torch.Tensor  # [task, env, time] bool
    log_probs: torch.Tensor  # [task, env, time] under the behaviour policy
    values: torch.Tensor | None  # [task, env, time] if the actor has a critic
    mask: torch.Tensor  # [task, env, time] bool
    episode: torch.Tensor  # [task, env, time] long
    step: torch.Tensor  # [task, env, time] long
    num_episodes: int

    @property
    def dones(self) -> torch.Tensor:
        return self.terminated | self.truncated

    @property
    def num_tasks(self) -> int:
        return self.rewards.shape[0]

    @property
    def num_steps(self) -> int:
        """Environment steps that count (masked steps excluded): a host sync, use off the hot path."""
        return int(self.mask.sum())

    def episode_returns(self) -> torch.Tensor:
        """``[task, env, episode]`` undiscounted return of each episode of the trial (zero for
        an episode index an environment did not reach, see :meth:`episode_mask`)."""
        out = self.rewards.new_zeros(*self.rewards.shape[:2], self.num_episodes)
        idx = self.episode.clamp(max=self.num_episodes - 1)
        return out.scatter_add_(2, idx, self.rewards * self.mask.to(self.rewards.dtype))

    def episode_mask(self) -> torch.Tensor:
        """``[task, env, episode]``: whether the environment ran that episode. Always true for a
        rollout of ``num_episodes``; a rollout of ``min_steps`` fits more short episodes than
        long ones into an environment's budget."""
        last = torch.where(self.mask, self.episode, -1).amax(-1, keepdim=True)  # [task, env, 1]
        return torch.arange(self.num_episodes, device=self.episode.device) <= last

    def mean_episode_return(self) -> torch.Tensor:
        """``[task]`` mean undiscounted return over the episodes each task ran."""
        m = self.episode_mask().to(self.rewards.dtype)
        return (self.episode_returns() * m).sum((1, 2)) / m.sum((1, 2))

    def shifted(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` delayed by one step along time, zero at the first step (the ``prev_*`` inputs)."""
        out = torch.zeros_like(x)
        out[:, :, 1:] = x[:, :, :-1]
        return out

    def apply(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Trajectory:
        """A trajectory with ``fn`` applied to every tensor (e.g. ``.to(device)`` or a slice)."""
        tensors = {f.name: getattr(self, f.name) for f in fields(self)}
        changed = {k: fn(v) for k, v in tensors.items() if isinstance(v, torch.Tensor)}
        return replace(self, **changed)  # type: ignore[arg-type]


@torch.no_grad()
def rollout(
    env: BatchedEnv,
    act: Actor,
    num_episodes: int = 1,
    state: Any = None,
    seed: int | None = None,
    min_steps: int | None = None,
) -> Trajectory:
    """Reset ``env`` and run ``act`` until every environment has finished ``num_episodes``, or,
    with ``min_steps``, until each has run whole episodes back to back for at least that many
    steps (an episode begun before ``min_steps`` runs to its end; none begins after).

    The env's tasks must be set. Returns the trajectory in ``[task, env, time]`` layout with
    ``time = num_episodes * env.max_episode_steps`` (or ``min_steps + max_episode_steps - 1``).
    In a ``min_steps`` rollout, ``num_episodes`` of the result is the most episodes any
    environment ran; see :meth:`Trajectory.episode_mask` for which each ran.
    """
    if num_episodes < 1:
        raise ValueError(f"num_episodes={num_episodes} must be >= 1")
    if min_steps is not None and (not isinstance(min_steps, int) or min_steps < 1):
        raise ValueError(f"min_steps={min_steps!r} must be a positive int (steps per environment)")
    if min_steps is None:
        horizon = num_episodes * env.max_episode_steps
    else:  # the last episode may begin at min_steps - 1 and run the full time limit
        horizon = min_steps + env.max_episode_steps - 1
    n, dev = env.num_envs, env.device
    obs = env.reset(seed=seed)
    episode = torch.zeros(n, dtype=torch.long, device=dev)
    step = torch.zeros(n, dtype=torch.long, device=dev)
    prev_reward = torch.zeros(n, dtype=obs.dtype, device=dev)
    prev_done = torch.zeros(n, dtype=torch.bool, device=dev)
    act_shape = env.single_action_space.shape or ()
    prev_action = (
        torch.zeros(n, dtype=torch.long, device=dev)
        if env.is_discrete_action
        else torch.zeros(n, *act_shape, dtype=obs.dtype, device=dev)
    )

    buf: dict[str, torch.Tensor] = {}

    def record(name: str, t: int, x: torch.Tensor) -> None:
        if name not in buf:
            buf[name] = torch.empty(horizon, *x.shape, dtype=x.dtype, device=dev)
        buf[name][t] = x

    for t in range(horizon):
        action, log_prob, value, state = act(obs, prev_action, prev_reward, prev_done, state)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        done = terminated | truncated
        record("obs", t, obs)
        record("actions", t, action)
        record("rewards", t, reward)
        record("terminated", t, terminated)
        record("truncated", t, truncated)
        record("log_probs", t, log_prob)
        if value is not None:
            record("values", t, value)
        record("mask", t, episode < num_episodes if min_steps is None else t - step < min_steps)
        record("episode", t, episode.clone())
        record("step", t, step.clone())
        episode += done
        step = torch.where(done, 0, step + 1)
        prev_action, prev_reward, prev_done, obs = action, reward, done, next_obs

    if min_steps is not None:
        num_episodes = int(torch.where(buf["mask"], buf["episode"], 0).max()) + 1
    k = env.num_tasks
    data = {name: to_task_major(x, k) for name, x in buf.items()}
    values = data.pop("values", None)  # popped first: `**data` is unpacked before keywords
    return Trajectory(**data, values=values, num_episodes=num_episodes)  # type: ignore[arg-type]


def keep_completed(traj: Trajectory, task_steps: int) -> Trajectory:
    """The batch a lockstep sampler with a budget of ``task_steps`` per task draws from ``traj``.

    rllab's ``VectorizedSampler`` (the sampler of the MAML paper's test script, whose 4000-step
    batches come from 40 environments) steps all environments of a task together, each running
    episodes back to back, and stops after the first step at which the episodes they have
    completed hold at least ``task_steps`` steps. Episodes still running then are dropped, so a
    batch over-represents the episodes that end early (a goal reached): their environments
    complete several while a slow one runs.

    ``traj`` comes from ``rollout(env, act, min_steps=m)`` with ``m * envs_per_task >=
    task_steps``: by its last step every environment has completed at least ``m`` steps, so the
    budget is met inside it. Returns ``traj`` with the mask (and ``num_episodes``) of the kept
    episodes.
    """
    if not isinstance(task_steps, int) or task_steps < 1:
        raise ValueError(f"task_steps={task_steps!r} must be a positive int")
    done = traj.dones  # [task, env, time]
    horizon = done.shape[-1]
    time = torch.arange(horizon, device=done.device)
    completed = torch.where(done, traj.step + 1, 0).sum(1).cumsum(-1)  # [task, time]
    reached = completed >= task_steps
    if not bool(reached[:, -1].all()):
        raise ValueError(
            f"the rollout completed {int(completed[:, -1].min())} steps in its shortest task, "
            f"short of task_steps={task_steps}: roll out with min_steps >= task_steps / "
            f"envs_per_task ({traj.rewards.shape[1]} environments)"
        )
    stop = reached.to(torch.int8).argmax(-1)  # [task]: first step meeting the budget
    # the step at which each step's episode ends (past the horizon if it never does)
    ends = torch.where(done, time, horizon).flip(-1).cummin(-1).values.flip(-1)
    mask = ends <= stop[:, None, None]
    kept = int(torch.where(mask, traj.episode, -1).max()) + 1
    return replace(traj, mask=mask, num_episodes=max(kept, 1))
