"""``hsc doctor``: what this machine can run (torch, MuJoCo rendering, rclpy) and why not."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check the installation: torch, MuJoCo rendering, rclpy")
    p.set_defaults(func=run)


def check_all() -> dict[str, str]:
    """Each component → a one-line status (``ok ...`` or ``missing/failed: why``)."""
    os.environ.setdefault("MUJOCO_GL", "egl")  # must be set before mujoco is imported
    out: dict[str, str] = {"python": platform.python_version()}
    for mod in ("numpy", "torch", "gymnasium", "mujoco", "onnxruntime"):
        try:
            m = importlib.import_module(mod)
            out[mod] = f"ok {getattr(m, '__version__', '')}"
        except Exception as exc:  # noqa: BLE001 - report, do not crash
            out[mod] = f"missing: {exc}"
    out["mujoco_render"] = _check_render()
    out["rclpy"] = _check_rclpy()
    from hybrid_snn_control.paths import share_dirs

    out["share_dirs"] = ", ".join(str(p) for p in share_dirs())
    return out


def _check_render() -> str:
    try:
        import mujoco

        model = mujoco.MjModel.from_xml_string(
            "<mujoco><visual><quality shadowsize='0' offsamples='0'/></visual><worldbody>"
            "<light pos='0 0 2' castshadow='false'/><geom type='box' size='.1 .1 .1'/>"
            "<camera name='c' pos='0 -1 0.2' xyaxes='1 0 0 0 0 1'/></worldbody></mujoco>"
        )
        data = mujoco.MjData(model)
        with mujoco.Renderer(model, 64, 64) as r:
            t0 = time.perf_counter()
            r.update_scene(data, camera="c")
            r.render()
            dt = time.perf_counter() - t0
        return f"ok MUJOCO_GL={os.environ['MUJOCO_GL']} 64x64 frame {dt * 1e3:.1f} ms"
    except Exception as exc:  # noqa: BLE001
        return f"failed (MUJOCO_GL={os.environ.get('MUJOCO_GL')}): {exc}"


def _check_rclpy() -> str:
    try:
        import rclpy

        ctx = rclpy.Context()
        rclpy.init(context=ctx)
        rclpy.shutdown(context=ctx)
        return f"ok rmw={os.environ.get('RMW_IMPLEMENTATION', 'default')}"
    except Exception as exc:  # noqa: BLE001
        return f"missing: {exc} (install the [ros] extra, or source a ROS 2 distro)"


def run(args: argparse.Namespace) -> int:
    status = check_all()
    width = max(map(len, status))
    for k, v in status.items():
        print(f"{k:<{width}}  {v}")
    bad = [k for k, v in status.items() if v.startswith(("missing", "failed"))]
    return 1 if bad else 0
