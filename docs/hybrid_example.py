"""Toy example: train a hybrid spiking–recurrent network, switch the ratio, print accuracy
and cost per ratio. Takes about a minute of CPU time.

    .venv/bin/python docs/hybrid_example.py [--steps 120]

Task (evidence accumulation): 4 noisy input channels, one of which has a slightly higher
mean over the 20 steps; at the last step the network reports which one. No single step
decides it, so the network has to integrate over time (membranes, rate trace, LSTM).
Training samples the spiking ratio per batch, so the same weights serve every ratio;
Hessian-aware selection then ranks the units.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from hybrid_snn_control.hybrid import HybridNetwork
from hybrid_snn_control.hybrid.efficiency import measure_efficiency
from hybrid_snn_control.hybrid.selection import hessian_importance

CHANNELS, STEPS = 4, 20


def make_batch(batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(STEPS, batch, CHANNELS, generator=generator)
    label = torch.randint(0, CHANNELS, (batch,), generator=generator)
    x[:, torch.arange(batch), label] += 0.6
    return x, label


def accuracy(net: HybridNetwork, x: torch.Tensor, label: torch.Tensor) -> float:
    with torch.no_grad():
        out, _ = net(x)
    return (out[-1].argmax(-1) == label).float().mean().item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=120)
    args = p.parse_args()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)

    # 2 layers x (24 spiking LIF + 24 LSTM candidates); readout to the 4 classes.
    net = HybridNetwork(
        CHANNELS,
        hidden_size=24,
        num_layers=2,
        spiking_cell="lif",
        recurrent_cell="lstm",
        readout_size=CHANNELS,
        spiking_ratio=0.5,
        ratio_sampling=[0.0, 0.25, 0.5, 0.75, 1.0],
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    net.train()
    for step in range(args.steps):
        x, label = make_batch(64, gen)
        out, _ = net(x)  # training mode: a random ratio from ratio_sampling per batch
        loss = loss_fn(out[-1], label)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 20 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {loss.item():.3f}")

    # Hessian-aware selection on the redundant network (all units), stored with the weights.
    net.eval()
    net.set_redundant()
    batch = make_batch(64, gen)
    scores = hessian_importance(
        net, lambda n, b: loss_fn(n(b[0])[0][-1], b[1]), [batch], num_probes=32
    )
    net.apply_ranking(scores)

    x_test, y_test = make_batch(512, gen)
    print(
        f"\n{'ratio':>5}  {'acc':>5}  {'MACs/step':>9}  {'SynOps/step':>11}  "
        f"{'energy pJ/step':>14}  firing rates"
    )
    for r in (0.0, 0.25, 0.5, 0.75, 1.0):
        net.set_ratio(r)  # masks only: same weights, no reload
        acc = accuracy(net, x_test, y_test)
        rep = measure_efficiency(net, x_test[:, :64])
        rates = ", ".join(f"{f:.2f}" for f in rep.firing_rate)
        print(
            f"{r:5.2f}  {acc:5.2f}  {rep.macs_per_step:9.0f}  {rep.synops_per_step:11.1f}  "
            f"{rep.energy_pj_per_step:14.0f}  [{rates}]"
        )


if __name__ == "__main__":
    main()
