"""A policy file with its readout's turn (and speed) rows scaled: a steeper ``tanh``.

The crudest fix for a student that under-turns (docs/imitation.md); evaluated on the
tuning pilot, it did not help.

    python docs/studies/turn_gain.py IN.safetensors OUT.safetensors TURN_GAIN [SPEED_GAIN]
"""

from __future__ import annotations

import sys

import torch

from hybrid_snn_control.policy.bundle import load_policy, save_policy

_OWN = ("kind", "policy_config", "spiking_ratio", "package_version", "torch_version")


def main(argv: list[str]) -> None:
    src, dst, g_turn = argv[0], argv[1], float(argv[2])
    g_speed = float(argv[3]) if len(argv) > 3 else 1.0
    policy, meta = load_policy(src)
    with torch.no_grad():
        for row, gain in ((0, g_speed), (1, g_turn)):
            policy.core.readout.weight[row] *= gain
            policy.core.readout.bias[row] *= gain
    print(save_policy(dst, policy, {k: v for k, v in meta.items() if k not in _OWN}))


if __name__ == "__main__":
    main(sys.argv[1:])
