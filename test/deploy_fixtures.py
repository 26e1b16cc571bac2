"""Shared helpers for the deploy tests: a real (random-weight) policy checkpoint and inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hybrid_snn_control.policy import HybridPolicy, PolicyConfig, save_policy


def make_policy(seed: int = 0, gain: float = 6.0, **overrides) -> HybridPolicy:
    """Default PolicyConfig (events [2, 64, 64], proprio 8) with a non-trivial ranking and
    proprio normalization, so masks and the input path are really exercised."""
    torch.manual_seed(seed)
    policy = HybridPolicy(PolicyConfig(**overrides))
    gen = torch.Generator().manual_seed(seed)
    n = policy.cfg.hidden_size
    scores = [
        (torch.rand(n, generator=gen), torch.rand(n, generator=gen)) for _ in policy.core.layers
    ]
    policy.core.apply_ranking(scores)
    p = policy.cfg.proprio_size
    policy.set_normalization(
        0.1 * torch.randn(p, generator=gen), 0.5 + torch.rand(p, generator=gen)
    )
    with torch.no_grad():  # random init barely fires; a trained policy does (~10-30 %)
        for layer in policy.core.layers:
            layer.spiking.fc.weight.mul_(gain)
    policy.set_ratio(0.5)
    return policy.eval()


def save_test_policy(path: Path, seed: int = 0, **overrides) -> Path:
    save_policy(path, make_policy(seed, **overrides), extra={"task": "test"})
    return path


def input_sequence(steps: int, batch: int, event_shape=(2, 64, 64), proprio_size=8, seed=0):
    """Poisson event counts and Gaussian proprioception, float32 numpy ``[T, B, ...]``."""
    rng = np.random.default_rng(seed)
    rate = rng.uniform(0.05, 1.5, size=(steps, batch, 1, 1, 1))
    events = rng.poisson(rate, size=(steps, batch, *event_shape)).astype(np.float32)
    proprio = rng.normal(size=(steps, batch, proprio_size)).astype(np.float32)
    return events, proprio


def run_runtime(rt, events, proprio, changes: dict[int, float]):
    """Step a runtime over ``events``/``proprio`` ``[T, ...]``, switching the ratio to
    ``changes[t]`` before step t: ``(actions [T, ...], states per step, spike counts)``."""
    actions, states, spikes = [], [], []
    for t in range(events.shape[0]):
        if t in changes:
            rt.set_ratio(changes[t])
        actions.append(rt.step(events[t], proprio[t]))
        states.append(rt.state())
        spikes.append(rt.last_spike_count)
    return np.array(actions), states, spikes


def backend_actions(
    ckpt: Path, steps: int = 30, batch: int = 2, backends=("torch", "torchscript", "onnxruntime")
) -> dict[str, np.ndarray]:
    """Actions ``[T, B, A]`` of each backend on the same Poisson inputs, with the ratio
    switched from the file's to 0.25 halfway: what an eager == exported check compares."""
    from hybrid_snn_control.deploy.runtime import load_runtime

    events, proprio = input_sequence(steps, batch)
    changes = {steps // 2: 0.25}
    return {
        b: run_runtime(load_runtime(ckpt, b, batch_size=batch), events, proprio, changes)[0]
        for b in backends
    }


def step_and_sequence(policy: HybridPolicy, steps: int = 12, batch: int = 2):
    """``(stepped, sequence)`` actions ``[T, B, A]`` of ``policy`` on the same Poisson
    inputs: one step at a time with the state carried, and one whole-sequence call."""
    shape = tuple(policy.cfg.event_shape)
    events, proprio = (torch.from_numpy(a) for a in input_sequence(steps, batch, shape))
    with torch.no_grad():
        seq, _ = policy(events, proprio)
        state, stepped = None, []
        for t in range(steps):
            a, state = policy.step(events[t], proprio[t], state)
            stepped.append(a)
    return torch.stack(stepped), seq
