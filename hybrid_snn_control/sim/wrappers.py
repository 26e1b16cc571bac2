"""Observation variants of the rover envs for diagnosis (never for a deployed policy).

:class:`PrivilegedProprio` is the "can it control if it could see?" probe of issue 14:
the same student core, fed the env's ground-truth task state (``privileged_state()``:
target bearing, distance error, in view) appended to the proprioception instead of
events.  A student that drives well this way and badly from events cannot *see*; one
that drives badly either way cannot *control*.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["PrivilegedProprio"]


class PrivilegedProprio(gym.ObservationWrapper):
    """``proprio`` ← ``[proprio, privileged_state()]``; ``events`` stay as the env makes
    them (create the env with ``event_camera=False`` for all-zero events and no rendering)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        names = env.unwrapped.privileged_names
        if not names:
            raise ValueError(f"{env.spec.id if env.spec else env} has no privileged state")
        proprio = env.observation_space["proprio"]
        size = proprio.shape[0] + len(names)
        self.observation_space = spaces.Dict(
            {
                **env.observation_space.spaces,
                "proprio": spaces.Box(-np.inf, np.inf, (size,), np.float32),
            }
        )

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        privileged = self.env.unwrapped.privileged_state()
        proprio = np.concatenate([observation["proprio"], privileged]).astype(np.float32)
        return {**observation, "proprio": proprio}
