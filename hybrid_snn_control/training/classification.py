r"""Event classification with a hybrid spiking–recurrent network (rate-coded loss).

.. math::
    x_t = \log(1 + E_t) \in \mathbb{R}^{2HW}, \qquad
    z_t, s_t = \mathrm{HybridNetwork}(x_t, s_{t-1}), \qquad
    \hat{y} = \frac{1}{T}\sum_{t=1}^{T} z_t, \qquad
    \mathcal{L} = \mathrm{CE}(\hat{y}, y)

``E_t`` are the ON/OFF event counts of time bin ``t`` (``ToFrameSequence``, optionally
pooled).  The loss is rate coded over *all* time steps (He et al. 2020, as in the HSTNN
code): the readout is averaged over the sequence, then cross entropy; the prediction is
``argmax ŷ``.

Data: the synthetic motion dataset (:mod:`hybrid_snn_control.events.synthetic`, the
stand-in for DVS Gesture; classes come in time-reversed pairs, so they need memory) or
any folder :class:`~hybrid_snn_control.events.dataset.EventFolderDataset` reads
(``data_dir``).  The whole binned dataset is held in memory as one tensor and cached on
disk (``cache_dir``), so a training step is an index into it.

Use::

    task = ClassificationTask(ClassifyConfig(num_train=480))
    model = task.build_model()
    run = TrainRun("runs/cls", total_steps=500, lr=3e-3)
    task.train(model, run)
    task.evaluate(model, ratio=0.5)     # {"score": accuracy, "accuracy", "macs_per_step", ...}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hybrid_snn_control.config import load_node_params, param
from hybrid_snn_control.events.dataset import EventFolderDataset, ToFrameSequence
from hybrid_snn_control.events.synthetic import SyntheticConfig, generate_dataset
from hybrid_snn_control.hybrid import HybridNetwork
from hybrid_snn_control.hybrid.efficiency import count_efficiency
from hybrid_snn_control.training.loop import TrainRun, unwrap
from hybrid_snn_control.training.task import core_of

__all__ = ["ClassificationTask", "ClassifyConfig", "EventClassifier", "load_event_tensors"]


@dataclass
class ClassifyConfig:
    """Data, model and batch settings of the event classification task."""

    data_dir: str = field(
        default="", metadata=param(description="event folder; empty = synthetic dataset")
    )
    sensor_size: list[int] = field(default_factory=lambda: [32, 32])  # (W, H) of the data
    num_classes: int = field(default=6, metadata=param(range=(2, 8)))  # synthetic only
    num_train: int = field(default=480, metadata=param(range=(1, 10_000_000)))
    num_test: int = field(default=120, metadata=param(range=(1, 10_000_000)))
    test_fraction: float = field(default=0.2, metadata=param(range=(0.0, 0.9)))  # folder only
    data_seed: int = 0
    num_bins: int = field(default=12, metadata=param(range=(1, 10_000)))
    pool: int = field(default=2, metadata=param(range=(1, 64)))
    cache_dir: str = field(default="", metadata=param(description="binned-data cache; '' = none"))
    hidden_size: int = field(default=64, metadata=param(range=(1, 4096)))
    num_layers: int = field(default=2, metadata=param(range=(1, 16)))
    spiking_cell: Literal["lif", "alif", "stc_lif", "stc_alif", "rf"] = "lif"
    recurrent_cell: Literal["lstm", "gru", "rnn"] = "lstm"
    rate_decay: float = field(default=0.8, metadata=param(range=(0.0, 0.999)))
    batch_size: int = field(default=32, metadata=param(range=(1, 65536)))
    eval_batch_size: int = field(default=128, metadata=param(range=(1, 65536)))
    efficiency_samples: int = field(default=64, metadata=param(range=(1, 65536)))
    grad_clip: float = field(default=1.0, metadata=param(range=(0.0, 1e6)))

    def __post_init__(self) -> None:
        if len(self.sensor_size) != 2 or min(self.sensor_size) < 1:
            raise ValueError(f"sensor_size must be [W, H] > 0, got {self.sensor_size}")


class EventClassifier(nn.Module):
    """Event frames ``[B, T, 2, H, W]`` → :class:`HybridNetwork` → class logits.

    ``forward`` returns the rate-coded logits ``[B, K]`` (mean readout over time);
    ``sequence_logits`` the per-step readout ``[T, B, K]``.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, cfg: ClassifyConfig):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.core = HybridNetwork(
            int(np.prod(input_shape)),
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            spiking_cell=cfg.spiking_cell,
            recurrent_cell=cfg.recurrent_cell,
            readout_size=num_classes,
            rate_decay=cfg.rate_decay,
        )

    def core_input(self, frames: Tensor) -> Tensor:
        """``[B, T, C, H, W]`` counts → time-first flat log counts ``[T, B, C·H·W]``."""
        if frames.dim() != 5 or tuple(frames.shape[2:]) != self.input_shape:
            raise ValueError(f"frames must be [B, T, {self.input_shape}], got {frames.shape}")
        return torch.log1p(frames.clamp_min(0)).flatten(2).transpose(0, 1)

    def sequence_logits(self, frames: Tensor) -> Tensor:
        out, _ = self.core(self.core_input(frames))
        return out

    def forward(self, frames: Tensor) -> Tensor:
        return self.sequence_logits(frames).mean(0)


