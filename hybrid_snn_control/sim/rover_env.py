"""The rover, its event camera and the randomized world: what every task shares.

A task subclasses :class:`RoverEnv` and fills in the start pose, the per-step reward and
metrics, and a privileged expert.  One control step is::

    action (v, omega) in [-1, 1]^2 --latency buffer--> wheel speed commands
      -> physics at physics_hz, split into `subframes` chunks;
         after each chunk: render the forward camera, feed the event simulator
      -> events of the whole control step -> 2 x H x W counts (ON, OFF)

Rendering is the expensive part, so each env owns one offscreen ``mujoco.Renderer`` for
the camera, created once (creating one costs 0.15-0.4 s), with shadows, reflections,
skybox and MSAA off (DESIGN §6, §10).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import deque
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from hybrid_snn_control.paths import package_data
from hybrid_snn_control.policy.config import RobotSpec
from hybrid_snn_control.sim.randomization import RandomizationRanges, WorldParams, sample_world

# Rover geometry and limits: declared once, in the RobotSpec defaults (they match
# assets/rover.xml); a trained policy stores the spec it was trained with.
ROVER = RobotSpec()
WHEEL_RADIUS_M = ROVER.wheel_radius_m
TRACK_WIDTH_M = ROVER.track_width_m
WHEEL_SPEED_MAX_RADPS = ROVER.wheel_speed_max_radps
V_MAX_MPS = ROVER.max_linear_mps
OMEGA_MAX_RADPS = ROVER.max_angular_rps
GRAVITY_MPS2 = ROVER.gravity_mps2
CHASSIS_MASS_KG = 1.20

# pid of the process whose GL (EGL) state the renderers live in; a fork inherits it
_GL_OWNER_PID: int | None = None

PROPRIO_NAMES = (
    "left_wheel_vel",
    "right_wheel_vel",
    "gyro_x",
    "gyro_y",
    "gyro_z",
    "accel_x",
    "accel_y",
    "accel_z",
)


def wheel_speeds(action: np.ndarray) -> np.ndarray:
    """Normalized (v, omega) -> (left, right) wheel speeds in rad/s, curvature kept at limits."""
    v = float(action[0]) * V_MAX_MPS
    omega = float(action[1]) * OMEGA_MAX_RADPS
    w = np.array([v - omega * TRACK_WIDTH_M / 2, v + omega * TRACK_WIDTH_M / 2]) / WHEEL_RADIUS_M
    peak = float(np.max(np.abs(w)))
    if peak > WHEEL_SPEED_MAX_RADPS:  # scale both wheels: same turn radius, lower speed
        w *= WHEEL_SPEED_MAX_RADPS / peak
    return w


def wrap_angle(a: float | np.ndarray) -> float | np.ndarray:
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


class RoverEnv(gym.Env):
    """Base class of the rover tasks (see the task classes for the documented tables)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 50}
    asset: str = ""  # MJCF file under sim/assets/
    default_episode_s: float = 20.0

    def __init__(
        self,
        render_mode: str | None = None,
        camera_width: int = 64,
        camera_height: int = 64,
        camera_fovy_deg: float = 70.0,
        control_hz: float = 50.0,
        physics_hz: float = 500.0,
        subframes: int = 1,
        event_camera: bool = True,
        event_preset: str = "clean",
        episode_s: float | None = None,
        shift: str | None = None,
        randomize: bool = True,
        ranges: RandomizationRanges | None = None,
        render_width: int = 320,
        render_height: int = 240,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if camera_width < 8 or camera_height < 8:
            raise ValueError(f"camera size must be >= 8x8, got {camera_width}x{camera_height}")
        if control_hz <= 0 or physics_hz < 500:
            raise ValueError(
                f"need control_hz > 0 and physics_hz >= 500, got {control_hz}, {physics_hz}"
            )
        n_physics = physics_hz / control_hz
        if abs(n_physics - round(n_physics)) > 1e-9:
            raise ValueError(
                f"physics_hz ({physics_hz}) must be a multiple of control_hz ({control_hz})"
            )
        self.n_physics = round(n_physics)
        if not 1 <= subframes <= self.n_physics:
            raise ValueError(f"subframes must be in [1, {self.n_physics}], got {subframes}")
        self.render_mode = render_mode
        self.camera_width, self.camera_height = int(camera_width), int(camera_height)
        self.control_hz, self.physics_hz = float(control_hz), float(physics_hz)
        self.subframes = int(subframes)
        self.event_camera = bool(event_camera)
        self.episode_steps = round((episode_s or self.default_episode_s) * control_hz)
        if self.episode_steps < 1:
            raise ValueError(f"episode_s must cover at least one control step, got {episode_s}")
        self.randomize = bool(randomize)
        self.base_ranges = ranges or RandomizationRanges()
        self.shift = self._check_shift(shift)
        self.render_width, self.render_height = int(render_width), int(render_height)
        self.metadata = {**self.metadata, "render_fps": round(control_hz)}

        self.model = mujoco.MjModel.from_xml_path(str(package_data(f"sim/assets/{self.asset}")))
        self.model.opt.timestep = 1.0 / self.physics_hz
        self.model.vis.quality.offsamples = 0
        self.model.vis.global_.offwidth = max(640, self.render_width, self.camera_width)
        self.model.vis.global_.offheight = max(480, self.render_height, self.camera_height)
        cam = self.model.camera("eye")
        self.model.cam_fovy[cam.id] = camera_fovy_deg
        self.camera_fovx_rad = 2 * math.atan(
            math.tan(math.radians(camera_fovy_deg) / 2) * camera_width / camera_height
        )
        self.data = mujoco.MjData(self.model)
        self._ids()
        self._nominal = {
            "body_mass": self.model.body_mass.copy(),
            "body_inertia": self.model.body_inertia.copy(),
            "light_diffuse": self.model.light_diffuse.copy(),
            "headlight_ambient": self.model.vis.headlight.ambient.copy(),
            "headlight_diffuse": self.model.vis.headlight.diffuse.copy(),
            "mat_rgba": self.model.mat_rgba.copy(),
        }

        # sub-frame boundaries in physics steps, e.g. 10 steps / 4 frames -> 3, 5, 8, 10
        self._chunk_ends = [
            round((k + 1) * self.n_physics / self.subframes) for k in range(subframes)
        ]

        self._renderer: mujoco.Renderer | None = None
        self._view_renderer: mujoco.Renderer | None = None
        self._events_sim = None
        if self.event_camera:
            self._setup_event_camera(event_preset)

        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.observation_space = spaces.Dict(
            {
                "events": spaces.Box(
                    0.0, np.inf, shape=(2, self.camera_height, self.camera_width), dtype=np.float32
                ),
                "proprio": spaces.Box(
                    -np.inf, np.inf, shape=(len(PROPRIO_NAMES),), dtype=np.float32
                ),
            }
        )
        self.world: WorldParams = {}
        self.live_shift_plan: dict[str, Any] | None = None
        self._live_rng: np.random.Generator | None = None
        self._live: dict[str, Any] | None = None
        self._at_shift: tuple[float, int] | None = None
        self._reward_total = 0.0
        self.camera_frame: np.ndarray | None = None
        self.last_events: np.ndarray | None = None
        self._events_zero = np.zeros((2, self.camera_height, self.camera_width), np.float32)
        self._step_count = 0
        self._action_buffer: deque[np.ndarray] = deque()

    # ----------------------------------------------------------------- set-up
    def _ids(self) -> None:
        m = self.model
        self._chassis_body = m.body("rover").id
        self._tire_geoms = [m.geom("left_tire").id, m.geom("right_tire").id]
        self._floor_geom = m.geom("floor").id
        self._wall_geoms = [m.geom(n).id for n in ("wall_n", "wall_s", "wall_e", "wall_w")]
        self._floor_mats = [i for i in range(m.nmat) if m.material(i).name.startswith("floor_")]
        self._wall_mats = [i for i in range(m.nmat) if m.material(i).name.startswith("wall_")]
        self._sun = m.light("sun").id
        self._eye = m.camera("eye").id
        self._overview = m.camera("overview").id
        rover_bodies = {
            b
            for b in range(m.nbody)
            if b == self._chassis_body or m.body_parentid[b] == self._chassis_body
        }
        self._rover_geom = np.isin(m.geom_bodyid, list(rover_bodies))
        adr = {n: m.sensor_adr[m.sensor(n).id] for n in ("imu_gyro", "imu_accel")}
        self._gyro_adr, self._accel_adr = adr["imu_gyro"], adr["imu_accel"]
        self._wheel_vel_adr = [
            m.sensor_adr[m.sensor(n).id] for n in ("left_wheel_vel", "right_wheel_vel")
        ]

    def _setup_event_camera(self, preset: str) -> None:
        from hybrid_snn_control.events import EventCameraSimulator, SimulatorParams

        self._event_params_base = SimulatorParams.preset(preset)
        self._events_sim = EventCameraSimulator(
            width=self.camera_width,
            height=self.camera_height,
            params=self._event_params_base,
            seed=0,
        )

    def _camera_renderer(self) -> mujoco.Renderer:
        if self._renderer is None:
            self._renderer = self._make_renderer(self.camera_height, self.camera_width)
        return self._renderer

    def _make_renderer(self, height: int, width: int) -> mujoco.Renderer:
        global _GL_OWNER_PID
        if _GL_OWNER_PID is not None and _GL_OWNER_PID != os.getpid():
            raise RuntimeError(
                "this process was forked from one that already rendered (pid "
                f"{_GL_OWNER_PID}); a forked EGL context hangs. Start env workers with "
                "AsyncVectorEnv(..., context='spawn') or 'forkserver', or create them "
                "before rendering in the parent."
            )
        try:
            r = mujoco.Renderer(self.model, height=height, width=width)
        except mujoco.FatalError as exc:
            raise RuntimeError(
                f"cannot create a MuJoCo renderer ({exc}); MUJOCO_GL="
                f"{os.environ.get('MUJOCO_GL')!r}. Import hybrid_snn_control.sim before mujoco "
                "(or export MUJOCO_GL=egl): mujoco picks its GL backend when first imported."
            ) from exc
        _GL_OWNER_PID = os.getpid()
        for flag in (
            mujoco.mjtRndFlag.mjRND_SHADOW,
            mujoco.mjtRndFlag.mjRND_REFLECTION,
            mujoco.mjtRndFlag.mjRND_SKYBOX,
        ):
            r.scene.flags[flag] = 0
        return r

    def _check_shift(self, shift: str | None) -> str | None:
        if shift in (None, "nominal"):
            return None
        if shift not in self.supported_shifts():
            raise ValueError(
                f"unknown shift {shift!r} for {type(self).__name__}; allowed: nominal, "
                + ", ".join(self.supported_shifts())
            )
        return shift

    @classmethod
    def supported_shifts(cls) -> tuple[str, ...]:
        from hybrid_snn_control.sim.randomization import SHIFTS

        return tuple(SHIFTS)

    @property
    def ranges(self) -> RandomizationRanges:
        """The ranges the current episodes are drawn from (training ranges + active shift)."""
        return self.base_ranges.shifted(self.shift)

    # ----------------------------------------------------------------- world
    def _apply_dynamics(self, world: WorldParams) -> None:
        """Tire friction and chassis mass: what a world (or a live shift) sets in the model."""
        m, nom = self.model, self._nominal
        for g in self._tire_geoms:
            m.geom_friction[g, 0] = world["tire_friction"]
        b = self._chassis_body
        m.body_mass[b] = nom["body_mass"][b] * world["mass_scale"]
        m.body_inertia[b] = nom["body_inertia"][b] * world["mass_scale"]

    def _apply_world(self, world: WorldParams) -> None:
        m, nom = self.model, self._nominal
        self._apply_dynamics(world)
        az, el = (
            math.radians(world["light_azimuth_deg"]),
            math.radians(world["light_elevation_deg"]),
        )
        m.light_dir[self._sun] = [
            -math.cos(el) * math.cos(az),
            -math.cos(el) * math.sin(az),
            -math.sin(el),
        ]
        m.mat_rgba[:] = nom["mat_rgba"]
        floor_mat = self._floor_mats[world["floor_material"] % len(self._floor_mats)]
        wall_mat = self._wall_mats[world["wall_material"] % len(self._wall_mats)]
        m.geom_matid[self._floor_geom] = floor_mat
        m.mat_rgba[floor_mat, :3] *= world["floor_tint"]
        for g in self._wall_geoms:
            m.geom_matid[g] = wall_mat
        m.mat_rgba[wall_mat, :3] *= world["wall_tint"]
        self._flicker_phase = 0.0
        self._set_light(0.0)
        if self._events_sim is not None:
            self._events_sim.set_params(self._event_params(world))

    def _event_params(self, world: WorldParams):
        return dataclasses.replace(
            self._event_params_base,
            contrast_threshold_on=world["contrast_threshold"],
            contrast_threshold_off=world["contrast_threshold"],
            threshold_sigma=world["threshold_sigma"],
            shot_noise_rate_hz=world["shot_noise_rate_hz"],
        )

    def _set_light(self, t_s: float) -> None:
        """Sun and headlight intensity at time ``t_s`` (flicker is a sinusoid on top)."""
        w, nom, m = self.world, self._nominal, self.model
        gain = w["light_intensity"] * (
            1.0
            + w["flicker_amplitude"]
            * math.sin(2 * math.pi * w["flicker_hz"] * t_s + self._flicker_phase)
        )
        m.light_diffuse[:] = nom["light_diffuse"] * gain
        m.vis.headlight.ambient[:] = nom["headlight_ambient"] * gain
        m.vis.headlight.diffuse[:] = nom["headlight_diffuse"] * gain

    # ------------------------------------------------------------ live shifts
    #: shifts that can start in the middle of an episode (the world's other values stay;
    #: ``fast_target`` would need a new target path and is not one of them)
    LIVE_SHIFTS = ("dim", "flicker", "noisy_sensor", "slippery", "laggy", "heavy")

    def start_shift(
        self, shift: str, ramp_s: float = 0.0, rng: np.random.Generator | None = None
    ) -> dict[str, Any]:
        """Move this episode's world into ``shift``'s ranges from now on, linearly over
        ``ramp_s`` (integer values such as latency switch at the end of the ramp).

        The new values are drawn from ``rng`` (default: the env's); the episode metrics
        then carry ``score_before_shift`` / ``score_after_shift`` (mean reward per step on
        either side of the start).  Returns the target values.
        """
        from hybrid_snn_control.sim.randomization import SHIFTS

        if shift not in self.LIVE_SHIFTS:
            raise ValueError(f"{shift!r} cannot start mid-episode; live shifts: {self.LIVE_SHIFTS}")
        if not (math.isfinite(ramp_s) and ramp_s >= 0):
            raise ValueError(f"ramp_s must be a finite number >= 0, got {ramp_s}")
        rng = rng if rng is not None else self.np_random
        target = {
            k: (r.sample(rng) if self.randomize else r.midpoint()) for k, r in SHIFTS[shift].items()
        }
        self._live = {
            "shift": shift,
            "from": {k: self.world[k] for k in target},
            "to": target,
            "t0": self.data.time,
            "ramp_s": float(ramp_s),
        }
        self._at_shift = (self._reward_total, self._step_count)
        self._advance_shift(self.data.time)
        return dict(target)

    def _advance_shift(self, t_s: float) -> None:
        live = self._live
        if live is None:
            return
        ramp = live["ramp_s"]
        w = 1.0 if ramp <= 0 else min(1.0, (t_s - live["t0"]) / ramp)
        for k, b in live["to"].items():
            a = live["from"][k]
            if w >= 1.0:
                self.world[k] = b
            elif not isinstance(b, int):  # integers (latency steps) wait for the ramp's end
                self.world[k] = a + (b - a) * w
        world = self.world
        self._apply_dynamics(world)
        if self._events_sim is not None:
            self._events_sim.set_params(self._event_params(world))
        latency = int(world["latency_steps"])
        if self._action_buffer.maxlen != latency + 1:  # keep the queued actions, oldest first
            queued = list(self._action_buffer)
            queued = [queued[0]] * max(0, latency + 1 - len(queued)) + queued
            self._action_buffer = deque(queued[-(latency + 1) :], maxlen=latency + 1)
        if w >= 1.0:
            self._live = None

    def set_live_shift(self, plan: dict[str, Any] | None, seed: Any = None) -> None:
        """Plan a shift that starts mid-episode (``{"shift", "at_s", "ramp_s"}``; None: no
        plan) for every episode from the next reset on.  With ``seed`` the episode under way
        takes it too, its values drawn from a stream of that seed (a plan made mid-run)."""
        if plan is not None:
            if plan.get("shift") not in self.LIVE_SHIFTS:
                raise ValueError(f"live_shift needs a shift in {self.LIVE_SHIFTS}: {plan!r}")
            plan = {"shift": plan["shift"], "at_s": float(plan.get("at_s", 0.0)),
                    "ramp_s": float(plan.get("ramp_s", 0.0))}  # fmt: skip
            if seed is not None and self._live_rng is None:
                self._live_rng = np.random.default_rng(seed)
        self.live_shift_plan = plan

    def _shift_keys(self) -> tuple[str, ...]:
        """The world values the current live shift changes (empty when none planned)."""
        from hybrid_snn_control.sim.randomization import SHIFTS

        plan = self.live_shift_plan
        return tuple(SHIFTS[plan["shift"]]) if plan else ()

    def _shift_metrics(self) -> dict[str, float]:
        if self._at_shift is None:
            return {}
        total, steps = self._at_shift
        after = self._step_count - steps
        return {
            "shift_step": float(steps),
            "score_before_shift": total / steps if steps else float("nan"),
            "score_after_shift": (self._reward_total - total) / after if after else float("nan"),
        }

    # ----------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        if "shift" in options:  # persists for the following episodes (vector-env autoreset)
            self.shift = self._check_shift(options["shift"])
        if "live_shift" in options:  # {"shift", "at_s", "ramp_s"} or None; persists too
            self.set_live_shift(options["live_shift"])
        rng = self.np_random
        self.world = sample_world(rng, self.ranges, self.randomize)
        self._apply_world(self.world)
        self._flicker_phase = float(rng.uniform(0, 2 * math.pi))
        mujoco.mj_resetData(self.model, self.data)
        self._reset_task(rng)  # places rover, target/goal, obstacles
        mujoco.mj_forward(self.model, self.data)
        self._set_light(0.0)
        latency = int(self.world["latency_steps"])
        self._action_buffer = deque([np.zeros(2)] * (latency + 1), maxlen=latency + 1)
        self._step_count = 0
        self._reward_total = 0.0
        self._live = None
        self._at_shift = None
        self.last_events = None
        if self.event_camera:
            self._events_sim.reset(seed=int(rng.integers(2**31)))
            frame = self._render_eye()
            self.last_events = self._events_sim.feed(frame, 0)
        # a planned mid-episode shift draws from its own stream, seeded last, so worlds
        # without a plan stay exactly what they were
        self._live_rng = (
            np.random.default_rng(int(rng.integers(2**63))) if self.live_shift_plan else None
        )
        obs = {"events": self._events_zero.copy(), "proprio": self._proprio()}
        info = {"world": dict(self.world), "shift": self.shift or "nominal"}
        return obs, info

    def step(self, action):
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (2,) or not np.all(np.isfinite(a)):
            raise ValueError(
                f"action must be 2 finite numbers (v, omega) in [-1, 1], got {action!r}"
            )
        a = np.clip(a, -1.0, 1.0)
        self._action_buffer.append(a)
        applied = self._action_buffer[0]  # the oldest: `latency` steps late
        self.data.ctrl[:] = wheel_speeds(applied) * np.asarray(self.world["motor_gain"])

        plan = self.live_shift_plan
        if plan is not None and self._at_shift is None and self.data.time >= plan["at_s"] - 1e-9:
            self.start_shift(plan["shift"], plan["ramp_s"], self._live_rng)
        elif self._live is not None:
            self._advance_shift(self.data.time)
        chunks = []
        done_steps = 0
        for end in self._chunk_ends:
            self._before_physics(self.data.time + (end - done_steps) / self.physics_hz)
            mujoco.mj_step(self.model, self.data, nstep=end - done_steps)
            done_steps = end
            if self.event_camera:
                t_us = round(self.data.time * 1e6)
                self._set_light(self.data.time)
                chunks.append(self._events_sim.feed(self._render_eye(), t_us))
        self._step_count += 1

        if self.event_camera:
            self.last_events = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
            events = self._event_counts(self.last_events)
        else:
            events = self._events_zero.copy()
        obs = {"events": events, "proprio": self._proprio()}
        reward, terminated, info = self._task_step()
        self._reward_total += reward
        truncated = (not terminated) and self._step_count >= self.episode_steps
        if terminated or truncated:
            info["episode_metrics"] = {**self._episode_metrics(), **self._shift_metrics()}
        return obs, float(reward), bool(terminated), bool(truncated), info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        if self._view_renderer is None:
            self._view_renderer = self._make_renderer(self.render_height, self.render_width)
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)
        self._view_renderer.update_scene(self.data, camera=self._overview)
        return self._view_renderer.render()

    def close(self) -> None:
        for r in (self._renderer, self._view_renderer):
            if r is not None:
                r.close()
        self._renderer = self._view_renderer = None

    # ----------------------------------------------------------------- helpers
    def _render_eye(self) -> np.ndarray:
        """Render the forward camera at the current state; kept in ``camera_frame``."""
        r = self._camera_renderer()
        # mj_step leaves positions one physics step behind the integrated state
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)
        r.update_scene(self.data, camera=self._eye)
        self.camera_frame = r.render()
        return self.camera_frame

    def _event_counts(self, events: np.ndarray) -> np.ndarray:
        """[2, H, W] float32 counts, ON then OFF: ``events.encoders.event_frame``'s layout.

        Counted here with ``np.bincount`` so that env workers do not import torch (seconds
        per worker); a test checks it equals ``event_frame``.
        """
        h, w = self.camera_height, self.camera_width
        flat = (events["p"] < 0).astype(np.int64) * (h * w) + events["y"].astype(np.int64) * w
        flat += events["x"]
        counts = np.bincount(flat, minlength=2 * h * w).astype(np.float32)
        return counts.reshape(2, h, w)

    def _proprio(self) -> np.ndarray:
        s = self.data.sensordata
        out = np.empty(len(PROPRIO_NAMES), np.float32)
        out[0] = s[self._wheel_vel_adr[0]] / WHEEL_SPEED_MAX_RADPS
        out[1] = s[self._wheel_vel_adr[1]] / WHEEL_SPEED_MAX_RADPS
        out[2:5] = s[self._gyro_adr : self._gyro_adr + 3]
        out[5:8] = s[self._accel_adr : self._accel_adr + 3] / GRAVITY_MPS2
        return out

    @property
    def sim_time_s(self) -> float:
        """Simulation time since reset (s); event timestamps are this in µs."""
        return float(self.data.time)

    def rover_pose(self) -> tuple[float, float, float]:
        """Ground-truth (x_m, y_m, yaw_rad) of the chassis."""
        q = self.data.qpos
        w, x, y, z = q[3:7]
        yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
        return float(q[0]), float(q[1]), yaw

    def set_rover_pose(self, x_m: float, y_m: float, yaw_rad: float) -> None:
        self.data.qpos[0:3] = [x_m, y_m, 0.05]
        self.data.qpos[3:7] = [math.cos(yaw_rad / 2), 0.0, 0.0, math.sin(yaw_rad / 2)]

    def rover_contacts(self, other_geoms: np.ndarray) -> bool:
        """Whether any rover geom touches a geom flagged in the bool array ``other_geoms``."""
        n = self.data.ncon
        if n == 0:
            return False
        g = self.data.contact.geom[:n]
        hit = (self._rover_geom[g[:, 0]] & other_geoms[g[:, 1]]) | (
            self._rover_geom[g[:, 1]] & other_geoms[g[:, 0]]
        )
        return bool(hit.any())

    # ----------------------------------------------------------------- task hooks
    def _reset_task(self, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def _before_physics(self, t_end_s: float) -> None:
        """Move scripted things (the target) to where they are at ``t_end_s``."""

    def _task_step(self) -> tuple[float, bool, dict[str, Any]]:
        raise NotImplementedError

    def _episode_metrics(self) -> dict[str, float]:
        raise NotImplementedError

    def expert_action(self) -> np.ndarray:
        """Privileged expert: the action it takes now, from ground truth."""
        raise NotImplementedError

    #: names of :meth:`privileged_state`'s entries (none for a task without them)
    privileged_names: ClassVar[tuple[str, ...]] = ()

    def privileged_state(self) -> np.ndarray:
        """Ground-truth task state now, float32 ``[len(privileged_names)]``: training-only
        labels for auxiliary heads; never an input of the deployed policy."""
        return np.zeros(0, np.float32)
