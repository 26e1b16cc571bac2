"""Encoders: event frames, frame sequences, voxel grids, time surfaces, pooling."""

import numpy as np
import pytest
import torch

from hybrid_snn_control.events import make_events
from hybrid_snn_control.events.encoders import (
    event_frame,
    event_frames,
    pool_downsample,
    time_surface,
    voxel_grid,
)


def random_events(n=3000, seed=0, w=40, h=30, span=10_000):
    rng = np.random.default_rng(seed)
    return make_events(
        rng.integers(0, w, n), rng.integers(0, h, n), np.sort(rng.integers(0, span, n)),
        rng.choice([-1, 1], n),
    )  # fmt: skip


def loop_counts(ev, w, h, pool=1):
    out = np.zeros((2, -(-h // pool), -(-w // pool)), np.float32)
    for x, y, _t, p in ev.tolist():
        out[0 if p > 0 else 1, y // pool, x // pool] += 1
    return out


def test_event_frame_counts_per_polarity():
    ev = random_events()
    x = event_frame(ev, sensor_size=(40, 30))
    assert x.dtype == torch.float32 and x.shape == (2, 30, 40)
    np.testing.assert_array_equal(x.numpy(), loop_counts(ev, 40, 30))
    assert x[0].sum() == (ev["p"] > 0).sum() and x[1].sum() == (ev["p"] < 0).sum()
    single = event_frame(make_events([3], [2], [0], [-1]), (5, 4))
    assert single[1, 2, 3] == 1 and single.sum() == 1


def test_event_frame_pooling_and_normalization():
    ev = random_events()
    pooled = event_frame(ev, (40, 30), pool=4)
    assert pooled.shape == (2, 8, 10)
    np.testing.assert_array_equal(pooled.numpy(), loop_counts(ev, 40, 30, 4))
    full = event_frame(ev, (40, 30))
    torch.testing.assert_close(pool_downsample(full, 4), pooled)
    raw = event_frame(ev, (40, 30))
    torch.testing.assert_close(event_frame(ev, (40, 30), normalization="log"), torch.log1p(raw))
    clipped = event_frame(ev, (40, 30), normalization="clip", clip_max=2)
    assert clipped.max() == 1.0 and torch.all(clipped * 2 == raw.clamp(max=2))
    assert event_frame(ev, (40, 30), normalization="max").max() == 1.0
    with pytest.raises(ValueError, match="normalization"):
        event_frame(ev, (40, 30), normalization="zscore")
    with pytest.raises(ValueError, match="outside the sensor"):
        event_frame(ev, (20, 30))


def test_event_frames_bins_in_time():
    ev = random_events(span=10_000)
    seq = event_frames(ev, (40, 30), t_start_us=0, bin_us=2_500, num_bins=4)
    assert seq.shape == (4, 2, 30, 40)
    for b in range(4):
        part = ev[(ev["t"] >= b * 2500) & (ev["t"] < (b + 1) * 2500)]
        torch.testing.assert_close(seq[b], event_frame(part, (40, 30)))


def test_voxel_grid_bilinear_time_weights():
    # one ON event at 1/3 of the window with 4 bins: tn = 1.0 -> all in bin 1
    ev = make_events([1, 2], [0, 0], [0, 1000], [1, -1])
    v = voxel_grid(ev, (3, 1), num_bins=4, t_start_us=0, t_end_us=3000)
    assert v.shape == (4, 1, 3)
    assert v[0, 0, 1] == 1.0 and v[:, 0, 1].sum() == 1.0  # t=0 -> bin 0
    assert v[1, 0, 2] == pytest.approx(-1.0)  # t=1000 -> tn=1 exactly
    ev = make_events([0], [0], [500], [1])  # tn = 0.5: split half/half
    v = voxel_grid(ev, (1, 1), num_bins=4, t_start_us=0, t_end_us=3000)
    np.testing.assert_allclose(v[:, 0, 0].numpy(), [0.5, 0.5, 0, 0])
    # total signed mass is preserved; split_polarity gives positive ON / OFF grids
    ev = random_events()
    v = voxel_grid(ev, (40, 30), num_bins=5)
    assert float(v.sum()) == pytest.approx(float(ev["p"].sum()), abs=1e-2)
    s = voxel_grid(ev, (40, 30), num_bins=5, split_polarity=True)
    assert s.shape == (2, 5, 30, 40) and s.min() >= 0
    torch.testing.assert_close(s[0] - s[1], v)


def test_time_surface_decays_from_last_event():
    ev = make_events([0, 0, 1], [0, 0, 0], [0, 1000, 2000], [1, 1, -1])
    ts = time_surface(ev, (2, 1), tau_us=1000.0)
    assert ts.shape == (2, 1, 2)
    assert ts[0, 0, 0] == pytest.approx(np.exp(-1.0))  # last ON at 1000, t_ref 2000
    assert ts[1, 0, 1] == pytest.approx(1.0)
    assert ts[1, 0, 0] == 0 and ts[0, 0, 1] == 0
    lin = time_surface(ev, (2, 1), t_ref_us=2500, tau_us=2000.0, decay="linear")
    assert lin[0, 0, 0] == pytest.approx(1 - 1500 / 2000)


def test_pool_downsample_modes_and_odd_sizes():
    x = torch.arange(2 * 5 * 7, dtype=torch.float32).reshape(2, 5, 7)
    s = pool_downsample(x, 2, "sum")
    assert s.shape == (2, 3, 4) and s.sum() == x.sum()
    m = pool_downsample(x, 2, "max")
    assert m.shape == (2, 3, 4) and m[0, 0, 0] == x[0, 1, 1]
    with pytest.raises(ValueError, match="mode"):
        pool_downsample(x, 2, "median")
