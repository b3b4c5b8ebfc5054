"""CUDA-only checks of the learner (``-m gpu``); they skip on machines without CUDA.

``scripts/gpu-check`` measures speed; these check correctness on the device: an update on
CUDA, bfloat16 autocast there, and a checkpoint written on the GPU that loads on the CPU and
gives the same policy.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recore_dist import config as config_lib
from recore_dist.bench.learner import _batch
from recore_dist.learner import Learner, LearnerConfig
from recore_dist.models.world_model import Spaces

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _learner(device: str, precision: str = "auto") -> Learner:
    cfg = config_lib.from_dict(LearnerConfig, {"model": {"size": "xxs"}, "batch_size": 4, "batch_length": 16,
                                               "device": device, "precision": precision, "compile": False})
    return Learner(cfg, Spaces(action_dim=1))


def test_update_on_cuda_is_finite_and_on_the_device():
    learner = _learner("cuda")
    assert learner.device.type == "cuda"
    metrics = learner.update(_batch(4, 16, 64))
    assert all(np.isfinite(v) for v in metrics.values())
    assert all(p.is_cuda for p in learner.wm.parameters())


def test_bfloat16_autocast_on_cuda():
    learner = _learner("cuda", "bfloat16")
    assert learner.dtype == torch.bfloat16
    with learner.autocast():
        x = torch.randn(8, 8, device="cuda")
        assert (x @ x).dtype == torch.bfloat16
    assert np.isfinite(learner.update(_batch(4, 16, 64))["loss/world_model"])


def test_checkpoint_saved_on_gpu_loads_on_cpu(tmp_path):
    gpu = _learner("cuda")
    gpu.update(_batch(4, 16, 64))
    gpu.save(tmp_path / "learner.pt")
    cpu = _learner("cpu", "float32")
    cpu.load(tmp_path / "learner.pt")
    assert cpu.updates == gpu.updates == 1
    for name, value in gpu.policy_weights().items():
        np.testing.assert_allclose(cpu.policy_weights()[name], value, rtol=0, atol=0)
