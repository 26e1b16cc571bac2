"""Navigation: drive down a corridor to a goal past random obstacles, without collisions."""

from __future__ import annotations

import math
from typing import Any

import mujoco
import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from hybrid_snn_control.sim.rover_env import OMEGA_MAX_RADPS, V_MAX_MPS, RoverEnv, wrap_angle

CELL_M = 0.05
X_RANGE_M = (-0.1, 8.1)  # corridor interior
Y_RANGE_M = (-0.9, 0.9)
ROVER_RADIUS_M = 0.14  # half-diagonal of the chassis footprint, wheels included
GOAL_X_M = 7.6
_LAYOUT_TRIES = 20  # obstacle layouts drawn before a reset gives up (one almost always)
GOAL_RADIUS_M = 0.3
OBSTACLE_HEIGHT_M = 0.15
N_OBSTACLE_SLOTS = 8
COLLISION_GAP_S = 0.5
_NEIGHBOURS = [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0)]


def geodesic_field(free: np.ndarray, cost: np.ndarray, goal: tuple[int, int]) -> np.ndarray:
    """Cost-weighted shortest-path length (m) from every free cell to ``goal`` (8-connected).

    Dijkstra (scipy.sparse.csgraph) on the grid graph; an edge costs its length times the
    mean cell cost of its ends.  Blocked or unreachable cells get ``inf``.
    """
    ni, nj = free.shape
    index = np.arange(free.size).reshape(free.shape)
    rows, cols, weights = [], [], []
    for di, dj in _NEIGHBOURS:
        a = (slice(max(-di, 0), ni - max(di, 0)), slice(max(-dj, 0), nj - max(dj, 0)))
        b = (slice(max(di, 0), ni - max(-di, 0)), slice(max(dj, 0), nj - max(-dj, 0)))
        ok = free[a] & free[b]
        rows.append(index[a][ok])
        cols.append(index[b][ok])
        weights.append(CELL_M * math.hypot(di, dj) * 0.5 * (cost[a][ok] + cost[b][ok]))
    graph = sparse.csr_matrix(
        (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
        shape=(free.size, free.size),
    )
    dist = csgraph.dijkstra(graph, directed=False, indices=int(index[goal]))
    dist = dist.reshape(free.shape)
    dist[~free] = np.inf
    return dist


class NavigationEnv(RoverEnv):
    """Reach the end of an obstacle corridor by event camera (``hybrid_snn_control/Navigation-v0``).

    ## Description
    The rover starts at the west end of an 8 m x 1.8 m walled corridor and must reach a
    green goal post near the east end (within 0.3 m) without touching the walls or the 3-6
    box/cylinder obstacles placed at random along the way.  It sees the world through a
    simulated event camera plus wheel and IMU proprioception.

    ## Action Space
    ``Box(-1, 1, (2,), float32)``: normalized (v, omega), as in Pursuit-v0 (0.6 m/s,
    4 rad/s, wheel limit 22 rad/s, latency, per-wheel motor gain).

    ## Observation Space
    ``Dict``: ``events`` (2, H, W) float32 event counts of the control step [ON, OFF];
    ``proprio`` (8,) float32 wheel speeds / 22 rad/s, gyro (rad/s), accelerometer / 9.81.

    ## Rewards
    Progress along the shortest obstacle-free path (metres of geodesic distance gained this
    step), -0.5 per collision (a rover geom touching a wall or obstacle after >= 0.5 s
    without contact), -0.001 per step, +1 on reaching the goal.

    ## Starting State
    Rover at x = 0.35 m, y ~ U(-0.4, 0.4) m, heading ~ U(-0.3, 0.3) rad; goal at
    x = 7.6 m, y ~ U(-0.5, 0.5) m; ``obstacle_count`` obstacles of half-width
    ``obstacle_radius_m`` spread over x in [1.3, 6.9] m, y ~ U(-0.55, 0.55) m (a gap of
    >= 0.45 m always remains).  The rest of the world is drawn as in Pursuit-v0.

    ## Episode End
    Terminated when the goal is reached; truncated after ``episode_s`` (default 30 s).
    ``info["episode_metrics"]`` on the last step: ``success`` (0/1), ``time_s``,
    ``collisions``, ``progress`` (fraction of the path covered) and
    ``normalized_score`` = (success ? 0.5 + 0.5 * min(1, t_ref / time_s) : 0.5 * progress)
    * 0.8^collisions, with t_ref the path length at 0.6 m/s.

    ## Arguments
    As Pursuit-v0 (without ``follow_distance_m``); ``fast_target`` is not a shift here.

    ## Version History
    * v0: first version.
    """

    asset = "navigation.xml"
    default_episode_s = 30.0

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        m = self.model
        self._obstacle_bodies = [m.body(f"obstacle{i}").id for i in range(N_OBSTACLE_SLOTS)]
        self._obstacle_geoms = [m.geom(f"obstacle{i}").id for i in range(N_OBSTACLE_SLOTS)]
        self._goal_body = m.body("goal").id
        self._blocking = np.zeros(m.ngeom, bool)
        self._blocking[self._wall_geoms + self._obstacle_geoms] = True
        xs = np.arange(X_RANGE_M[0] + CELL_M / 2, X_RANGE_M[1], CELL_M)
        ys = np.arange(Y_RANGE_M[0] + CELL_M / 2, Y_RANGE_M[1], CELL_M)
        self._grid_x, self._grid_y = np.meshgrid(xs, ys, indexing="ij")
        self.obstacles: list[tuple[float, float, float]] = []

    @classmethod
    def supported_shifts(cls) -> tuple[str, ...]:
        return ("dim", "flicker", "slippery", "noisy_sensor", "laggy", "heavy")

    # ------------------------------------------------------------ layout + planning
    def _place_obstacles(self, rng: np.random.Generator) -> None:
        n = int(self.world["obstacle_count"])
        half = self.world["obstacle_radius_m"]
        xs = np.linspace(1.3, 6.9, n) + rng.uniform(-0.2, 0.2, size=n) * (5.6 / max(n - 1, 1))
        ys = rng.uniform(-0.55, 0.55, size=n)
        self.obstacles = [(float(x), float(y), half) for x, y in zip(xs, ys)]
        m = self.model
        for k, (b, g) in enumerate(zip(self._obstacle_bodies, self._obstacle_geoms)):
            if k < n:
                m.body_pos[b] = [xs[k], ys[k], OBSTACLE_HEIGHT_M]
                if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_BOX:
                    m.geom_size[g] = [half, half, OBSTACLE_HEIGHT_M]
                else:
                    m.geom_size[g] = [half, OBSTACLE_HEIGHT_M, 0.0]
                # collision bounds follow the size (else a grown obstacle is missed)
                m.geom_aabb[g] = [0.0, 0.0, 0.0, half, half, OBSTACLE_HEIGHT_M]
                m.geom_rbound[g] = math.sqrt(2 * half**2 + OBSTACLE_HEIGHT_M**2)
            else:  # parked under the floor (static-static pairs are not collided)
                m.body_pos[b] = [xs[0] if n else 2.0, 0.0, -1.0]

    def _plan(self) -> None:
        """Free space, clearance and the geodesic distance-to-goal field (privileged)."""
        gx, gy = self._grid_x, self._grid_y
        blocked = (np.abs(gy) > Y_RANGE_M[1] - ROVER_RADIUS_M) | (
            gx < X_RANGE_M[0] + ROVER_RADIUS_M
        )
        blocked |= gx > X_RANGE_M[1] - ROVER_RADIUS_M
        for x, y, half in self.obstacles:  # obstacle footprint (square bound) + rover radius
            blocked |= (np.abs(gx - x) < half + ROVER_RADIUS_M) & (
                np.abs(gy - y) < half + ROVER_RADIUS_M
            )
        free = ~blocked
        clearance = ndimage.distance_transform_edt(free) * CELL_M
        cost = 1.0 + 3.0 * np.clip(0.25 - clearance, 0.0, None) / 0.25
        self._clearance = clearance
        self._dist = geodesic_field(free, cost, self._cell(GOAL_X_M, self._goal_y))
        # for cells inside obstacles/walls: index of the nearest free cell
        _, idx = ndimage.distance_transform_edt(blocked, return_indices=True)
        self._nearest_free = idx

    def _cell(self, x: float, y: float) -> tuple[int, int]:
        i = int(np.clip((x - X_RANGE_M[0]) / CELL_M, 0, self._grid_x.shape[0] - 1))
        j = int(np.clip((y - Y_RANGE_M[0]) / CELL_M, 0, self._grid_x.shape[1] - 1))
        return i, j

    def _free_cell(self, x: float, y: float) -> tuple[int, int]:
        i, j = self._cell(x, y)
        return int(self._nearest_free[0, i, j]), int(self._nearest_free[1, i, j])

    def path_distance(self) -> float:
        """Ground-truth remaining path length to the goal (m, cost-weighted)."""
        x, y, _ = self.rover_pose()
        return float(self._dist[self._free_cell(x, y)])

    # ------------------------------------------------------------ task hooks
    def _reset_task(self, rng: np.random.Generator) -> None:
        self._goal_y = float(rng.uniform(-0.5, 0.5))
        self.model.body_pos[self._goal_body] = [GOAL_X_M, self._goal_y, 0.2]
        # the gap rule keeps the corridor passable, but the last obstacle's jitter can put
        # it on the goal itself (seen in gymnasium's check_env): draw that layout again. A
        # world that had a path never reaches the second draw, so no such world changes.
        for _ in range(_LAYOUT_TRIES):
            self._place_obstacles(rng)
            self._plan()
            self.set_rover_pose(0.35, float(rng.uniform(-0.4, 0.4)), float(rng.uniform(-0.3, 0.3)))
            self._start_dist = self.path_distance()
            if math.isfinite(self._start_dist):
                break
        else:
            raise RuntimeError(
                f"no path to the goal in {_LAYOUT_TRIES} layouts, last {self.obstacles}"
            )
        self._prev_dist = self._start_dist
        self._since_contact_s = math.inf
        self._collisions = 0
        self._success = False

    def _task_step(self) -> tuple[float, bool, dict[str, Any]]:
        dist = self.path_distance()
        reward = (self._prev_dist - dist) - 0.001
        self._prev_dist = dist
        contact = self.rover_contacts(self._blocking)
        if contact:
            # bumps less than COLLISION_GAP_S apart (bouncing, pushing) are one collision
            if self._since_contact_s > COLLISION_GAP_S:
                self._collisions += 1
                reward -= 0.5
            self._since_contact_s = 0.0
        else:
            self._since_contact_s += 1.0 / self.control_hz
        x, y, _ = self.rover_pose()
        self._success = math.hypot(x - GOAL_X_M, y - self._goal_y) < GOAL_RADIUS_M
        if self._success:
            reward += 1.0
        info = {
            "path_distance_m": dist,
            "collisions": self._collisions,
            "is_success": self._success,
        }
        return reward, self._success, info

    def _episode_metrics(self) -> dict[str, float]:
        time_s = self._step_count / self.control_hz
        progress = float(np.clip(1.0 - self._prev_dist / self._start_dist, 0.0, 1.0))
        if self._success:
            t_ref = self._start_dist / V_MAX_MPS
            score = 0.5 + 0.5 * min(1.0, t_ref / time_s)
        else:
            score = 0.5 * progress
        return {
            "normalized_score": float(score * 0.8**self._collisions),
            "success": float(self._success),
            "time_s": float(time_s),
            "collisions": float(self._collisions),
            "progress": progress,
        }

    def expert_action(self) -> np.ndarray:
        """Follow the geodesic field 0.4 m ahead; slow down near obstacles (privileged)."""
        x, y, yaw = self.rover_pose()
        i, j = self._free_cell(x, y)
        ni, nj = self._dist.shape
        for _ in range(8):  # steepest descent, 8 cells = 0.4 m look-ahead
            best, nxt = self._dist[i, j], None
            for di, dj in _NEIGHBOURS:
                a, b = i + di, j + dj
                if 0 <= a < ni and 0 <= b < nj and self._dist[a, b] < best:
                    best, nxt = self._dist[a, b], (a, b)
            if nxt is None:
                break
            i, j = nxt
        tx, ty = self._grid_x[i, j], self._grid_y[i, j]
        if math.hypot(GOAL_X_M - x, self._goal_y - y) < 0.6:
            tx, ty = GOAL_X_M, self._goal_y
        b = float(wrap_angle(math.atan2(ty - y, tx - x) - yaw))
        omega = 3.0 * b
        clear = float(self._clearance[self._free_cell(x, y)])
        speed = (
            0.85 * V_MAX_MPS * max(math.cos(b), 0.0) ** 2 * float(np.clip(clear / 0.3, 0.4, 1.0))
        )
        if abs(b) > 1.2:
            speed = 0.0
        return np.clip([speed / V_MAX_MPS, omega / OMEGA_MAX_RADPS], -1.0, 1.0).astype(np.float32)
