"""The reference the ROS closed loop is checked against: the same policy lock-step in gym.

policy_node's controller, built from the same settings, steps the gym env that sim_node
wraps, on the same world seeds, with no ROS in between.  With every command in time
(``lockstep: true``) the closed loop must reproduce these scores; ``hsc demo`` prints
both side by side and the closed-loop tests assert the match.
"""

from __future__ import annotations

from collections.abc import Sequence

from hybrid_snn_control.robot.controller import PolicyController, rollout_episode
from hybrid_snn_control.ros.settings import SimSettings
from hybrid_snn_control.ros.sim_node import make_env
from hybrid_snn_control.sim.rover_env import OMEGA_MAX_RADPS, V_MAX_MPS

__all__ = ["direct_scores"]


def direct_scores(
    controller: PolicyController,
    sim: SimSettings,
    segments: Sequence[tuple[float, Sequence[int]]],
) -> list[list[float]]:
    """``normalized_score`` of each episode of each ``(spiking_ratio, world seeds)`` segment.

    One env for all segments, as sim_node keeps one; the controller's state is reset at
    every episode start and its ratio set per segment, as the closed loop does.  Actions go
    back to the env in the sim rover's own units, as sim_node converts ``cmd_vel``.
    """
    env = make_env(sim)
    try:
        scores = []
        for ratio, seeds in segments:
            controller.set_ratio(ratio)
            scores.append(
                [
                    rollout_episode(controller, env, seed, V_MAX_MPS, OMEGA_MAX_RADPS)[
                        "normalized_score"
                    ]
                    for seed in seeds
                ]
            )
        return scores
    finally:
        env.close()
