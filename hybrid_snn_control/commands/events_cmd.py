"""``hsc events preview``: a PNG of a frame | its simulated events | the event-frame encoding.

The scene is a synthetic clip (a moving textured shape, see ``events/synthetic.py``) or a
``.npy`` file of frames ``[T, H, W]`` / ``[T, H, W, 3]`` (uint8 or float in [0, 1]).
Events shown are those of the last ``--window-ms`` before the shown frame: ON red, OFF blue.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("events", help="event camera tools (simulator preview)")
    esub = p.add_subparsers(dest="events_command", metavar="EVENTS_COMMAND")
    pv = esub.add_parser("preview", help="write a PNG: frame | events | event-frame encoding")
    pv.add_argument("--out", default="events_preview.png", help="PNG file to write")
    pv.add_argument("--frames", default=None, help=".npy of frames (default: synthetic scene)")
    pv.add_argument("--fps", type=float, default=500.0, help="frame rate of --frames / scene")
    pv.add_argument(
        "--motion", default="right", help="synthetic scene motion (right, rotate_cw, ...)"
    )
    pv.add_argument("--size", default="128x96", help="synthetic sensor WxH")
    pv.add_argument("--preset", default="clean", help="simulator preset: clean, noisy, esim")
    pv.add_argument("--window-ms", type=float, default=20.0, help="events shown before frame")
    pv.add_argument("--scale", type=int, default=3, help="pixel upscaling of the PNG")
    pv.add_argument("--seed", type=int, default=0)
    pv.set_defaults(func=run_preview)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _load_or_render(args):
    import numpy as np

    if args.frames:
        frames = np.load(args.frames)
        if frames.ndim not in (3, 4) or frames.shape[0] < 2:
            raise ValueError(
                f"{args.frames}: need [T>=2, H, W] or [T, H, W, 3]; got {frames.shape}"
            )
        times = np.round(np.arange(frames.shape[0]) * 1e6 / args.fps).astype(np.int64)
        return frames, times
    from hybrid_snn_control.events.synthetic import MOTION_CLASSES, SyntheticConfig, render_clip

    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must look like 128x96; got {args.size!r}") from None
    if args.motion not in MOTION_CLASSES:
        raise ValueError(f"--motion must be one of {MOTION_CLASSES}; got {args.motion!r}")
    cfg = SyntheticConfig(
        num_classes=len(MOTION_CLASSES), sensor_size=(w, h), frame_rate_hz=args.fps
    )
    return render_clip(MOTION_CLASSES.index(args.motion), cfg, np.random.default_rng(args.seed))


def preview_image(frames, times_us, preset: str, window_us: int, seed: int = 0, scale: int = 3):
    """The preview as an RGB uint8 array plus statistics (used by the command and tests)."""
    import numpy as np

    from hybrid_snn_control.events import EventCameraSimulator, SimulatorParams, slice_time
    from hybrid_snn_control.events.encoders import event_frame
    from hybrid_snn_control.events.simulator import to_gray

    gray0 = to_gray(frames[0])
    h, w = gray0.shape
    sim = EventCameraSimulator(w, h, SimulatorParams.preset(preset), seed=seed)
    events = np.concatenate([sim.feed(f, t) for f, t in zip(frames, times_us)])
    k = len(frames) // 2  # show the middle frame
    t_show = int(times_us[k])
    shown = slice_time(events, t_show - window_us, t_show + 1)

    g = to_gray(frames[k])
    g = g.astype(np.float64) / 255.0 if g.dtype == np.uint8 else g
    panel_frame = np.repeat((g * 255).astype(np.uint8)[..., None], 3, axis=2)
    ef = event_frame(shown, (w, h)).numpy()
    panel_events = np.full((h, w, 3), 255, np.uint8)
    on, off = ef[0] > 0, ef[1] > 0
    panel_events[on] = (220, 30, 30)
    panel_events[off] = (30, 60, 220)
    panel_events[on & off] = (160, 40, 160)
    diff = ef[0] - ef[1]
    m = max(float(np.abs(diff).max()), 1.0)
    norm = diff / m  # -1..1: blue .. white .. red
    panel_enc = np.empty((h, w, 3), np.uint8)
    panel_enc[..., 0] = (255 * np.clip(1 + np.minimum(norm, 0), 0, 1)).astype(np.uint8)
    panel_enc[..., 2] = (255 * np.clip(1 - np.maximum(norm, 0), 0, 1)).astype(np.uint8)
    panel_enc[..., 1] = (255 * (1 - np.abs(norm))).astype(np.uint8)
    gap = np.full((h, 2, 3), 128, np.uint8)
    img = np.concatenate([panel_frame, gap, panel_events, gap, panel_enc], axis=1)
    img = img.repeat(scale, axis=0).repeat(scale, axis=1)
    stats = {
        "events": int(events.size),
        "events_shown": int(shown.size),
        "on_shown": int((shown["p"] > 0).sum()),
        "off_shown": int((shown["p"] < 0).sum()),
        "duration_s": float((times_us[-1] - times_us[0]) * 1e-6),
        "sensor": (w, h),
    }
    return img, stats


def run_preview(args: argparse.Namespace) -> int:
    import imageio.v3 as iio

    frames, times = _load_or_render(args)
    img, st = preview_image(
        frames, times, args.preset, int(args.window_ms * 1000), args.seed, args.scale
    )
    iio.imwrite(args.out, img)
    rate = st["events"] / max(st["duration_s"], 1e-9) / 1e6
    print(
        f"wrote {args.out}: frame | events (ON red, OFF blue, last {args.window_ms:g} ms) | "
        f"event frame (ON-OFF); sensor {st['sensor'][0]}x{st['sensor'][1]}, "
        f"{st['events']} events in {st['duration_s']:.3f} s ({rate:.3f} Mev/s), "
        f"shown {st['on_shown']} ON / {st['off_shown']} OFF"
    )
    return 0
