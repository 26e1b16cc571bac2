"""MuJoCo simulation harness: event-camera rover tasks in randomized worlds (gymnasium API).

Importing this module registers the environments with gymnasium::

    import gymnasium as gym
    import hybrid_snn_control.sim  # registers hybrid_snn_control/Pursuit-v0, .../Navigation-v0
    env = gym.make("hybrid_snn_control/Pursuit-v0", subframes=2, shift="dim")

Gymnasium 1.x has no plugin entry points: an id is found only once the module that
registers it is imported.  Without the import, name the module in the id and gymnasium
imports it (also what subprocess workers started with "spawn" need)::

    gym.make("hybrid_snn_control.sim:hybrid_snn_control/Pursuit-v0")

``MUJOCO_GL`` defaults to ``egl`` (headless; MuJoCo aborts when it is unset and no display
exists), and must be set before anything imports ``mujoco``.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym

from hybrid_snn_control.sim.randomization import (
    SHIFTS,
    RandomizationRanges,
    Range,
    WorldParams,
)

ENV_IDS = ("hybrid_snn_control/Pursuit-v0", "hybrid_snn_control/Navigation-v0")
_ENTRY_POINTS = {
    "hybrid_snn_control/Pursuit-v0": "hybrid_snn_control.sim.pursuit:PursuitEnv",
    "hybrid_snn_control/Navigation-v0": "hybrid_snn_control.sim.navigation:NavigationEnv",
}
for _env_id, _entry in _ENTRY_POINTS.items():
    if _env_id not in gym.registry:  # re-imports (e.g. in vector-env workers) stay quiet
        gym.register(id=_env_id, entry_point=_entry, disable_env_checker=False)

__all__ = ["ENV_IDS", "SHIFTS", "RandomizationRanges", "Range", "WorldParams"]
