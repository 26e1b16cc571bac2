"""Synthetic motion dataset (seeded, classes separable only over time) and the preview."""

import numpy as np
import pytest

from hybrid_snn_control.events import EVENT_DTYPE
from hybrid_snn_control.events.encoders import event_frame, event_frames
from hybrid_snn_control.events.synthetic import (
    MOTION_CLASSES,
    SyntheticConfig,
    generate_dataset,
    make_sample,
)

CFG = SyntheticConfig(num_classes=8, sensor_size=(24, 24), duration_us=100_000, frame_rate_hz=400.0)


def test_seeded_balanced_and_size_configurable():
    a = generate_dataset(16, CFG, seed=3)
    b = generate_dataset(16, CFG, seed=3)
    assert [label for _, label in a] == [i % 8 for i in range(16)]
    for (ea, la), (eb, lb) in zip(a, b):
        assert la == lb and ea.dtype == EVENT_DTYPE and ea.size > 50
        np.testing.assert_array_equal(ea, eb)
    c = generate_dataset(16, CFG, seed=4)
    assert not np.array_equal(a[0][0], c[0][0])
    small = SyntheticConfig(num_classes=2, sensor_size=(16, 12), duration_us=50_000)
    ev, label = generate_dataset(1, small)[0]
    assert label == 0
    assert ev["x"].max() < 16 and ev["y"].max() < 12 and ev["t"].max() <= 50_000
    with pytest.raises(ValueError, match="num_classes"):
        SyntheticConfig(num_classes=9)


@pytest.mark.parametrize("pair", [(0, 1), (2, 3), (4, 5), (6, 7)])
def test_pairs_match_when_summed_over_time_but_not_over_time(pair):
    """Same nuisances, reversed motion: accumulated frames agree, their time courses differ."""
    w, h = CFG.sensor_size
    total_corr, seq_corr = [], []
    for seed in range(3):
        ea, eb = (make_sample(c, CFG, seed=100 + seed) for c in pair)
        fa, fb = (event_frame(e, (w, h)).sum(0).flatten().numpy() for e in (ea, eb))
        total_corr.append(np.corrcoef(fa, fb)[0, 1])
        # 8 time bins, ON and OFF kept apart
        sa, sb = (event_frames(e, (w, h), 0, 12_500, 8).flatten().numpy() for e in (ea, eb))
        seq_corr.append(np.corrcoef(sa, sb)[0, 1])
    assert min(total_corr) > 0.9
    assert max(seq_corr) < min(total_corr) - 0.2


def test_translation_direction_is_in_the_event_timing():
    w = CFG.sensor_size[0]
    for seed in range(3):
        for cls, sign in ((0, 1), (1, -1)):
            ev = make_sample(cls, CFG, seed=seed)
            first, last = ev[: ev.size // 3], ev[-ev.size // 3 :]
            shift = last["x"].mean() - first["x"].mean()
            assert np.sign(shift) == sign and abs(shift) > w / 8, MOTION_CLASSES[cls]


def test_preview_command_writes_png(tmp_path):
    import imageio.v3 as iio

    from hybrid_snn_control.cli import main

    out = tmp_path / "p.png"
    assert main(["events", "preview", "--out", str(out), "--size", "40x30", "--scale", "2"]) == 0
    img = iio.imread(out)
    assert img.shape == (60, (3 * 40 + 4) * 2, 3)
    events_panel = img[:, 2 * 42 : 2 * 82]
    red = (events_panel[..., 0] > 200) & (events_panel[..., 2] < 100)
    blue = (events_panel[..., 2] > 200) & (events_panel[..., 0] < 100)
    assert red.any() and blue.any()
    frames = np.random.default_rng(0).random((6, 10, 12))
    np.save(tmp_path / "f.npy", frames)
    assert main(["events", "preview", "--frames", str(tmp_path / "f.npy"), "--out", str(out)]) == 0
    assert main(["events", "preview", "--motion", "sideways", "--out", str(out)]) == 2


def test_synthetic_dataset_with_binning_transform():
    from hybrid_snn_control.events.dataset import ToFrameSequence
    from hybrid_snn_control.events.synthetic import synthetic_dataset

    cfg = SyntheticConfig(num_classes=4, sensor_size=(16, 16), duration_us=40_000)
    ds = synthetic_dataset(8, cfg, seed=1, transform=ToFrameSequence((16, 16), num_bins=4))
    x, y = ds[5]
    assert x.shape == (4, 2, 16, 16) and y == 1 and ds.classes == MOTION_CLASSES[:4]
