"""``hsc sim preview``: pictures and a clip of an expert episode, to see what a policy sees.

Writes ``frame_XXXX.png`` stills and ``episode.gif``; each image is the rover's camera
(RGB), the event view of the same control step (ON green, OFF magenta, on black) and an
overview of the arena, side by side.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="simulation harness tools (preview)")
    sim_sub = p.add_subparsers(dest="sim_command", metavar="SIM_COMMAND", required=True)
    pv = sim_sub.add_parser("preview", help="PNGs and a GIF of an expert episode")
    pv.add_argument("--env", default="Pursuit", choices=["Pursuit", "Navigation"])
    pv.add_argument("--seed", type=int, default=0)
    pv.add_argument("--shift", default=None, help="held-out shift (dim, flicker, ...)")
    pv.add_argument("--steps", type=int, default=250, help="control steps to run (50 Hz)")
    pv.add_argument("--size", type=int, default=64, help="event camera width = height")
    pv.add_argument("--subframes", type=int, default=2)
    pv.add_argument("--stills", type=int, default=4, help="number of PNG stills")
    pv.add_argument("--gif-every", type=int, default=2, help="GIF keeps every n-th step")
    pv.add_argument("--out", default="sim_preview", help="output directory")
    pv.set_defaults(func=run_preview)


def event_view(events, scale: int = 1):
    """2 x H x W counts -> H x W x 3 uint8 image (ON green, OFF magenta, both: white)."""
    import numpy as np

    on, off = events[0] > 0, events[1] > 0
    img = np.zeros((*on.shape, 3), np.uint8)
    img[on] = (40, 230, 80)
    img[off] = (230, 40, 200)
    img[on & off] = (255, 255, 255)
    return np.repeat(np.repeat(img, scale, 0), scale, 1)


def composite(rgb, events, overview):
    """Camera | events | overview, each camera image scaled to the overview's height."""
    import numpy as np

    h = overview.shape[0]
    scale = max(1, h // rgb.shape[0])
    cam = np.repeat(np.repeat(rgb, scale, 0), scale, 1)
    ev = event_view(events, scale)
    pad = ((0, h - cam.shape[0]), (0, 0), (0, 0))
    gap = np.full((h, 4, 3), 255, np.uint8)
    return np.concatenate([np.pad(cam, pad), gap, np.pad(ev, pad), gap, overview], axis=1)


def run_preview(args: argparse.Namespace) -> int:
    import gymnasium as gym
    import imageio.v2 as imageio

    import hybrid_snn_control.sim  # noqa: F401  (registers the envs)

    if args.steps < 1 or args.stills < 0 or args.gif_every < 1:
        raise ValueError("--steps and --gif-every must be >= 1, --stills >= 0")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = gym.make(
        f"hybrid_snn_control/{args.env}-v0",
        render_mode="rgb_array",
        camera_width=args.size,
        camera_height=args.size,
        subframes=args.subframes,
        shift=args.shift,
    )
    obs, info = env.reset(seed=args.seed)
    base = env.unwrapped
    still_at = {round(k * (args.steps - 1) / max(args.stills - 1, 1)) for k in range(args.stills)}
    gif, written, metrics = [], [], None
    for step in range(args.steps):
        obs, _, terminated, truncated, info = env.step(base.expert_action())
        frame = composite(base.camera_frame, obs["events"], env.render())
        if step % args.gif_every == 0:
            gif.append(frame)
        if step in still_at:
            path = out / f"frame_{step:04d}.png"
            imageio.imwrite(path, frame)
            written.append(path)
        if terminated or truncated:
            metrics = info.get("episode_metrics")
            break
    gif_path = out / "episode.gif"
    imageio.mimsave(gif_path, gif, duration=1000 * args.gif_every / base.control_hz, loop=0)
    env.close()
    for p in [*written, gif_path]:
        print(p)
    world = (
        {k: v for k, v in info.items() if k != "episode_metrics"} if metrics is None else metrics
    )
    print(f"{args.env} seed {args.seed} shift {args.shift or 'nominal'}: {world}")
    return 0
