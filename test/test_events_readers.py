"""File readers on small files written here per each format's published layout, and the
folder Dataset with its binning transform."""

import numpy as np
import pytest
import torch

from hybrid_snn_control.events import EVENT_DTYPE, make_events
from hybrid_snn_control.events.dataset import EventFolderDataset, EventListDataset, ToFrameSequence
from hybrid_snn_control.events.readers import (
    read_aedat31,
    read_dvs_gesture,
    read_events,
    read_hdf5,
    read_nmnist_bin,
    read_npy,
    write_aedat31,
    write_hdf5,
    write_nmnist_bin,
    write_npy,
)


def random_events(n=500, seed=0, w=34, h=34, span=300_000):
    rng = np.random.default_rng(seed)
    return make_events(
        rng.integers(0, w, n), rng.integers(0, h, n), np.sort(rng.integers(0, span, n)),
        rng.choice([-1, 1], n),
    )  # fmt: skip


def test_tonic_npy_with_01_polarity(tmp_path):
    ev = random_events()
    tonic = np.zeros(ev.size, [("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    for f in "xyt":
        tonic[f] = ev[f]
    tonic["p"] = ev["p"] > 0  # Tonic stores 0/1
    np.save(tmp_path / "a.npy", tonic)
    np.testing.assert_array_equal(read_npy(tmp_path / "a.npy"), ev)
    write_npy(tmp_path / "b.npy", ev)
    np.testing.assert_array_equal(read_events(tmp_path / "b.npy"), ev)


def test_hdf5_root_and_group(tmp_path):
    import h5py

    ev = random_events()
    write_hdf5(tmp_path / "g.h5", ev)
    np.testing.assert_array_equal(read_hdf5(tmp_path / "g.h5"), ev)
    with h5py.File(tmp_path / "root.h5", "w") as f:  # root datasets, time in seconds
        f["x"], f["y"], f["p"] = ev["x"], ev["y"], (ev["p"] > 0).astype(np.int8)
        f["t"] = ev["t"] * 1e-6
    np.testing.assert_array_equal(read_hdf5(tmp_path / "root.h5", t_scale_us=1e6), ev)
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["x"] = ev["x"]
    with pytest.raises(ValueError, match="no x, y, t, p"):
        read_hdf5(tmp_path / "bad.h5")


def test_nmnist_bin_layout_overflow_and_truncation(tmp_path):
    # two events by hand: (x=5, y=6, ON, t=0x012345) and (x=1, y=2, OFF, t=7)
    raw = bytes([5, 6, 0x80 | 0x01, 0x23, 0x45, 1, 2, 0x00, 0x00, 0x07])
    (tmp_path / "h.bin").write_bytes(raw)
    ev = read_nmnist_bin(tmp_path / "h.bin")
    assert ev.tolist() == [(5, 6, 0x012345, 1), (1, 2, 7, -1)]
    # an overflow marker (y == 240) adds 2^23 us to later events
    (tmp_path / "o.bin").write_bytes(raw[:5] + bytes([0, 240, 0, 0, 0]) + raw[5:])
    assert read_nmnist_bin(tmp_path / "o.bin")["t"].tolist() == [0x012345, 7 + (1 << 23)]
    ev = random_events()
    write_nmnist_bin(tmp_path / "r.bin", ev)
    np.testing.assert_array_equal(read_events(tmp_path / "r.bin"), ev)
    (tmp_path / "t.bin").write_bytes((tmp_path / "r.bin").read_bytes()[:-2])
    with pytest.raises(ValueError, match="multiple of 5"):
        read_nmnist_bin(tmp_path / "t.bin")
    assert read_nmnist_bin(tmp_path / "t.bin", strict=False).size == ev.size - 1


def _aedat_by_hand(path, events):
    """An AEDAT 3.1 file written straight from the published layout (not write_aedat31)."""
    import struct

    out = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"
    # a non-polarity packet (special events, type 0) that the reader must skip
    out += struct.pack("<hhiiiiii", 0, 1, 8, 4, 0, 1, 1, 1) + struct.pack("<Ii", 0, 0)
    for ev in np.array_split(events, 3):
        out += struct.pack("<hhiiiiii", 1, 1, 8, 4, 0, ev.size + 1, ev.size + 1, ev.size)
        for e in ev:
            data = (int(e["x"]) << 17) | (int(e["y"]) << 2) | (int(e["p"] > 0) << 1) | 1
            out += struct.pack("<Ii", data, int(e["t"]))
        out += struct.pack("<Ii", 0, 0)  # one invalid event (valid bit 0): dropped
    path.write_bytes(out)


def test_aedat31_dvs_gesture_with_labels(tmp_path):
    ev = random_events(300, w=128, h=128, span=3_000_000)
    _aedat_by_hand(tmp_path / "user01_fluorescent.aedat", ev)
    np.testing.assert_array_equal(read_aedat31(tmp_path / "user01_fluorescent.aedat"), ev)
    (tmp_path / "user01_fluorescent_labels.csv").write_text(
        "class,startTime_usec,endTime_usec\n1,0,1000000\n11,1500000,2900000\n"
    )
    segs = read_dvs_gesture(tmp_path / "user01_fluorescent.aedat")
    assert [label for _, label in segs] == [0, 10]
    np.testing.assert_array_equal(segs[1][0], ev[(ev["t"] >= 1_500_000) & (ev["t"] < 2_900_000)])
    write_aedat31(tmp_path / "w.aedat", ev, packet_size=64)
    np.testing.assert_array_equal(read_aedat31(tmp_path / "w.aedat"), ev)
    data = (tmp_path / "w.aedat").read_bytes()
    (tmp_path / "cut.aedat").write_bytes(data[:-20])
    with pytest.raises(ValueError, match="truncated"):
        read_aedat31(tmp_path / "cut.aedat")
    assert 0 < read_aedat31(tmp_path / "cut.aedat", strict=False).size < ev.size
    (tmp_path / "x.aedat").write_bytes(b"#!AER-DAT2.0\r\n")
    with pytest.raises(ValueError, match="AEDAT 3"):
        read_aedat31(tmp_path / "x.aedat")


def test_folder_dataset_with_binning_transform(tmp_path):
    for cls, seed in (("circle", 1), ("square", 2)):
        (tmp_path / cls).mkdir()
        write_npy(tmp_path / cls / "0.npy", random_events(seed=seed))
        write_nmnist_bin(tmp_path / cls / "1.bin", random_events(seed=seed + 10))
    gdir = tmp_path / "gesture"
    gdir.mkdir()
    _aedat_by_hand(gdir / "u.aedat", random_events(200, w=34, h=34, span=2_000_000))
    (gdir / "u_labels.csv").write_text("class,startTime_usec,endTime_usec\n3,0,900000\n")
    tf = ToFrameSequence(sensor_size=(34, 34), num_bins=5, pool=2)
    ds = EventFolderDataset(tmp_path, transform=tf)
    assert ds.classes == ("circle", "square") and len(ds) == 5
    x, label = ds[0]
    assert x.shape == (5, 2, 17, 17) and x.dtype == torch.float32 and label == 0
    assert x.sum() == 500  # every event lands in one bin
    assert ds[2][1] == 1 and ds[4][1] == 2
    raw, _ = EventFolderDataset(tmp_path)[1]
    assert raw.dtype == EVENT_DTYPE
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch[0].shape == (4, 5, 2, 17, 17)
    with pytest.raises(ValueError, match="no event files"):
        EventFolderDataset(tmp_path / "circle")


def test_list_dataset():
    ds = EventListDataset([(random_events(), 3)], transform=ToFrameSequence((34, 34), 4))
    x, y = ds[0]
    assert x.shape == (4, 2, 34, 34) and y == 3
