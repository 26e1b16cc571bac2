"""Events: event arrays, a simulator from frames, encoders for policies, codecs, file readers.

Plain numpy / torch (no rclpy, no MuJoCo).  Public API (stable; arguments may be added)::

    from hybrid_snn_control.events import EVENT_DTYPE, EventCameraSimulator, SimulatorParams
    params = SimulatorParams.preset("clean")   # or "noisy", "esim"; frozen dataclass,
                                               # change with dataclasses.replace(params, ...)
    sim = EventCameraSimulator(width=64, height=64, params=params, seed=0)
    events = sim.feed(frame, t_us)   # frame HxW or HxWx3, uint8 or float in [0, 1];
                                     # EVENT_DTYPE array sorted by t; the first frame only
                                     # initializes and returns no events
    sim.set_params(params)           # takes effect from the next frame (domain randomization)
    sim.reset(seed=None)             # forget the reference image (episode start)

    from hybrid_snn_control.events.encoders import event_frame
    x = event_frame(events, sensor_size=(W, H), normalization=None, pool=1)
                                     # torch float32 [2, H, W]: ON counts, OFF counts

    from hybrid_snn_control.events.codecs import pointcloud2_encode, pointcloud2_decode
    pc = pointcloud2_encode(events, stamp_us=None)   # .fields .point_step .row_step .width
                                                     # .height .data .stamp_us
    events = pointcloud2_decode(pc.data, pc.fields, pc.point_step, stamp_us=pc.stamp_us)

``EVENT_DTYPE`` = ``x:u2, y:u2, t:i8 (µs), p:i1 (+1 ON / -1 OFF)``; sensor size is ``(W, H)``.
More: ``encoders`` (voxel grids, time surfaces, pooling), ``codecs`` (EventPacket ``mono`` /
``evt3``), ``readers`` (.npy, HDF5, N-MNIST, DVS128 Gesture AEDAT 3.1), ``dataset``,
``synthetic`` (moving-shape classification data).  User guide: ``docs/events.md``.
"""

from hybrid_snn_control.events.arrays import (
    EVENT_DTYPE,
    as_events,
    empty_events,
    make_events,
    merge_events,
    normalize_polarity,
    slice_time,
    sort_events,
    validate_events,
)
from hybrid_snn_control.events.simulator import (
    EventCameraSimulator,
    SimulatorParams,
    simulate_frames,
)

__all__ = [
    "EVENT_DTYPE",
    "EventCameraSimulator",
    "SimulatorParams",
    "as_events",
    "empty_events",
    "make_events",
    "merge_events",
    "normalize_polarity",
    "simulate_frames",
    "slice_time",
    "sort_events",
    "validate_events",
]