# ---- data ---------------------------------------------------------------------------------
def _cache_key(cfg: ClassifyConfig) -> str:
    keys = ("data_dir", "sensor_size", "num_classes", "num_train", "num_test", "test_fraction")
    keys += ("data_seed", "num_bins", "pool")
    blob = json.dumps({k: asdict(cfg)[k] for k in keys}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def load_event_tensors(cfg: ClassifyConfig) -> dict[str, Any]:
    """Binned train/test tensors ``{"x_train" [N,T,2,H,W], "y_train", "x_test", "y_test",
    "classes"}`` built from the synthetic generator or ``cfg.data_dir`` (cached if asked)."""
    cache = (
        Path(cfg.cache_dir).expanduser() / f"classify_{_cache_key(cfg)}.npz"
        if cfg.cache_dir
        else None
    )
    if cache is not None and cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            return {
                "x_train": torch.from_numpy(z["x_train"]),
                "y_train": torch.from_numpy(z["y_train"]),
                "x_test": torch.from_numpy(z["x_test"]),
                "y_test": torch.from_numpy(z["y_test"]),
                "classes": tuple(str(c) for c in z["classes"]),
            }
    sensor = tuple(cfg.sensor_size)
    binning = ToFrameSequence(sensor, num_bins=cfg.num_bins, pool=cfg.pool)
    if cfg.data_dir:
        ds = EventFolderDataset(cfg.data_dir, transform=binning)
        items = [ds[i] for i in range(len(ds))]
        order = np.random.default_rng(cfg.data_seed).permutation(len(items))
        n_test = max(round(cfg.test_fraction * len(items)), 1)
        test_idx, train_idx = order[:n_test], order[n_test:]
        x = torch.stack([f for f, _ in items]).to(torch.float16)
        y = torch.tensor([label for _, label in items])
        data = {
            "x_train": x[train_idx],
            "y_train": y[train_idx],
            "x_test": x[test_idx],
            "y_test": y[test_idx],
            "classes": tuple(ds.classes),
        }
    else:
        syn = SyntheticConfig(num_classes=cfg.num_classes, sensor_size=sensor)
        data = {"classes": syn.classes}
        # different seeds for the splits: test clips are never training clips
        for split, n, seed in (
            ("train", cfg.num_train, cfg.data_seed),
            ("test", cfg.num_test, cfg.data_seed + 1_000_003),
        ):
            samples = generate_dataset(n, syn, seed=seed)
            data[f"x_{split}"] = torch.stack([binning(ev) for ev, _ in samples]).to(torch.float16)
            data[f"y_{split}"] = torch.tensor([label for _, label in samples])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            **{k: v.numpy() for k, v in data.items() if isinstance(v, Tensor)},
            classes=np.array(data["classes"]),
        )
        tmp.replace(cache)
    return data


