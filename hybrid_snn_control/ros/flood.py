"""Flood probes: policy_node + actuator_node under hostile input rates (issue 18, finding 4).

:func:`run_flood` starts the two nodes in one child process (as ``hsc bringup`` runs them),
a flooder in a second child process, and records here, for ``seconds`` of flood: when the
actuator published each ``cmd_vel`` (its DDS source timestamp: the rate and the largest
gap, what a base driver would see), when it arrived here (the largest arrival gap, which
also holds this recorder's own delays: on a loaded 2-core machine a 330 ms arrival gap
was measured while the actuator's largest publication gap was 19 ms), the stack's
resident memory (from
``/proc``, sampled every 0.2 s: the peak, and what is left ``settle_s`` after the flood)
and the policy's last ``~/status`` (its drop counters).
Every child runs in its own session and is killed by process group.

Floods (``KINDS``): ``empty`` 10,000 empty packets/s; ``big`` 100 valid packets/s of
100,000 events (10 M ev/s); ``huge`` eight 50 MB packets, one every 0.5 s, then quiet;
``mb`` 1.3 MB packets at 50/s (above Fast DDS's shared-memory segment); ``params``
600 ``spiking_ratio`` set-parameter requests/s (0.25 ↔ 0.75, not waiting for answers;
``answered`` counts the answers).  Packets are stamped with the wall clock, like a
driver's.

    python -m hybrid_snn_control.ros.flood --kind empty --trigger events --seconds 20
    python -m hybrid_snn_control.ros.flood --kind big --fastdds-profile shipped default

The stack and the flooders run with Fast DDS's own settings (the nodes' default) or, with
``--fastdds-profile shipped``, with the opt-in profile ``config/fastdds.xml``.
``delivered`` counts the events of the packets that reached the node (sent minus those it
counted lost: sequence gaps, or the middleware's own count when that is larger).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["KINDS", "FloodResult", "run_flood"]

KINDS = ("empty", "big", "huge", "mb", "params", "none")
#: (events per packet, packets per second, packet limit) of each packet flood
FLOODS = {
    "empty": (0, 10_000.0, None),
    "big": (100_000, 100.0, None),
    "huge": (50_000_000 // 9, 2.0, 8),
    "mb": (145_000, 50.0, None),
    "none": (0, 0.0, 0),
}
PROFILES = ("default", "shipped")  # the Fast DDS profile of the flooder and the stack
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class FloodResult:
    """What one flood did to the stack."""

    kind: str
    trigger: str
    seconds: float
    sent: int
    answered: int | None  # params flood: set-parameter requests answered
    cmd_vel_hz: float  # publications in the flood window / seconds
    max_gap_ms: float  # between the actuator's publications (source timestamps)
    rss_before_mb: float
    rss_max_mb: float
    rss_growth_mb: float  # retained: RSS after the flood (and settle_s) − before
    rss_peak_growth_mb: float
    cmd_timeout_s: float
    status: dict = field(default_factory=dict)
    fastdds_profile: str = "default"
    #: events/s of the packets that reached the node (sent minus those counted lost)
    delivered_ev_per_s: float = 0.0
    #: between arrivals at the recorder (its own scheduling and the transport included)
    max_arrival_gap_ms: float = float("nan")

    def line(self) -> str:
        drops = {k: v for k, v in self.status.items() if k.startswith("dropped") and v}
        delivered = f"  delivered {self.delivered_ev_per_s / 1e6:.2f} M ev/s" * bool(
            FLOODS.get(self.kind, (0,))[0]
        )
        return (
            f"{self.kind:6s} trigger={self.trigger:6s} profile={self.fastdds_profile:7s} "
            f"sent {self.sent:7d}"
            + (f" (answered {self.answered})" if self.answered is not None else "")
            + f"  cmd_vel "
            f"{self.cmd_vel_hz:6.1f} Hz  max gap {self.max_gap_ms:6.1f} ms (arrival "
            f"{self.max_arrival_gap_ms:.1f})  RSS "
            f"{self.rss_before_mb:.0f} MB, peak +{self.rss_peak_growth_mb:.1f}, after "
            f"+{self.rss_growth_mb:.1f}  drops {drops}{delivered}"
        )


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE / 2**20
    except (OSError, IndexError, ValueError):
        return float("nan")


def random_packet(n: int = 20, t_us: int | None = None, seed: int = 0):
    """A valid PointCloud2 packet of ``n`` events for the shipped 32x32 policy, all at
    ``t_us`` (default: now)."""
    from hybrid_snn_control.events.arrays import EVENT_DTYPE
    from hybrid_snn_control.ros.event_msgs import events_to_pointcloud2

    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EVENT_DTYPE)
    ev["x"], ev["y"] = rng.integers(0, 32, n), rng.integers(0, 32, n)
    ev["t"] = time.time_ns() // 1000 if t_us is None else t_us
    ev["p"] = rng.choice(np.array([-1, 1], np.int8), n)
    return events_to_pointcloud2(ev, "event_camera")


def _flooder(ns: str, kind: str, seconds: float, ready: str) -> int:
    """Child: publish the flood on ``/<ns>/events`` for ``seconds``; print how many."""
    import rclpy

    if kind == "params":
        return _param_flooder(ns, seconds, ready)
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import PointCloud2

    rclpy.init()
    node = rclpy.create_node("flooder", namespace=ns)
    pub = node.create_publisher(PointCloud2, "events", qos_profile_sensor_data)
    clock = node.get_clock()
    n_events, rate, limit = FLOODS[kind]
    msg = random_packet(n_events) if n_events else random_packet(1)
    if not n_events:  # an empty packet: no points, valid layout
        msg.width, msg.row_step, msg.data = 0, 0, b""
    while not os.path.exists(ready):
        time.sleep(0.01)
    sent, t0 = 0, time.monotonic()
    # what is due is sent in a burst about every millisecond, then the process sleeps: a
    # 10 kHz flood without a core spinning on the clock (on 2 cores a spinning flooder
    # starved the stack it floods, and the recorder)
    while (now := time.monotonic()) - t0 < seconds:
        due = int((now - t0) * rate) + 1 if rate > 0 else 0
        due = due if limit is None else min(due, limit)
        while sent < due:
            msg.header.stamp = clock.now().to_msg()
            pub.publish(msg)
            sent += 1
        time.sleep(0.001)
    print(sent, flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


def _param_flooder(ns: str, seconds: float, ready: str, rate: float = 600.0) -> int:
    """Child: set ``spiking_ratio`` at ``rate`` requests/s; print how many were answered."""
    import rclpy
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.msg import ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    rclpy.init()
    node = rclpy.create_node("param_flooder", namespace=ns)
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    # a deep response queue: answers must not be overwritten here, on the client's side
    deep = QoSProfile(depth=10_000, reliability=ReliabilityPolicy.RELIABLE)
    client = node.create_client(SetParameters, "policy_node/set_parameters", qos_profile=deep)
    client.wait_for_service(timeout_sec=30)
    answered = [0]

    def done(_future) -> None:
        answered[0] += 1

    while not os.path.exists(ready):
        time.sleep(0.01)
    sent, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        if time.monotonic() >= t0 + sent / rate:
            ratio = 0.25 + 0.5 * (sent % 2)
            value = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=ratio)
            req = SetParameters.Request(
                parameters=[ParameterMsg(name="spiking_ratio", value=value)]
            )
            client.call_async(req).add_done_callback(done)
            sent += 1
        rclpy.spin_once(node, timeout_sec=0.0005)
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.01)
    print(answered[0], sent, flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


def _stack(ns: str, params_file: str) -> int:
    """Child: policy_node + actuator_node in one process, one executor."""
    from hybrid_snn_control.ros.actuator_node import ActuatorNode
    from hybrid_snn_control.ros.policy_node import PolicyNode
    from hybrid_snn_control.ros.runner import run_nodes

    args = ["hsc", "--ros-args", "-r", f"__ns:=/{ns}", "--params-file", params_file]
    return run_nodes([PolicyNode, ActuatorNode], args=args)


def _params(trigger: str, rate_hz: float, cmd_timeout: float) -> str:
    import yaml

    doc = {
        "/**/policy_node": {
            "ros__parameters": {
                "trigger": trigger,
                "rate_hz": rate_hz,
                "proprio_source": "none",
                "status_every_steps": 5,
            }
        },
        "/**/actuator_node": {
            "ros__parameters": {
                "rate_hz": rate_hz,
                "cmd_timeout": cmd_timeout,
                "max_linear_accel_mps2": 0.0,
                "max_angular_accel_rps2": 0.0,
            }
        },
    }
    fd, path = tempfile.mkstemp(prefix="hsc-flood-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(doc, f)
    return path


def _profile_env(profile: str) -> dict[str, str]:
    """The children's environment with the shipped Fast DDS profile, or with none."""
    from hybrid_snn_control.ros.middleware import (
        OPT_IN_VARIABLE,
        PROFILE_VARIABLES,
        use_shipped_fastdds_profile,
    )

    if profile not in PROFILES:
        raise ValueError(f"fastdds_profile must be one of {PROFILES}, got {profile!r}")
    drop = {*PROFILE_VARIABLES, OPT_IN_VARIABLE}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if profile == "shipped":
        use_shipped_fastdds_profile(env)
    return env


