"""metarl's built-in task families. Importing this package registers every one of them.

Each module defines one family: its TaskDistribution (parameters and splits), its batched
implementation(s) and its single Gymnasium env, and registers them under ``metarl/<Name>-v0``.
"""

from envs import (
    bandits,  # noqa: F401
    mujoco_locomotion,  # noqa: F401
    point_nav,  # noqa: F401
    tabular_mdp,  # noqa: F401
)
