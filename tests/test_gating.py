"""CoRe's pixel-level gating: a learned sigmoid mask in front of the encoder, logged as images."""

from __future__ import annotations

import numpy as np
import torch

from recore_dist.behavior import Policy
from recore_dist.learner import Learner
from recore_dist.models.gating import PixelGate
from recore_dist.models.world_model import Spaces
from recore_dist.runtime.summaries import open_loop_grids
from tests.learner_utils import synthetic_batch, tiny_learner_config


def test_gate_is_a_full_resolution_mask_that_starts_open():
    gate = PixelGate(3)
    image = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        gated, mask = gate(image)
    assert mask.shape == (2, 1, 32, 32) and bool(((mask > 0) & (mask < 1)).all())
    assert float(mask.mean()) > 0.9  # starts near 1: the encoder first sees the image almost unchanged
    torch.testing.assert_close(gated, image * mask)
    assert len([m for m in gate.net if isinstance(m, torch.nn.Conv2d)]) == 4  # four layers, as in CoRe


def test_gating_trains_with_the_model_acts_and_logs_masks():
    cfg = tiny_learner_config("recore", **{"model.gating": True})
    spaces = Spaces(action_dim=1)
    learner = Learner(cfg, spaces)
    gate = learner.wm.encoder.gate
    before = [p.detach().clone() for p in gate.parameters()]
    learner.update(synthetic_batch())
    assert any(float((p - q).abs().max()) > 0 for p, q in zip(gate.parameters(), before))  # trained
    weights = learner.policy_weights()
    assert any(k.startswith("encoder.gate.") for k in weights)  # runners gate what they see too
    policy = Policy(cfg.model, cfg.behavior, spaces, num_envs=2)
    policy.load(weights, 1)
    action = policy.act(np.zeros((2, 32, 32, 3), np.uint8), np.array([True, False]))
    assert action.shape == (2, 1) and np.all(np.abs(action) <= 1)
    grids = open_loop_grids(learner, synthetic_batch(), sequences=2, columns=4)
    assert "gate_mask" in grids and grids["gate_mask"].dtype == np.uint8
    assert grids["gate_mask"].shape == (2 * 2 * 32, 4 * 32, 3)  # per sequence: frames row, mask row


def test_without_gating_nothing_changes():
    learner = Learner(tiny_learner_config("recore"), Spaces(action_dim=1))
    assert learner.wm.encoder.gate is None
    assert not any(k.startswith("encoder.gate.") for k in learner.policy_weights())
    assert "gate_mask" not in open_loop_grids(learner, synthetic_batch(), sequences=1, columns=2)
