"""``torch.utils.data.Dataset`` s of event recordings and the binning transform.

* :class:`EventFolderDataset`: a folder with one sub-folder per class (``root/<class>/*.npy``,
  ``.h5``, ``.bin`` — the N-MNIST / Tonic export layout), or DVS128 Gesture ``.aedat`` files
  with their ``_labels.csv`` anywhere under ``root`` (each labelled segment is one sample).
* :class:`EventListDataset`: samples already in memory (e.g. the synthetic generator's).
* :class:`ToFrameSequence`: events -> ``[num_bins, 2, H, W]`` event frames over the sample.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from hybrid_snn_control.events.encoders import event_frames
from hybrid_snn_control.events.readers import (
    read_aedat31,
    read_events,
    read_gesture_labels,
)

_CLASS_FOLDER_SUFFIXES = (".npy", ".h5", ".hdf5", ".bin")


class ToFrameSequence:
    """Bin a sample into ``num_bins`` equal time slices of event frames ``[T, 2, H, W]``.

    The window starts at the first event and lasts ``window_us`` (default: up to the last
    event), so every sample gives the same tensor shape whatever its event count.
    """

    def __init__(
        self,
        sensor_size: tuple[int, int],
        num_bins: int = 10,
        window_us: int | None = None,
        pool: int = 1,
        normalization: str | None = None,
    ) -> None:
        if num_bins < 1:
            raise ValueError(f"num_bins must be >= 1; got {num_bins}")
        self.sensor_size, self.num_bins = tuple(sensor_size), int(num_bins)
        self.window_us, self.pool, self.normalization = window_us, pool, normalization

    def __call__(self, events: np.ndarray) -> torch.Tensor:
        t0 = int(events["t"][0]) if events.size else 0
        span = (
            self.window_us
            if self.window_us
            else (int(events["t"][-1]) - t0 + 1 if events.size else 1)
        )
        bin_us = max(-(-span // self.num_bins), 1)
        return event_frames(
            events, self.sensor_size, t0, bin_us, self.num_bins, self.normalization, pool=self.pool
        )


class EventListDataset(Dataset):
    """In-memory ``[(events, label), ...]`` with an optional transform on the events."""

    def __init__(self, samples, transform=None, classes: tuple[str, ...] | None = None) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.classes = classes

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        events, label = self.samples[i]
        return (self.transform(events) if self.transform else events), int(label)


class EventFolderDataset(Dataset):
    """Event files under ``root``: class folders, and/or DVS Gesture ``.aedat`` + labels.

    ``classes`` (class-folder mode) are the sorted sub-folder names; the label is the index.
    Files are read lazily in ``__getitem__``; an AEDAT recording is read once and cached
    (``cache_aedat``) because its segments are consecutive samples.
    """

    def __init__(self, root: str | Path, transform=None, cache_aedat: bool = True) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset folder {self.root} not found")
        self.transform = transform
        self.items: list[tuple[Path, int, tuple[int, int] | None]] = []
        dirs = sorted(d for d in self.root.iterdir() if d.is_dir())
        self.classes = tuple(d.name for d in dirs if _has_files(d))
        for label, name in enumerate(self.classes):
            for f in sorted((self.root / name).iterdir()):
                if f.suffix.lower() in _CLASS_FOLDER_SUFFIXES:
                    self.items.append((f, label, None))
        for f in sorted(self.root.rglob("*.aedat")):
            labels = f.with_name(f.stem + "_labels.csv")
            if labels.exists():
                for cls, t0, t1 in read_gesture_labels(labels):
                    self.items.append((f, int(cls) - 1, (int(t0), int(t1))))
        if not self.items:
            raise ValueError(
                f"no event files in {self.root}: expected <class>/<file>{_CLASS_FOLDER_SUFFIXES} "
                "or <name>.aedat with <name>_labels.csv"
            )
        self._cache: tuple[Path, np.ndarray] | None = None
        self._cache_aedat = cache_aedat

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        path, label, window = self.items[i]
        if window is None:
            events = read_events(path)
        else:
            if self._cache is not None and self._cache[0] == path:
                rec = self._cache[1]
            else:
                rec = read_aedat31(path)
                if self._cache_aedat:
                    self._cache = (path, rec)
            i0, i1 = np.searchsorted(rec["t"], window)
            events = rec[i0:i1]
        return (self.transform(events) if self.transform else events), label


def _has_files(d: Path) -> bool:
    return any(f.suffix.lower() in _CLASS_FOLDER_SUFFIXES for f in d.iterdir())
