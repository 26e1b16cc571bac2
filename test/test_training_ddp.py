"""Data-parallel training: two torchrun processes (gloo) end with identical, averaged weights."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hybrid_snn_control.training.classification import ClassificationTask, ClassifyConfig
from hybrid_snn_control.training.hstnn import HSTNNConfig, adapt
from hybrid_snn_control.training.loop import TrainRun

CLS = ClassifyConfig(
    sensor_size=[16, 16],
    num_classes=2,
    num_train=16,
    num_test=4,
    num_bins=4,
    pool=2,
    hidden_size=8,
    num_layers=1,
    batch_size=4,  # per rank
    efficiency_samples=4,
    grad_clip=0.0,
)

WORKER = """
import torch
torch.set_num_threads(1)
from safetensors.torch import save_file
from hybrid_snn_control.training.classification import ClassificationTask, ClassifyConfig
from hybrid_snn_control.training.distributed import init_distributed, shutdown_distributed
from hybrid_snn_control.training.hstnn import HSTNNConfig, adapt

ctx = init_distributed("cpu")
assert ctx.world_size == 2 and ctx.backend == "gloo", ctx
trained = []
original_train = ClassificationTask.train
def train(self, model, run):  # keep every rank's model (only rank 0 writes model files)
    trained.append(model)
    return original_train(self, model, run)
ClassificationTask.train = train
adapt(ClassificationTask(ClassifyConfig(**{cls!r})), HSTNNConfig(**{h!r}), **ctx.run_kwargs())
save_file(trained[0].state_dict(), "{out}/rank%d.safetensors" % ctx.rank)
shutdown_distributed()
"""


W = "core.layers.0.spiking.fc.weight"


def _hstnn(out_dir: Path) -> HSTNNConfig:
    return HSTNNConfig(
        out_dir=str(out_dir),
        adapt_steps=6,
        adapt_lr=1e-2,
        adapt_ratio_sampling=True,
        checkpoint_every=3,
        log_every=1,
        progress=False,
        tensorboard=True,
    )


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None,
    reason="torchrun not installed next to the interpreter",
)
def test_torchrun_two_ranks_end_with_identical_weights(tmp_path):
    cls = replace(CLS, cache_dir=str(tmp_path / "cache"))
    task = ClassificationTask(cls)  # writes the data cache both ranks read
    script = tmp_path / "worker.py"
    worker = textwrap.dedent(WORKER).format(
        cls=asdict(cls), h=asdict(_hstnn(tmp_path / "ddp")), out=tmp_path
    )
    script.write_text(worker)
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", str(script)],
        capture_output=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]

    r0 = load_file(tmp_path / "rank0.safetensors")
    r1 = load_file(tmp_path / "rank1.safetensors")
    for k in r0:
        torch.testing.assert_close(r0[k], r1[k], rtol=0, atol=0, equal_nan=True, msg=k)
    # rank 0 alone wrote the model file, the train state and the TensorBoard log
    assert (tmp_path / "ddp" / "adapt.safetensors").exists()
    assert len(list((tmp_path / "ddp" / "adapt" / "tb").glob("events.out.tfevents.*"))) == 1

    # gradients were averaged over both shards: the same as one process with batch 2×4
    torch.set_num_threads(1)
    single = adapt(
        ClassificationTask(replace(cls, batch_size=8), data=task.data),
        replace(_hstnn(tmp_path / "single"), tensorboard=False),
    )
    one = {k[len("model.") :]: v for k, v in load_file(single).items() if k.startswith("model.")}
    initial = task.build_model().state_dict()
    for k in one:
        torch.testing.assert_close(r0[k], one[k], rtol=1e-4, atol=1e-5, equal_nan=True, msg=k)
    assert not torch.equal(r0[W], initial[W])


def test_batch_shards_of_two_ranks_make_the_single_process_batch():
    single = TrainRun("unused", 10, seed=3, progress=False, tensorboard=False)
    ranks = [
        TrainRun("unused", 10, seed=3, rank=r, world_size=2, progress=False, tensorboard=False)
        for r in (0, 1)
    ]
    for step in (0, 1, 4, 7):  # 20 samples, 4 per rank: 2 steps per epoch
        shards = [set(r.batch_indices(20, 4, step)) for r in ranks]
        assert not shards[0] & shards[1]
        assert shards[0] | shards[1] == set(single.batch_indices(20, 8, step))
