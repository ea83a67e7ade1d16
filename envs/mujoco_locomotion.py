"""MuJoCo locomotion task families: HalfCheetah, Ant, Hopper and Walker2d.

Robots, observations, costs, reset noise and frame skips are those of Gymnasium's v5 envs of the
same robot (their XML files, loaded from the installed ``gymnasium`` package); the task changes
one term of the reward or the robot's dynamics:

=========================  ================================================  ==================
family                     task (train/test)                                 ood
=========================  ================================================  ==================
HalfCheetahVel             target velocity v ~ U[0, 2]: -|v_x - v|           v ~ U(2, 3]
HalfCheetahDir             direction d in {+1, -1}: d * v_x, default robot   unseen dynamics (*)
HalfCheetahRandParams      dynamics (below), reward as v5                    dynamics
AntDir                     unit direction d, angle ~ U[0, 2pi): d . v_xy     unseen dynamics (*)
AntGoal                    goal g uniform in the disc r <= 3: -|xy - g|_1    3 < r <= 4
AntRandParams              dynamics, reward as v5                            dynamics
HopperRandParams           dynamics, reward as v5                            dynamics
Walker2dRandParams         dynamics, reward as v5                            dynamics
=========================  ================================================  ==================

(*) A direction has no out-of-range value, so these two train on the default robot (every
dynamics multiplier exactly 1) and their ``ood`` tasks pair in-range directions with the robot's
mass, inertia, damping and friction randomized over the RandParams ranges below
(``metarl.dynamics.UNSEEN_DYNAMICS``): dynamics never seen in training.

Dynamics (ProMP's RandParams, ANCHORS.md section 5; :mod:`metarl.dynamics`): body mass and
inertia 1.5^U(-3, 3), dof damping 1.3^U(-3, 3), geom friction 1.5^U(-3, 3), each array element
independently; ood draws exponents with 3 < |u| <= 4.

Where rewards and observations differ from Gymnasium v5, and why:

* Velocity/direction/goal terms replace v5's forward reward (the task). The control cost keeps v5's
  weights (HalfCheetah 0.1, Ant 0.5, Hopper/Walker 1e-3); the MAML paper's HalfCheetah used 0.05,
  pass ``ctrl_cost_weight=0.05`` to match it.
* AntGoal's goal term is the L1 distance of the torso to the goal, as in ProMP and PEARL, and its
  observation keeps the torso's x, y (v5 drops them): the reward depends on where the ant is.
* Ant's contact forces (``cfrc_ext``, observation and contact cost) are those MuJoCo computes in
  the forward pass at the start of the last physics substep. Gymnasium v5 calls
  ``mj_rnePostConstraint`` after ``mj_step``, which with the Ant's RK4 integrator reads the
  contacts of the last intermediate RK4 stage; a batch of simulations cannot make that call, so
  the forces differ where contacts change within a step. Positions, velocities and the other
  reward terms are v5's exactly.
* The horizon is 200 steps (MAML, ProMP) rather than v5's 1000; pass ``max_episode_steps``.

Every family takes ``dynamics={group: (base, limit, ood_limit)}`` to randomize its robot as well
(for instance a target velocity on a robot of random masses); RandParams families default to the
table above.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import gymnasium
import torch

from metarl.backends.mujoco_batch import Array, MujocoBatchedEnv, MujocoFamily, MujocoTaskEnv, State
from metarl.dynamics import (
    RAND_PARAMS,
    UNSEEN_DYNAMICS,
    LogUniform,
    RandomDynamics,
    WithDynamics,
    parse_groups,
)
from metarl.registry import register_task_env
from metarl.tasks import TaskDistribution

ASSETS = Path(gymnasium.__file__).parent / "envs" / "mujoco" / "assets"
HORIZON = 200


# --- task distributions ---------------------------------------------------------------------
class TargetVelocity(TaskDistribution):
    """Target forward velocities ``velocity [n]``: U[low, high] to train, U(high, ood_high] ood."""

    splits = ("train", "test", "ood")

    def __init__(self, family: str, low: float = 0.0, high: float = 2.0, ood_high: float = 3.0):
        if not low < high < ood_high:
            raise ValueError(f"need low < high < ood_high, got {low}, {high}, {ood_high}")
        self.family, self.low, self.high, self.ood_high = family, low, high, ood_high

    def _sample(self, n: int, split: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        if split == "ood":  # 1 - u is in (0, 1]: the training edge `high` is excluded
            v = self.high + (self.ood_high - self.high) * (1 - u)
        else:
            v = self.low + (self.high - self.low) * u
        return {"velocity": v.float()}

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "velocity": {
                "train/test": f"U[{self.low}, {self.high}]",
                "ood": f"U({self.high}, {self.ood_high}]",
            },
        }


class ForwardBackward(TaskDistribution):
    """Running direction ``direction [n]``, +1 or -1 with equal probability."""

    splits = ("train", "test")

    def __init__(self, family: str):
        self.family = family

    def _sample(self, n: int, split: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
        forward = torch.rand(n, generator=generator) < 0.5
        return {"direction": torch.where(forward, 1.0, -1.0)}


class PlanarDirection(TaskDistribution):
    """Unit directions ``direction [n, 2]`` in the plane, angle ~ U[0, 2 pi)."""

    splits = ("train", "test")

    def __init__(self, family: str):
        self.family = family

    def _sample(self, n: int, split: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
        angle = 2 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
        return {"direction": torch.stack([angle.cos(), angle.sin()], dim=1).float()}


class GoalInDisc(TaskDistribution):
    """Goals ``goal [n, 2]`` uniform in the disc of ``radius``; ood: the ring out to ``ood_radius``."""

    splits = ("train", "test", "ood")

    def __init__(self, family: str, radius: float = 3.0, ood_radius: float = 4.0):
        if not 0 < radius < ood_radius:
            raise ValueError(f"need 0 < radius < ood_radius, got {radius}, {ood_radius}")
        self.family, self.radius, self.ood_radius = family, radius, ood_radius

    def _sample(self, n: int, split: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
        u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        # Uniform in area: r^2 uniform, on [0, radius^2) or, ood, on (radius^2, ood_radius^2].
        if split == "ood":
            r2 = self.ood_radius**2 - (self.ood_radius**2 - self.radius**2) * u[:, 0]
        else:
            r2 = self.radius**2 * u[:, 0]
        r = r2.sqrt()
        angle = 2 * math.pi * u[:, 1]
        return {"goal": (r[:, None] * torch.stack([angle.cos(), angle.sin()], dim=1)).float()}

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "goal": {
                "train/test": f"uniform in r <= {self.radius}",
                "ood": f"uniform in {self.radius} < r <= {self.ood_radius}",
            },
        }


# --- robots (Gymnasium v5 observations and costs) -----------------------------------------------
Dynamics = Mapping[str, LogUniform | Sequence[float]]


class Locomotion(MujocoFamily):
    """A robot plus an objective; ``dynamics`` (group -> range) randomizes its physics as well.

    Subclasses name the family, give the objective's TaskDistribution (None: the robot's own
    reward) and, for RandParams families, default dynamics groups.
    """

    family_name: str
    default_dynamics: Dynamics | None = None

    def objective(self) -> TaskDistribution | None:
        return None

    def make_distribution(self, dynamics: Dynamics | None) -> TaskDistribution:
        objective = self.objective()
        groups = dynamics if dynamics is not None else self.default_dynamics
        if groups is None:
            if objective is None:
                raise ValueError(f"{type(self).__name__} needs `dynamics` groups to randomize")
            return objective
        randomized = RandomDynamics(self.build_model(), parse_groups(groups), self.family_name)
        return randomized if objective is None else WithDynamics(objective, randomized)


class HalfCheetah(Locomotion):
    """HalfCheetah v5: obs = qpos[1:], qvel (17); reward = forward term - 0.1 |a|^2; no termination."""

    xml = str(ASSETS / "half_cheetah.xml")
    frame_skip = 5
    qvel_noise = "normal"
    max_episode_steps = HORIZON

    def __init__(
        self,
        ctrl_cost_weight: float = 0.1,
        reset_noise_scale: float = 0.1,
        dynamics: Dynamics | None = None,
    ):
        self.ctrl_cost_weight = ctrl_cost_weight
        self.reset_noise_scale = reset_noise_scale
        self.distribution = self.make_distribution(dynamics)

    def forward_reward(self, xp: ModuleType, vx: Array, task: Any) -> Array:
        return vx

    def observe(self, xp: ModuleType, s: State, task: Any) -> Array:
        return xp.concat([s["qpos"][..., 1:], s["qvel"]], -1)

    def reward(self, xp: ModuleType, s: State, velocity: Array, action: Array, task: Any) -> Array:
        ctrl_cost = self.ctrl_cost_weight * (action * action).sum(-1)
        return self.forward_reward(xp, velocity[..., 0], task) - ctrl_cost


class HalfCheetahVel(HalfCheetah):
    """Run at a target velocity (MAML, Finn et al. 2017): forward term -|v_x - v_target|."""

    family_name = "half_cheetah_vel"

    def objective(self) -> TaskDistribution:
        return TargetVelocity(self.family_name, 0.0, 2.0, 3.0)

    def forward_reward(self, xp: ModuleType, vx: Array, task: Any) -> Array:
        return -abs(vx - task["velocity"])


class HalfCheetahDir(HalfCheetah):
    """Run forward or backward (MAML): forward term direction * v_x."""

    family_name = "half_cheetah_dir"
    # +1/-1 leave no out-of-range objective: ood tasks are the robot with unseen dynamics.
    default_dynamics = UNSEEN_DYNAMICS

    def objective(self) -> TaskDistribution:
        return ForwardBackward(self.family_name)

    def forward_reward(self, xp: ModuleType, vx: Array, task: Any) -> Array:
        return task["direction"] * vx


class HalfCheetahRandParams(HalfCheetah):
    """HalfCheetah v5 with randomized dynamics (ProMP's RandParams ranges)."""

    family_name = "half_cheetah_rand_params"
    default_dynamics = RAND_PARAMS


class Ant(Locomotion):
    """Ant v5: obs = qpos[2:], qvel, clip(cfrc_ext[1:], -1, 1) (105); reward = forward term + 1
    (while healthy) - 0.5 |a|^2 - 5e-4 |clip(cfrc_ext)|^2; ends when the torso leaves z in
    [0.2, 1] or the state is not finite."""

    xml = str(ASSETS / "ant.xml")
    frame_skip = 5
    qvel_noise = "normal"
    max_episode_steps = HORIZON
    derived_fields = ("xpos", "cfrc_ext")
    #: whether the observation keeps the torso's x, y
    observe_xy = False

    def __init__(
        self,
        ctrl_cost_weight: float = 0.5,
        contact_cost_weight: float = 5e-4,
        healthy_reward: float = 1.0,
        terminate_when_unhealthy: bool = True,
        healthy_z_range: tuple[float, float] = (0.2, 1.0),
        reset_noise_scale: float = 0.1,
        dynamics: Dynamics | None = None,
    ):
        self.ctrl_cost_weight = ctrl_cost_weight
        self.contact_cost_weight = contact_cost_weight
        self.healthy_reward = healthy_reward
        self.terminate_when_unhealthy = terminate_when_unhealthy
        self.healthy_z_range = healthy_z_range
        self.reset_noise_scale = reset_noise_scale
        self.distribution = self.make_distribution(dynamics)

    def forward_reward(self, xp: ModuleType, s: State, velocity: Array, task: Any) -> Array:
        return velocity[..., 0]

    def position(self, xp: ModuleType, s: State) -> Array:
        # v5 measures velocity on the torso's xpos (body 1), as MuJoCo leaves it after mj_step.
        return s["xpos"][..., 1, :2]

    def healthy(self, xp: ModuleType, s: State) -> Array:
        z = s["qpos"][..., 2]
        lo, hi = self.healthy_z_range
        finite = xp.isfinite(xp.concat([s["qpos"], s["qvel"]], -1)).all(-1)
        return finite & (z >= lo) & (z <= hi)

    def observe(self, xp: ModuleType, s: State, task: Any) -> Array:
        forces = s["cfrc_ext"][..., 1:, :].clip(-1.0, 1.0)
        qpos = s["qpos"] if self.observe_xy else s["qpos"][..., 2:]
        return xp.concat([qpos, s["qvel"], forces.reshape(*forces.shape[:-2], -1)], -1)

    def reward(self, xp: ModuleType, s: State, velocity: Array, action: Array, task: Any) -> Array:
        forces = s["cfrc_ext"].clip(-1.0, 1.0)
        contact_cost = self.contact_cost_weight * (forces * forces).sum((-2, -1))
        ctrl_cost = self.ctrl_cost_weight * (action * action).sum(-1)
        alive = self.healthy(xp, s) * self.healthy_reward
        return self.forward_reward(xp, s, velocity, task) + alive - ctrl_cost - contact_cost

    def terminated(self, xp: ModuleType, s: State, task: Any) -> Array | None:
        return ~self.healthy(xp, s) if self.terminate_when_unhealthy else None


class AntDir(Ant):
    """Run in a random planar direction: forward term d . v_xy."""

    family_name = "ant_dir"
    # every direction is in training: ood tasks are the robot with unseen dynamics.
    default_dynamics = UNSEEN_DYNAMICS

    def objective(self) -> TaskDistribution:
        return PlanarDirection(self.family_name)

    def forward_reward(self, xp: ModuleType, s: State, velocity: Array, task: Any) -> Array:
        return (velocity * task["direction"]).sum(-1)


class AntGoal(Ant):
    """Reach a goal in the plane (ProMP, PEARL): forward term -|xy_torso - goal|_1."""

    family_name = "ant_goal"
    observe_xy = True

    def objective(self) -> TaskDistribution:
        return GoalInDisc(self.family_name, 3.0, 4.0)

    def forward_reward(self, xp: ModuleType, s: State, velocity: Array, task: Any) -> Array:
        return -abs(s["qpos"][..., :2] - task["goal"]).sum(-1)


class AntRandParams(Ant):
    """Ant v5 with randomized dynamics (ProMP's RandParams ranges)."""

    family_name = "ant_rand_params"
    default_dynamics = RAND_PARAMS


class PlanarWalker(Locomotion):
    """Hopper and Walker2d v5: obs = qpos[1:], clip(qvel, -10, 10); reward = v_x + 1 (while
    healthy) - 1e-3 |a|^2; ends when z, the torso angle or (Hopper) the state leave their ranges.
    Randomized dynamics: ProMP's RandParams ranges (ANCHORS.md section 5)."""

    frame_skip = 4
    qvel_noise = "uniform"
    max_episode_steps = HORIZON
    default_dynamics = RAND_PARAMS
    healthy_z_range: tuple[float, float]
    healthy_angle_range: tuple[float, float]
    healthy_state_range: tuple[float, float] | None = None

    def __init__(
        self,
        ctrl_cost_weight: float = 1e-3,
        healthy_reward: float = 1.0,
        terminate_when_unhealthy: bool = True,
        reset_noise_scale: float = 5e-3,
        dynamics: Dynamics | None = None,
    ):
        self.ctrl_cost_weight = ctrl_cost_weight
        self.healthy_reward = healthy_reward
        self.terminate_when_unhealthy = terminate_when_unhealthy
        self.reset_noise_scale = reset_noise_scale
        self.distribution = self.make_distribution(dynamics)

    def healthy(self, xp: ModuleType, s: State) -> Array:
        qpos = s["qpos"]
        z, angle = qpos[..., 1], qpos[..., 2]
        ok = (
            (z > self.healthy_z_range[0])
            & (z < self.healthy_z_range[1])
            & (angle > self.healthy_angle_range[0])
            & (angle < self.healthy_angle_range[1])
        )
        if self.healthy_state_range is not None:
            lo, hi = self.healthy_state_range
            state = xp.concat([qpos, s["qvel"]], -1)[..., 2:]
            ok = ok & ((state > lo) & (state < hi)).all(-1)
        return ok

    def observe(self, xp: ModuleType, s: State, task: Any) -> Array:
        return xp.concat([s["qpos"][..., 1:], s["qvel"].clip(-10.0, 10.0)], -1)

    def reward(self, xp: ModuleType, s: State, velocity: Array, action: Array, task: Any) -> Array:
        ctrl_cost = self.ctrl_cost_weight * (action * action).sum(-1)
        return velocity[..., 0] + self.healthy(xp, s) * self.healthy_reward - ctrl_cost

    def terminated(self, xp: ModuleType, s: State, task: Any) -> Array | None:
        return ~self.healthy(xp, s) if self.terminate_when_unhealthy else None


class HopperRandParams(PlanarWalker):
    """Hopper v5 with randomized dynamics."""

    xml = str(ASSETS / "hopper.xml")
    family_name = "hopper_rand_params"
    healthy_state_range = (-100.0, 100.0)
    healthy_z_range = (0.7, float("inf"))
    healthy_angle_range = (-0.2, 0.2)


class Walker2dRandParams(PlanarWalker):
    """Walker2d v5 (``walker2d_v5.xml``: both feet with friction 0.9) with randomized dynamics."""

    xml = str(ASSETS / "walker2d_v5.xml")
    family_name = "walker2d_rand_params"
    healthy_z_range = (0.8, 2.0)
    healthy_angle_range = (-1.0, 1.0)


# --- the two faces of each family, and their registration -------------------------------------
class HalfCheetahVelEnv(MujocoTaskEnv):
    family_cls = HalfCheetahVel


class HalfCheetahVelBatched(MujocoBatchedEnv):
    family_cls = HalfCheetahVel


class HalfCheetahDirEnv(MujocoTaskEnv):
    family_cls = HalfCheetahDir


class HalfCheetahDirBatched(MujocoBatchedEnv):
    family_cls = HalfCheetahDir


class HalfCheetahRandParamsEnv(MujocoTaskEnv):
    family_cls = HalfCheetahRandParams


class HalfCheetahRandParamsBatched(MujocoBatchedEnv):
    family_cls = HalfCheetahRandParams


class AntDirEnv(MujocoTaskEnv):
    family_cls = AntDir


class AntDirBatched(MujocoBatchedEnv):
    family_cls = AntDir


class AntGoalEnv(MujocoTaskEnv):
    family_cls = AntGoal


class AntGoalBatched(MujocoBatchedEnv):
    family_cls = AntGoal


class AntRandParamsEnv(MujocoTaskEnv):
    family_cls = AntRandParams


class AntRandParamsBatched(MujocoBatchedEnv):
    family_cls = AntRandParams


class HopperRandParamsEnv(MujocoTaskEnv):
    family_cls = HopperRandParams


class HopperRandParamsBatched(MujocoBatchedEnv):
    family_cls = HopperRandParams


class Walker2dRandParamsEnv(MujocoTaskEnv):
    family_cls = Walker2dRandParams


class Walker2dRandParamsBatched(MujocoBatchedEnv):
    family_cls = Walker2dRandParams


FAMILIES: dict[str, type[MujocoFamily]] = {
    "HalfCheetahVel": HalfCheetahVel,
    "HalfCheetahDir": HalfCheetahDir,
    "HalfCheetahRandParams": HalfCheetahRandParams,
    "AntDir": AntDir,
    "AntGoal": AntGoal,
    "AntRandParams": AntRandParams,
    "HopperRandParams": HopperRandParams,
    "Walker2dRandParams": Walker2dRandParams,
}

for _name, _family in FAMILIES.items():
    register_task_env(
        f"metarl/{_name}-v0",
        distribution=_family.task_distribution,
        entry_point=f"envs.mujoco_locomotion:{_name}Env",
        batched_entry_points={"mujoco": f"envs.mujoco_locomotion:{_name}Batched"},
        max_episode_steps=HORIZON,
        description=(_family.__doc__ or "").strip().splitlines()[0],
    )