def _spawn(args: list[str], stdout=subprocess.DEVNULL, env=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hybrid_snn_control.ros.flood", *args],
        stdout=stdout,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )


def stop_process_group(proc: subprocess.Popen) -> None:
    """SIGINT to the child's process group (it runs in its own session), SIGKILL after 10 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def run_flood(
    kind: str,
    seconds: float = 20.0,
    trigger: str = "timer",
    rate_hz: float = 100.0,
    cmd_timeout: float = 0.25,
    settle_s: float = 3.0,
    fastdds_profile: str = "default",
) -> FloodResult:
    """Flood a fresh stack for ``seconds`` and measure it (see the module docstring).

    ``fastdds_profile``: ``default`` (Fast DDS's own settings, what the package's processes
    use unless ``HSC_FASTDDS_PROFILE=shipped``) or ``shipped`` (``config/fastdds.xml``)
    for the stack and the flooders."""
    if kind not in KINDS:
        raise ValueError(f"unknown flood {kind!r}; one of {', '.join(KINDS)}")
    import rclpy
    from geometry_msgs.msg import TwistStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    ns = f"flood_{kind}_{os.getpid()}_{time.monotonic_ns() % 10**6}"
    params = _params(trigger, rate_hz, cmd_timeout)
    ready = params + ".go"
    env = _profile_env(fastdds_profile)
    procs = [_spawn(["--stack", ns, params], env=env)]
    if trigger == "events":  # a steady driver: one packet per control period, besides the flood
        steady = ["--flooder", ns, "steady", str(seconds + 2 * settle_s + 30), ready]
        procs.append(_spawn(steady, env=env))
    flooder = _spawn(["--flooder", ns, kind, str(seconds), ready], stdout=subprocess.PIPE, env=env)
    procs.append(flooder)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    node = rclpy.create_node("flood_recorder", namespace=ns, context=ctx)
    ex.add_node(node)
    published: list[float] = []  # the actuator's clock (wall time, ns -> s)
    arrivals: list[float] = []  # this process's wall clock
    status: dict = {}
    qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)

    def on_cmd_vel(_msg, info) -> None:
        arrivals.append(time.time())
        published.append(info["source_timestamp"] * 1e-9)

    node.create_subscription(TwistStamped, "cmd_vel", on_cmd_vel, qos)
    node.create_subscription(
        String, "policy_node/status", lambda m: status.update(json.loads(m.data)), 10
    )
    rss: list[float] = []
    try:
        deadline = time.monotonic() + 60
        while not arrivals:
            ex.spin_once(timeout_sec=0.05)
            if time.monotonic() > deadline or procs[0].poll() is not None:
                raise RuntimeError(f"the stack did not start (rc {procs[0].poll()})")
        end = time.monotonic() + settle_s
        while time.monotonic() < end:
            ex.spin_once(timeout_sec=0.01)
        before = _rss_mb(procs[0].pid)
        open(ready, "w").close()
        t0, wall0 = time.monotonic(), time.time()
        next_rss = t0
        while time.monotonic() - t0 < seconds + settle_s:
            ex.spin_once(timeout_sec=0.005)
            if time.monotonic() >= next_rss:
                rss.append(_rss_mb(procs[0].pid))
                next_rss += 0.2
            if procs[0].poll() is not None:
                raise RuntimeError(f"the stack died under the {kind} flood (rc {procs[0].poll()})")
        out, _ = flooder.communicate(timeout=30)
        counts = [int(v) for v in out.split()] or [0]
        sent = counts[-1]
        answered = counts[0] if len(counts) == 2 else None
        # a sample the middleware lost is also a sequence gap once a later one arrives: the
        # larger count, not the sum
        lost = max(int(status.get(k, 0)) for k in ("dropped_in_transport", "lost_in_middleware"))
        per_packet = FLOODS.get(kind, (0,))[0]

        def window(times: list[float]) -> np.ndarray:
            t = np.sort(np.asarray(times))
            return t[(t >= wall0) & (t <= wall0 + seconds)]

        def max_gap_ms(t: np.ndarray) -> float:
            return float(np.diff(t).max() * 1e3) if t.size > 1 else 1e3 * seconds

        sent_at, arrived_at = window(published), window(arrivals)
        return FloodResult(
            kind=kind,
            trigger=trigger,
            seconds=seconds,
            sent=sent,
            answered=answered,
            cmd_vel_hz=float(sent_at.size / seconds),
            max_gap_ms=max_gap_ms(sent_at),
            rss_before_mb=before,
            rss_max_mb=float(np.nanmax(rss)),
            rss_growth_mb=float(rss[-1] - before),
            rss_peak_growth_mb=float(np.nanmax(rss) - before),
            cmd_timeout_s=cmd_timeout,
            status={k: v for k, v in status.items() if isinstance(v, int | float)},
            fastdds_profile=fastdds_profile,
            delivered_ev_per_s=max(sent - lost, 0) * per_packet / seconds,
            max_arrival_gap_ms=max_gap_ms(arrived_at),
        )
    finally:
        for p in procs:
            stop_process_group(p)
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
        for path in (params, ready):
            if os.path.exists(path):
                os.unlink(path)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--stack":
        return _stack(argv[1], argv[2])
    if argv and argv[0] == "--flooder":
        kind, seconds, ready = argv[2], float(argv[3]), argv[4]
        if kind == "steady":
            return _steady(argv[1], seconds, ready)
        return _flooder(argv[1], kind, seconds, ready)
    p = argparse.ArgumentParser(prog="python -m hybrid_snn_control.ros.flood")
    p.add_argument("--kind", nargs="+", default=["empty", "big", "mb", "huge"], choices=KINDS)
    p.add_argument("--trigger", nargs="+", default=["timer"], choices=("timer", "events"))
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--rate-hz", type=float, default=100.0)
    p.add_argument(
        "--fastdds-profile", nargs="+", default=["default"], choices=PROFILES,
        help="default: Fast DDS's own settings (the nodes' default); shipped: config/fastdds.xml",
    )  # fmt: skip
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    results = []
    for profile in a.fastdds_profile:
        for trigger in a.trigger:
            for kind in a.kind:
                r = run_flood(kind, a.seconds, trigger, a.rate_hz, fastdds_profile=profile)
                results.append(asdict(r))
                print(r.line(), flush=True)
    if a.json:
        print(json.dumps(results, indent=1))
    return 0


def _steady(ns: str, seconds: float, ready: str) -> int:
    """Child: the regular driver of ``trigger: events`` (20 events per 10 ms packet)."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import PointCloud2

    rclpy.init()
    node = rclpy.create_node("steady_driver", namespace=ns)
    pub = node.create_publisher(PointCloud2, "events", qos_profile_sensor_data)
    clock = node.get_clock()
    msg = random_packet(20)

    def send() -> None:
        msg.header.stamp = clock.now().to_msg()
        pub.publish(msg)

    node.create_timer(0.01, send)
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