# ---- the task -----------------------------------------------------------------------------
class ClassificationTask:
    """Event classification as a :class:`~hybrid_snn_control.training.task.Task`."""

    name = "classify"

    def __init__(self, cfg: ClassifyConfig | None = None, data: dict[str, Any] | None = None):
        self.cfg = cfg or ClassifyConfig()
        self.data = data if data is not None else load_event_tensors(self.cfg)
        self.classes = tuple(self.data["classes"])
        self.input_shape = tuple(self.data["x_train"].shape[2:])

    def build_model(self) -> EventClassifier:
        return EventClassifier(self.input_shape, len(self.classes), self.cfg)

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        """Rate-coded cross entropy of one ``(frames, labels)`` batch."""
        frames, labels = batch
        return F.cross_entropy(model(frames), labels)

    def train(self, model: nn.Module, run: TrainRun) -> dict[str, Any]:
        """Adam on the rate-coded loss for ``run.total_steps`` steps (resumes from run_dir)."""
        cfg, device = self.cfg, run.device
        model.to(device).train()
        x_train, y_train = self.data["x_train"], self.data["y_train"]
        optimizer = torch.optim.Adam(model.parameters(), lr=run.lr)
        run.resume(model, optimizer)
        net = run.wrap(model)  # DistributedDataParallel when world_size > 1
        loss = torch.tensor(float("nan"))
        for step in run.steps():
            idx = torch.as_tensor(run.batch_indices(len(y_train), cfg.batch_size, step))
            frames, labels = x_train[idx].to(device).float(), y_train[idx].to(device)
            logits = net(frames)
            loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            acc = (logits.argmax(-1) == labels).float().mean()
            run.log(loss=loss.item(), accuracy=acc.item())
        run.close()
        model.eval()
        return {"final_loss": float(loss.detach()), "steps": run.step}

    def loss_batches(self, model: nn.Module, n: int) -> Iterator[tuple[Tensor, Tensor]]:
        """The first ``n`` training batches of a fixed order (same on every call)."""
        device = next(model.parameters()).device
        x, y = self.data["x_train"], self.data["y_train"]
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(12345))
        bs = self.cfg.batch_size
        for i in range(min(n, max(len(y) // bs, 1))):
            idx = order[i * bs : (i + 1) * bs]
            yield x[idx].to(device).float(), y[idx].to(device)

    @torch.no_grad()
    def evaluate(
        self, model: nn.Module, ratio: float | None, split: str = "test", **_: Any
    ) -> dict[str, Any]:
        """Accuracy on ``split`` at ``ratio`` (None = redundant) + cost per time step."""
        model = unwrap(model)
        core = core_of(model)
        previous = core.spiking_ratio
        was_training = model.training
        model.eval()
        core.set_redundant() if ratio is None else core.set_ratio(ratio)
        try:
            device = next(model.parameters()).device
            x, y = self.data[f"x_{split}"], self.data[f"y_{split}"]
            correct, loss_sum = 0, 0.0
            for i in range(0, len(y), self.cfg.eval_batch_size):
                frames = x[i : i + self.cfg.eval_batch_size].to(device).float()
                labels = y[i : i + self.cfg.eval_batch_size].to(device)
                logits = model(frames)
                correct += int((logits.argmax(-1) == labels).sum())
                loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
            frames = x[: self.cfg.efficiency_samples].to(device).float()
            _, _, activity = core.forward_with_activity(model.core_input(frames))
            # event input: a non-zero (pixel, polarity, bin) drives accumulates, not MACs
            eff = count_efficiency(core, activity, input_is_spikes=True)
        finally:
            core.set_redundant() if previous is None else core.set_ratio(previous)
            model.train(was_training)
        acc = correct / len(y)
        return {
            "score": acc,
            "accuracy": acc,
            "loss": loss_sum / len(y),
            "ratio": ratio,
            "macs_per_step": eff.macs_per_step,
            "synops_per_step": eff.synops_per_step,
            "energy_pj_per_step": eff.energy_pj_per_step,
            "firing_rate": eff.firing_rate,
        }


def load_task(
    config_path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> ClassificationTask:
    """The task with settings from the ``hsc_classify`` section of a parameter file."""
    if config_path is None:
        return ClassificationTask(ClassifyConfig(**(overrides or {})))
    cfg = load_node_params(config_path, "hsc_classify", ClassifyConfig, overrides)
    return ClassificationTask(cfg)
