"""Pursuit: keep a moving target centred at a set distance, seeing it only through events."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hybrid_snn_control.sim.rover_env import OMEGA_MAX_RADPS, V_MAX_MPS, RoverEnv, wrap_angle

TARGET_HALF_HEIGHT_M = 0.11
ARENA_HALF_M = 2.5
TARGET_BOUND_M = 2.1  # the target's path stays this far from the centre
PATH_DT_S = 0.01


def target_path(
    rng: np.random.Generator,
    world: dict[str, Any],
    duration_s: float,
    start_xy: np.ndarray,
    start_heading: float,
) -> np.ndarray:
    """A smooth random path sampled every ``PATH_DT_S``: ``[n, 2]`` positions in metres.

    Turn rate is an Ornstein-Uhlenbeck process (std ``target_turn_rate_rps``, 0.8 s time
    constant); cruise speed changes every 1-3 s (sometimes to a standstill, which a
    frame-differencing sensor cannot see); at ``target_dash_rate_hz`` the target dashes
    sideways for 0.6 s at 2.5x speed, often out of view; near the walls it turns inwards.
    """
    n = math.ceil(duration_s / PATH_DT_S) + 2
    cruise, sigma = world["target_speed_mps"], world["target_turn_rate_rps"]
    normal = rng.standard_normal(n)
    uniform = rng.random((n, 3))
    tau = 0.8
    pos = np.empty((n, 2))
    p = np.array(start_xy, dtype=float)
    heading, omega, speed = start_heading, 0.0, 0.0
    speed_goal, next_change_s, dash_left_s, dash_turn = cruise, 0.0, 0.0, 0.0
    for i in range(n):
        t = i * PATH_DT_S
        pos[i] = p
        if t >= next_change_s:
            speed_goal = 0.0 if uniform[i, 0] < 0.12 else cruise * (0.5 + 0.8 * uniform[i, 1])
            next_change_s = t + 1.0 + 2.0 * uniform[i, 2]
        if dash_left_s <= 0.0 and uniform[i, 0] < world["target_dash_rate_hz"] * PATH_DT_S:
            dash_left_s, dash_turn = 0.6, (2.0 if uniform[i, 1] < 0.5 else -2.0)
        omega += -omega / tau * PATH_DT_S + sigma * math.sqrt(2 * PATH_DT_S / tau) * normal[i]
        turn = omega
        margin = TARGET_BOUND_M - max(abs(p[0]), abs(p[1]))
        if margin < 0.7:  # steer towards the centre, harder the closer the wall
            to_centre = math.atan2(-p[1], -p[0])
            turn += 3.0 * float(wrap_angle(to_centre - heading)) * (1.0 - max(margin, 0.0) / 0.7)
        goal = speed_goal
        if dash_left_s > 0.0:
            turn += dash_turn
            goal = max(2.5 * cruise, 0.3)
            dash_left_s -= PATH_DT_S
        speed += (goal - speed) * min(1.0, PATH_DT_S / 0.3)
        heading += turn * PATH_DT_S
        p = np.clip(
            p + speed * PATH_DT_S * np.array([math.cos(heading), math.sin(heading)]),
            -TARGET_BOUND_M,
            TARGET_BOUND_M,
        )
    return pos


class PursuitEnv(RoverEnv):
    """Pursue a moving target with an event camera (``hybrid_snn_control/Pursuit-v0``).

    ## Description
    A ~1.5 kg differential-drive rover in a 5 m x 5 m walled room follows a target (a
    coloured can) that wanders on a smooth random path with speed changes, standstills and
    sudden dashes that can take it out of view.  The rover must keep the target centred in
    its forward camera at ``follow_distance_m``.  It sees the world only through a simulated
    event camera (plus wheel and IMU proprioception): position comes from where events are,
    velocity from when they come, and a standing target produces none.

    ## Action Space
    ``Box(-1, 1, (2,), float32)``: normalized (v, omega).  v * 0.6 m/s forward speed and
    omega * 4 rad/s yaw rate, turned into left/right wheel speed commands (limited to
    22 rad/s, keeping the curvature), delayed by ``latency_steps`` control steps, scaled by
    the per-wheel ``motor_gain`` and tracked by torque-limited velocity servos.

    ## Observation Space
    ``Dict``:

    | key       | shape     | content                                                      |
    |-----------|-----------|--------------------------------------------------------------|
    | `events`  | (2, H, W) | float32 event counts of this control step, [ON, OFF] planes  |
    | `proprio` | (8,)      | wheel speeds / 22 rad/s (L, R); gyro (rad/s, body x, y, z);  |
    |           |           | accelerometer / 9.81 m/s^2 (body x, y, z)                    |

    ## Rewards
    ``r = exp(-b^2 / (2 * 0.3^2)) * exp(-(d - d*)^2 / (2 * 0.3^2))`` in [0, 1], with ``b``
    the target's bearing from the optical axis (rad), ``d`` its distance and ``d*`` =
    ``follow_distance_m``.  The episode's ``normalized_score`` is the mean reward.

    ## Starting State
    Rover at a uniform position in [-1, 1]^2 m with a uniform heading; target at
    ``follow_distance_m`` ahead, up to 0.3 rad off-axis.  The world (friction, mass, motor
    gains, latency, light, textures, target look and motion, event-sensor parameters) is
    drawn from :class:`RandomizationRanges` (with the active shift) using the reset seed.

    ## Episode End
    No termination; truncated after ``episode_s`` (default 20 s = 1000 steps at 50 Hz).
    ``info["episode_metrics"]`` on the last step: ``normalized_score``,
    ``mean_bearing_error_deg``, ``mean_distance_error_m``, ``time_in_view`` (fraction).

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | `render_mode` | None | `"rgb_array"`: `render()` returns an overview image |
    | `camera_width`, `camera_height` | 64, 64 | event sensor size (W, H) |
    | `camera_fovy_deg` | 70 | vertical field of view |
    | `control_hz`, `physics_hz` | 50, 500 | control and physics rates |
    | `subframes` | 1 | frames rendered per control step (fed to the event simulator) |
    | `event_camera` | True | False: no rendering, `events` stays zero (proprio-only) |
    | `event_preset` | "clean" | `SimulatorParams.preset` the sensor ranges are applied to |
    | `episode_s` | 20 | episode length |
    | `shift` | None | held-out shift name (also `reset(options={"shift": ...})`) |
    | `randomize` | True | False: every episode uses the midpoints of the ranges |
    | `ranges` | `RandomizationRanges()` | training ranges |
    | `follow_distance_m` | 0.8 | desired distance to the target |
    | `render_width`, `render_height` | 320, 240 | size of `render()` images |

    ## Version History
    * v0: first version.
    """

    asset = "pursuit.xml"
    default_episode_s = 20.0

    def __init__(self, follow_distance_m: float = 0.8, **kwargs: Any) -> None:
        if not 0.3 <= follow_distance_m <= 2.0:
            raise ValueError(f"follow_distance_m must be in [0.3, 2.0], got {follow_distance_m}")
        self.follow_distance_m = float(follow_distance_m)
        super().__init__(**kwargs)
        self._target_body = self.model.body("target").id
        self._target_mocap = self.model.body_mocapid[self._target_body]
        self._target_geom = self.model.geom("target").id
        self._band_geom = self.model.geom("target_band").id
        self._path = np.zeros((2, 2))

    @classmethod
    def supported_shifts(cls) -> tuple[str, ...]:
        return ("dim", "flicker", "fast_target", "slippery", "noisy_sensor", "laggy", "heavy")

    # ------------------------------------------------------------ ground truth
    def target_state(self, t_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Ground-truth target (position, velocity) in the world plane at ``t_s`` (now)."""
        t = self.data.time if t_s is None else t_s
        f = min(max(t / PATH_DT_S, 0.0), len(self._path) - 2.0)
        i = int(f)
        w = f - i
        pos = (1 - w) * self._path[i] + w * self._path[i + 1]
        vel = (self._path[i + 1] - self._path[i]) / PATH_DT_S
        return pos, vel

    def bearing_distance(self) -> tuple[float, float]:
        """Target bearing from the optical axis (rad, left positive) and distance (m)."""
        x, y, yaw = self.rover_pose()
        p, _ = self.target_state()
        d = math.hypot(p[0] - x, p[1] - y)
        b = float(wrap_angle(math.atan2(p[1] - y, p[0] - x) - yaw))
        return b, d

    # ------------------------------------------------------------ task hooks
    def _reset_task(self, rng: np.random.Generator) -> None:
        w, m = self.world, self.model
        x, y = rng.uniform(-1.0, 1.0, size=2)
        yaw = rng.uniform(-math.pi, math.pi)
        self.set_rover_pose(x, y, yaw)
        b0 = rng.uniform(-0.3, 0.3)
        start = np.array([x, y]) + self.follow_distance_m * np.array(
            [math.cos(yaw + b0), math.sin(yaw + b0)]
        )
        duration = self.episode_steps / self.control_hz + 1.0
        self._path = target_path(rng, w, duration, start, yaw + rng.uniform(-1.0, 1.0))
        m.geom_rgba[self._target_geom, :3] = w["target_rgb"]
        m.geom_size[self._target_geom, 0] = w["target_radius_m"]
        m.geom_size[self._band_geom, 0] = w["target_radius_m"] + 0.002
        self._before_physics(0.0)
        self._sums = np.zeros(4)  # reward, |bearing|, |distance error|, in view

    def _before_physics(self, t_end_s: float) -> None:
        p, _ = self.target_state(t_end_s)
        self.data.mocap_pos[self._target_mocap] = [p[0], p[1], TARGET_HALF_HEIGHT_M]

    def _task_step(self) -> tuple[float, bool, dict[str, Any]]:
        b, d = self.bearing_distance()
        err = d - self.follow_distance_m
        reward = math.exp(-(b**2) / (2 * 0.3**2)) * math.exp(-(err**2) / (2 * 0.3**2))
        in_view = abs(b) < self.camera_fovx_rad / 2
        self._sums += [reward, abs(b), abs(err), in_view]
        info = {"bearing_rad": b, "distance_m": d, "in_view": in_view}
        return reward, False, info

    def _episode_metrics(self) -> dict[str, float]:
        mean = self._sums / max(self._step_count, 1)
        return {
            "normalized_score": float(mean[0]),
            "mean_bearing_error_deg": float(math.degrees(mean[1])),
            "mean_distance_error_m": float(mean[2]),
            "time_in_view": float(mean[3]),
        }

    privileged_names = ("bearing_half_fov", "distance_error_m", "in_view")

    def privileged_state(self) -> np.ndarray:
        """Target bearing in half fields of view (±1 at the image edges), distance error to
        ``follow_distance_m`` and in-view (0/1), from ground truth (training labels only)."""
        b, d = self.bearing_distance()
        half = self.camera_fovx_rad / 2
        return np.array([b / half, d - self.follow_distance_m, abs(b) < half], np.float32)

    def expert_action(self) -> np.ndarray:
        """Bearing and distance servo with target-velocity feed-forward (privileged).

        Looks ahead by the actuation latency, which the expert knows from the world draw.
        """
        x, y, yaw = self.rover_pose()
        lead_s = (self.world["latency_steps"] + 0.5) / self.control_hz
        p, v = self.target_state(self.data.time + lead_s)
        dx, dy = p[0] - x, p[1] - y
        d = max(math.hypot(dx, dy), 1e-3)
        u = np.array([dx, dy]) / d
        radial = float(v @ u)
        lateral = float(v @ np.array([-u[1], u[0]]))
        b = float(wrap_angle(math.atan2(dy, dx) - yaw))
        omega = 4.0 * b + lateral / d
        speed = (1.5 * (d - self.follow_distance_m) + radial) * max(math.cos(b), 0.0)
        return np.clip([speed / V_MAX_MPS, omega / OMEGA_MAX_RADPS], -1.0, 1.0).astype(np.float32)
